"""Segmentation outputs written frame by frame: mask PNGs, the COCO RLE index and the overlay.

A folder written by :class:`SegmentationWriter` holds::

    <k>/<frame>.png   0/255 8-bit PNG of sentence k's mask on that frame
    masks.json        {"video", "num_frames", "height", "width", "fps", "frame_names",
                       "prompts": [{"index": k, "prompt": text, "masks": {frame: COCO RLE}}]}
    overlay.mp4       the frames with every sentence's mask drawn in (optional)

Frames go out as they arrive (PNGs written, the overlay encoded, the RLE kept: a few bytes per
mask), so memory does not grow with the video. The folder is only complete after
:meth:`SegmentationWriter.close`; write into :func:`flowrvs.io.atomic.atomic_dir` so that a run
stopped half way leaves nothing that looks finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path
from flowrvs.io.masks import encode_rle
from flowrvs.io.video import VideoWriter, check_mask_name, overlay_frame, write_mask_png


class SegmentationWriter:
    """Writes one video's masks for ``prompts`` into ``folder`` (see the module docstring).

    ``add`` takes the frames in order; ``close`` finishes ``overlay.mp4`` and writes
    ``masks.json``. Used as a context manager it closes on success and aborts (deletes the
    unfinished overlay, writes no ``masks.json``) on an exception.
    """

    def __init__(self, folder, prompts: Sequence[str], source: str, fps: float, overlay: bool = True):
        self.folder = Path(folder)
        self.prompts = list(prompts)
        if not self.prompts:
            raise ValueError("SegmentationWriter needs at least one prompt")
        self.source = source
        self.fps = fps
        self.frame_names: list[str] = []
        self._names: set[str] = set()
        self._rles: list[dict[str, dict]] = [{} for _ in self.prompts]
        self._shape: tuple[int, int] | None = None
        self._video = VideoWriter(self.folder / "overlay.mp4", fps) if overlay else None
        self._closed = False

    def __enter__(self) -> "SegmentationWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    def add(self, name: str, frame_rgb: np.ndarray | None, masks: np.ndarray) -> None:
        """Write frame ``name``: ``masks`` ``(K, H, W)`` bool, one per prompt, and ``frame_rgb``
        ``(H, W, 3)`` uint8 (for the overlay; may be None without one)."""
        if self._closed:
            raise ValueError("the writer is closed")
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[0] != len(self.prompts):
            raise ValueError(f"masks must be ({len(self.prompts)}, H, W), one per prompt; got {masks.shape}")
        check_mask_name(name)
        if name in self._names:
            raise ValueError(f"frame {name!r} was already added")
        if self._shape is None:
            self._shape = masks.shape[1:]
        elif masks.shape[1:] != self._shape:
            raise ValueError(f"frame {name!r} masks are {masks.shape[1:]}, earlier frames' {self._shape}")
        masks = masks.astype(bool, copy=False)
        try:
            for k, mask in enumerate(masks):
                folder = self.folder / str(k)
                if not self.frame_names:
                    folder.mkdir(parents=True, exist_ok=True)
                write_mask_png(folder / f"{name}.png", mask)
        except OSError as exc:
            raise FlowRVSError(f"cannot write masks to {self.folder}: {' '.join(str(exc).split())}") from None
        for rles, mask in zip(self._rles, masks):
            rles[name] = encode_rle(mask)
        if self._video is not None:
            if frame_rgb is None or frame_rgb.shape != (*self._shape, 3):
                raise ValueError(f"the overlay needs frame {name!r} as ({self._shape[0]}, {self._shape[1]}, 3) uint8")
            self._video.write(overlay_frame(frame_rgb, masks))
        self.frame_names.append(name)
        self._names.add(name)

    def close(self) -> None:
        """Finish ``overlay.mp4`` and write ``masks.json``; the folder is then complete."""
        if self._closed:
            return
        if not self.frame_names:
            self.abort()
            raise ValueError("no frames were added")
        self._closed = True
        if self._video is not None:
            self._video.close()
        entries = [
            {"index": k, "prompt": prompt, "masks": rles}
            for k, (prompt, rles) in enumerate(zip(self.prompts, self._rles))
        ]
        index = {
            "video": self.source,
            "num_frames": len(self.frame_names),
            "height": int(self._shape[0]),
            "width": int(self._shape[1]),
            "fps": self.fps,
            "frame_names": self.frame_names,
            "prompts": entries,
        }
        with atomic_path(self.folder / "masks.json") as tmp:
            tmp.write_text(json.dumps(index))

    def abort(self) -> None:
        """Stop: delete the unfinished overlay and write no ``masks.json``."""
        self._closed = True
        if self._video is not None:
            self._video.abort()


def write_segmentation(folder, frames: np.ndarray, result, source: str, overlay: bool = True) -> None:
    """Write ``<k>/<frame>.png``, masks.json and overlay.mp4 of a whole
    :class:`~flowrvs.pipelines.pipeline_output.FlowRVSPipelineOutput` into ``folder``.

    frames: the ``(T, H, W, 3)`` uint8 input frames (for the overlay).
    """
    with SegmentationWriter(folder, result.prompts, source, result.fps, overlay=overlay) as writer:
        for t, name in enumerate(result.frame_names):
            writer.add(name, frames[t] if overlay else None, np.stack([m[t] for m in result.masks]))

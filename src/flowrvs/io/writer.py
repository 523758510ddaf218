"""The one segmentation writer: a video's masks written frame by frame, in a layout.

:class:`SegmentationWriter` takes the frames of one video in order, each with one ``(H, W)``
bool mask per sentence, checks them (frame names unique and usable as file stems, one mask
per sentence, every frame the same size) and hands them to its :class:`Layout`, which decides
what is written where. Frames go out as they arrive, so memory does not grow with the video.

Layouts
-------
A layout is an object with four methods, called in this order by the writer:

``start(prompts)``
    once, before the first frame: ``prompts`` is the list of the ``K`` sentences.
``add(name, frame, masks)``
    for each frame, in order: ``masks`` ``(K, H, W)`` bool, ``frame`` the ``(H, W, 3)`` uint8
    RGB frame, or None when the layout's ``needs_frames`` is False and the caller has none.
``close(frame_names)``
    after the last frame: finish the files (``frame_names`` in the order they were added).
``abort()``
    instead of ``close`` when writing stops on an error: remove anything that would look
    finished (mask PNGs already written may stay; write into
    :func:`flowrvs.io.atomic.atomic_dir` so that a stopped run leaves nothing behind).

and an attribute ``needs_frames`` (whether ``add`` needs the RGB frame). Subclass
:class:`Layout` to make another. Two are here:

:class:`SegmentFolder` (``flowrvs segment``'s output)::

    <k>/<frame>.png   0/255 8-bit PNG of sentence k's mask on that frame
    masks.json        {"video", "num_frames", "height", "width", "fps", "frame_names",
                       "prompts": [{"index": k, "prompt": text, "masks": {frame: COCO RLE}}]}
    overlay.mp4       the frames with every sentence's mask drawn in (optional)

:class:`SubmissionFolders` (a benchmark's submission): sentence ``k``'s masks as
``folders[k]/<frame>.png``, nothing else: 8-bit 'L' PNGs of 0/255 (``values="0/255"``, MeViS,
Ref-YouTube-VOS, Long-RVOS), of 0/1 (``values="0/1"``, ReVOS's official scorer) or indexed 'P'
PNGs with the DAVIS palette, 0 = background and 1 = the object (``values="indexed"``, Ref-DAVIS17). It knows no dataset: the caller
gives the folders, e.g. for MeViS ``[root / video / exp_id for exp_id in the video's
expressions]`` with the expressions' sentences as the prompts.

"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path
from flowrvs.io.checks import one_line
from flowrvs.io.encode import VideoWriter
from flowrvs.io.masks import check_mask_name, encode_rle, write_mask_png
from flowrvs.io.overlay import overlay_frame

#: DAVIS colour palette (index 1 = dark red, 2 = green, ...), the one of the DAVIS annotation PNGs.
DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128, 0, 128, 128, 128, 128, 128,
                 64, 0, 0, 191, 0, 0, 64, 128, 0, 191, 128, 0, 64, 0, 128, 191, 0, 128, 64, 128, 128, 191, 128, 128]
DAVIS_PALETTE = DAVIS_PALETTE + [0] * (768 - len(DAVIS_PALETTE))

#: The pixel values :class:`SubmissionFolders` can write.
MASK_VALUES = ("0/255", "0/1", "indexed")


def save_indexed(path: Path, index: np.ndarray) -> None:
    """Write an ``(H, W)`` array of small integers (0..255) as an indexed PNG with the DAVIS palette."""
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette(DAVIS_PALETTE)
    img.save(path, format="PNG")


def _write_png(path: Path, mask: np.ndarray, values: str) -> None:
    """One ``(H, W)`` bool mask as ``path`` in the pixel values ``values`` (:data:`MASK_VALUES`), atomically."""
    if values == "0/255":
        write_mask_png(path, mask)
        return
    with atomic_path(path) as tmp:
        if values == "indexed":
            save_indexed(tmp, mask.astype(np.uint8))
        else:
            Image.fromarray(mask.astype(np.uint8)).save(tmp, format="PNG")


class Layout:
    """What a :class:`SegmentationWriter` writes, and where (see the module docstring).

    The base class writes nothing; a layout overrides the methods it needs.
    """

    needs_frames: bool = False

    def start(self, prompts: list[str]) -> None:
        """Before the first frame: ``prompts``, the ``K`` sentences."""

    def add(self, name: str, frame: np.ndarray | None, masks: np.ndarray) -> None:
        """Frame ``name``: ``masks`` ``(K, H, W)`` bool, ``frame`` ``(H, W, 3)`` uint8 or None."""

    def close(self, frame_names: list[str]) -> None:
        """After the last frame: finish the files."""

    def abort(self) -> None:
        """Writing stopped on an error: remove what would look finished."""


def _write_pngs(folders: Sequence[Path], name: str, masks: np.ndarray, values: str = "0/255") -> None:
    """``masks[k]`` ``(H, W)`` bool as ``folders[k]/<name>.png`` (pixel ``values``), folders made as needed."""
    for folder, mask in zip(folders, masks):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_png(folder / f"{name}.png", mask, values)
        except OSError as exc:
            raise FlowRVSError(f"cannot write masks to {folder}: {one_line(exc)}") from exc


class SegmentFolder(Layout):
    """``flowrvs segment``'s folder: ``<k>/<frame>.png``, ``masks.json`` and ``overlay.mp4``.

    ``source`` (the name of the input video) and ``fps`` go into ``masks.json``; ``fps`` is
    also the overlay's frame rate. ``overlay=False`` writes no ``overlay.mp4`` (and needs no
    frames).
    """

    def __init__(self, folder, source: str, fps: float, overlay: bool = True):
        self.folder = Path(folder)
        self.source = source
        self.fps = fps
        self.needs_frames = overlay
        self._video: VideoWriter | None = None
        self._prompts: list[str] = []
        self._rles: list[dict[str, dict]] = []
        self._shape: tuple[int, int] | None = None

    def start(self, prompts: list[str]) -> None:
        self._prompts = list(prompts)
        self._rles = [{} for _ in prompts]
        if self.needs_frames:
            self._video = VideoWriter(self.folder / "overlay.mp4", self.fps)

    def add(self, name: str, frame: np.ndarray | None, masks: np.ndarray) -> None:
        self._shape = masks.shape[1:]
        _write_pngs([self.folder / str(k) for k in range(len(masks))], name, masks)
        for rles, mask in zip(self._rles, masks):
            rles[name] = encode_rle(mask)
        if self._video is not None:
            self._video.write(overlay_frame(frame, masks))

    def close(self, frame_names: list[str]) -> None:
        """Finish ``overlay.mp4`` and write ``masks.json``; the folder is then complete."""
        if self._video is not None:
            self._video.close()
        entries = [
            {"index": k, "prompt": prompt, "masks": rles}
            for k, (prompt, rles) in enumerate(zip(self._prompts, self._rles))
        ]
        index = {
            "video": self.source,
            "num_frames": len(frame_names),
            "height": int(self._shape[0]),
            "width": int(self._shape[1]),
            "fps": self.fps,
            "frame_names": frame_names,
            "prompts": entries,
        }
        with atomic_path(self.folder / "masks.json") as tmp:
            tmp.write_text(json.dumps(index))

    def abort(self) -> None:
        """Delete the unfinished overlay; write no ``masks.json``."""
        if self._video is not None:
            self._video.abort()


class SubmissionFolders(Layout):
    """A benchmark submission: sentence ``k``'s masks as ``folders[k]/<frame>.png``, no index, no
    overlay. ``folders`` has one folder per sentence, in prompt order; ``values`` one of
    :data:`MASK_VALUES`: 'L' PNGs of 0/255 (default) or 0/1, or DAVIS-palette 'P' PNGs of 0/1."""

    def __init__(self, folders: Sequence, values: str = "0/255"):
        self.folders = [Path(f) for f in folders]
        if len({f.resolve() for f in self.folders}) != len(self.folders):
            raise ValueError("SubmissionFolders needs one distinct folder per sentence")
        if values not in MASK_VALUES:
            raise ValueError(f"values must be one of {MASK_VALUES}, got {values!r}")
        self.values = values

    def start(self, prompts: list[str]) -> None:
        if len(prompts) != len(self.folders):
            raise ValueError(f"{len(prompts)} prompts but {len(self.folders)} folders")

    def add(self, name: str, frame: np.ndarray | None, masks: np.ndarray) -> None:
        _write_pngs(self.folders, name, masks, self.values)


class SegmentationWriter:
    """Writes one video's masks for ``prompts`` in ``layout`` (see the module docstring).

    ``add`` takes the frames in order; ``close`` finishes the layout's files. Used as a context
    manager it closes on success and aborts on an exception.
    """

    def __init__(self, layout: Layout, prompts: Sequence[str]):
        self.layout = layout
        self.prompts = list(prompts)
        if not self.prompts:
            raise ValueError("SegmentationWriter needs at least one prompt")
        self.frame_names: list[str] = []
        self._names: set[str] = set()
        self._shape: tuple[int, int] | None = None
        self._closed = False
        layout.start(self.prompts)

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
        ``(H, W, 3)`` uint8 (may be None when the layout needs no frames)."""
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
        if self.layout.needs_frames and (frame_rgb is None or frame_rgb.shape != (*self._shape, 3)):
            raise ValueError(f"the overlay needs frame {name!r} as ({self._shape[0]}, {self._shape[1]}, 3) uint8")
        self.layout.add(name, frame_rgb, masks.astype(bool, copy=False))
        self.frame_names.append(name)
        self._names.add(name)

    def close(self) -> None:
        """Finish the layout's files; they are then complete."""
        if self._closed:
            return
        if not self.frame_names:
            self.abort()
            raise ValueError("no frames were added")
        self._closed = True
        self.layout.close(list(self.frame_names))

    def abort(self) -> None:
        """Stop: the layout removes what would look finished."""
        self._closed = True
        self.layout.abort()

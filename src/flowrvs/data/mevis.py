"""MeViS (Motion expressions Video Segmentation) reader.

Layout of one split on disk::

    <root>/<split>/JPEGImages/<video>/<frame>.jpg
    <root>/<split>/meta_expressions.json
        {"videos": {video: {"frames": [frame names without extension],
                            "expressions": {exp_id: {"exp": sentence,
                                                     "obj_id": [int, ...],
                                                     "anno_id": [int or str, ...]}}}}}
    <root>/<split>/mask_dict.json          (train and valid_u only)
        {str(anno_id): [COCO RLE dict or null, one per frame]}

The referred target of an expression is the union of the masks of all its ``anno_id``. The
``valid`` split ships no masks (its scores come from the challenge server): ``has_masks`` is False
and :meth:`MeViSDataset.load_mask` returns None. ``mask_dict.json`` can be hundreds of MB, so it
is read on the first :meth:`~MeViSDataset.load_mask` call, once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.masks import check_rle, decode_rle
from flowrvs.io.names import check_name
from flowrvs.data.base import Clip, Expression, IndexedVideoDataset

SPLITS = ("train", "valid_u", "valid")


def _read_json(path: Path, what: str):
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise FlowRVSError(f"missing MeViS {what} file {path}") from err
    except (OSError, ValueError) as err:
        raise FlowRVSError(f"cannot read MeViS {what} file {path}: {err}") from err


class MeViSDataset(IndexedVideoDataset):
    """One split (``train``, ``valid_u`` or ``valid``) of MeViS under ``root``."""

    def __init__(self, root, split: str = "valid_u"):
        if split not in SPLITS:
            raise FlowRVSError(f"unknown MeViS split {split!r}; choose one of {', '.join(SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.split_dir = self.root / split
        self.meta_path = self.split_dir / "meta_expressions.json"
        self.mask_path = self.split_dir / "mask_dict.json"
        self.image_dir = self.split_dir / "JPEGImages"
        meta = _read_json(self.meta_path, "meta")
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict):
            raise FlowRVSError(f"{self.meta_path} has no 'videos' object; is it a MeViS meta_expressions.json?")
        self._frames: dict[str, list[str]] = {}
        self._expressions: dict[str, list[Expression]] = {}
        for vid, entry in videos.items():
            check_name(vid, self.meta_path, "video id")
            try:
                frames = [check_name(str(f), self.meta_path, "frame name") for f in entry["frames"]]
                exps = entry.get("expressions", {})
                self._expressions[vid] = [
                    Expression(
                        video=vid,
                        exp_id=check_name(str(exp_id), self.meta_path, "expression id"),
                        sentence=str(e["exp"]),
                        obj_ids=tuple(int(o) for o in e.get("obj_id", ())),
                        anno_ids=tuple(e.get("anno_id", ())),
                    )
                    for exp_id, e in exps.items()
                ]
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise FlowRVSError(f"malformed entry for video {vid!r} in {self.meta_path}: {err!r}") from err
            self._frames[vid] = frames
        self._videos = sorted(self._frames)
        self.has_masks = self.mask_path.is_file()
        self._mask_dict: dict | None = None
        self._shapes: dict[str, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"MeViSDataset(root={str(self.root)!r}, split={self.split!r}, videos={len(self._videos)})"

    # --- index -----------------------------------------------------------------------------
    def _where(self) -> str:
        return f"MeViS {self.split} ({self.meta_path})"

    def frame_path(self, video: str, frame: str) -> Path:
        return self.image_dir / video / f"{frame}.jpg"

    # --- frames ----------------------------------------------------------------------------
    def frame_shape(self, video: str) -> tuple[int, int]:
        """``(H, W)`` of ``video``, read from the header of its first JPEG (cached)."""
        self._check_video(video)
        if video not in self._shapes:
            frames = self._frames[video]
            if not frames:
                raise FlowRVSError(f"video {video!r} lists no frames in {self.meta_path}")
            path = self.frame_path(video, frames[0])
            try:
                with Image.open(path) as img:
                    w, h = img.size
            except FileNotFoundError as err:
                raise FlowRVSError(f"missing frame {path}") from err
            except (OSError, ValueError) as err:
                raise FlowRVSError(f"cannot read frame {path}: {err}") from err
            self._shapes[video] = (h, w)
        return self._shapes[video]

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        self._check_video(video)
        names = self._frames[video]
        arrays = []
        for i in self.frame_indices(video, indices):
            path = self.frame_path(video, names[i])
            try:
                with Image.open(path) as img:
                    arr = np.asarray(img.convert("RGB"))
            except FileNotFoundError as err:
                raise FlowRVSError(f"missing frame {path}") from err
            except (OSError, ValueError) as err:
                raise FlowRVSError(f"cannot read frame {path}: {err}") from err
            if arrays and arr.shape != arrays[0].shape:
                raise FlowRVSError(f"frame {path} is {arr.shape[1]}x{arr.shape[0]}, "
                                   f"the video's first is {arrays[0].shape[1]}x{arrays[0].shape[0]}")
            arrays.append(arr)
        if not arrays:
            h, w = self.frame_shape(video)
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        return np.stack(arrays)

    # --- masks -----------------------------------------------------------------------------
    @property
    def mask_dict(self) -> dict:
        """The parsed ``mask_dict.json`` (read on first use). FlowRVSError if the split has none."""
        if self._mask_dict is None:
            if not self.has_masks:
                raise FlowRVSError(f"MeViS {self.split} has no masks ({self.mask_path} is missing)")
            data = _read_json(self.mask_path, "mask")
            if not isinstance(data, dict):
                raise FlowRVSError(f"{self.mask_path} is not a JSON object of anno_id -> RLE list")
            self._mask_dict = data
        return self._mask_dict

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        """``(T, H, W)`` bool union of the masks of ``expression.anno_ids``; None if the split has none.

        Null RLE entries (object absent in that frame) are empty. The frame size is taken from the
        RLEs themselves, and from the first JPEG only when every selected entry is null.
        """
        if not self.has_masks:
            return None
        video = expression.video
        self._check_video(video)
        n = len(self._frames[video])
        idx = self.frame_indices(video, indices)
        masks = self.mask_dict
        per_anno = []
        for anno in expression.anno_ids:
            rles = masks.get(str(anno))
            if rles is None:
                raise FlowRVSError(f"anno_id {anno} of {expression.key} is not in {self.mask_path}")
            if not isinstance(rles, list) or len(rles) != n:
                count = len(rles) if isinstance(rles, list) else "no list of"
                raise FlowRVSError(f"anno_id {anno} of {expression.key} has {count} masks "
                                   f"for {n} frames in {self.mask_path}")
            per_anno.append((anno, rles))
        shape = None
        for anno, rles in per_anno:
            for i in idx:
                if rles[i] is not None:
                    size = self._checked_rle(anno, i, rles[i])
                    if shape is None:
                        shape = size
                    elif size != shape:
                        raise FlowRVSError(f"anno_id {anno} of {expression.key} has a {size} mask, "
                                           f"others are {shape} ({self.mask_path})")
        if shape is None:
            shape = self.frame_shape(video)
        out = np.zeros((len(idx), *shape), dtype=bool)
        for anno, rles in per_anno:
            for k, i in enumerate(idx):
                if rles[i] is not None:
                    try:
                        out[k] |= decode_rle(rles[i])
                    except (TypeError, ValueError, KeyError) as err:  # malformed RLE from a hand-edited or truncated file
                        raise FlowRVSError(f"bad RLE for anno_id {anno} frame {i} in {self.mask_path}: {err}") from err
        return out

    def _checked_rle(self, anno, frame: int, rle) -> tuple[int, int]:
        """``(H, W)`` of one RLE of ``mask_dict.json``, checked whole before any mask is allocated."""
        try:
            return check_rle(rle)
        except ValueError as err:  # a hand-edited or damaged file: its size or runs are wrong
            raise FlowRVSError(f"bad RLE for anno_id {anno} frame {frame} in {self.mask_path}: {err}") from err

    def load_clip(self, expression: Expression, indices: list[int] | None = None) -> Clip:
        """Frames, union mask (None without masks) and sentence of ``expression`` as a :class:`Clip`."""
        idx = self.frame_indices(expression.video, indices)
        names = self._frames[expression.video]
        return Clip(
            frames=self.load_frames(expression.video, idx),
            mask=self.load_mask(expression, idx),
            sentence=expression.sentence,
            video=expression.video,
            exp_id=expression.exp_id,
            frame_names=[names[i] for i in idx],
        )

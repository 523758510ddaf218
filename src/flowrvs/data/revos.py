"""ReVOS reader (cilinyan/VISA: referring, reasoning and no-target expressions).

Layout on disk (one folder for every split)::

    <root>/JPEGImages/<video>/<frame>.jpg
    <root>/meta_expressions_<split>_.json      (meta_expressions_valid_.json, meta_expressions_train_.json)
        {"videos": {video: {"frames": [frame names without extension],
                            "expressions": {exp_id: {"exp": sentence, "obj_id": [...],
                                                     "anno_id": [...], "type_id": 0 | 1 | 2}}}}}
    <root>/mask_dict.json                      {str(anno_id): [COCO RLE or null, one per frame]}
    <root>/mask_dict_foreground.json           {video: {"masks_rle": [COCO RLE, one per frame]}}

ReVOS video ids are relative paths of several components (``UVO/all/-fbscFfkh4M``): each
component is checked as one safe path component (:func:`check_video_id`). ``type_id`` 0 is a
referring, 1 a reasoning and 2 a no-target expression (:meth:`ReVOSDataset.kind`). The ground truth
of an expression is the union of the masks of its ``anno_id`` (empty for no-target ones);
:meth:`ReVOSDataset.load_foreground` gives the union of every object of the video, which the
robustness score R needs. The JSON files are read on first use, once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowrvs.data.base import Expression, IndexedVideoDataset
from flowrvs.data.ytvos import image_size, read_json, read_rgb, stack_frames
from flowrvs.errors import FlowRVSError
from flowrvs.io.masks import check_rle, decode_rle
from flowrvs.io.names import check_name

#: ``type_id`` -> the expression's kind.
KINDS = {0: "referring", 1: "reasoning", 2: "no-target"}


def check_video_id(video, source: Path | str) -> str:
    """``video`` unchanged when it is a relative path of safe components (``a/b/c``), else FlowRVSError."""
    if not isinstance(video, str) or not video:
        raise FlowRVSError(f"{source}: bad video id {video!r}: not a non-empty string")
    for part in video.split("/"):
        check_name(part, source, f"video id component of {video!r}")
    return video


def _ids(raw, source: Path, where: str) -> tuple:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise FlowRVSError(f"{source}: {where}: ids {raw!r} are not a list")
    return tuple(raw)


def _decode(rle, source: Path, what: str) -> np.ndarray:
    """One frame's RLE (a dict, or a list of dicts to be merged) as an ``(H, W)`` bool mask."""
    if isinstance(rle, list):
        parts = [_decode(r, source, what) for r in rle if r is not None]
        if not parts:
            raise FlowRVSError(f"{source}: {what} is an empty RLE list")
        return np.logical_or.reduce(parts)
    try:
        return decode_rle(rle)
    except (KeyError, TypeError, ValueError) as err:  # a hand-edited or truncated file
        raise FlowRVSError(f"{source}: bad RLE for {what}: {err!r}") from err


def _size(rle, source: Path) -> tuple[int, int] | None:
    """``(H, W)`` of a frame's RLE (the first of a list), checked whole before masks are allocated."""
    if isinstance(rle, list):
        rle = next((r for r in rle if r is not None), None)
    if not isinstance(rle, dict):
        return None
    try:
        return check_rle(rle)
    except ValueError as err:  # a hand-edited or damaged file: its size or runs are wrong
        raise FlowRVSError(f"{source}: bad RLE: {err}") from err


class ReVOSDataset(IndexedVideoDataset):
    """One split of ReVOS under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root, split: str = "valid"):
        self.root = Path(root)
        self.split = check_name(str(split), "the split", "ReVOS split")
        self.meta_path = self.root / f"meta_expressions_{split}_.json"
        self.mask_path = self.root / "mask_dict.json"
        self.foreground_path = self.root / "mask_dict_foreground.json"
        self.image_dir = self.root / "JPEGImages"
        if not self.meta_path.is_file():
            raise FlowRVSError(f"unknown ReVOS split {split!r}: missing {self.meta_path}")
        meta = read_json(self.meta_path)
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict):
            raise FlowRVSError(f"{self.meta_path} has no 'videos' object; is it a ReVOS meta_expressions file?")
        self._frames: dict[str, list[str]] = {}
        self._expressions: dict[str, list[Expression]] = {}
        self._kinds: dict[tuple[str, str], str] = {}
        for vid, entry in videos.items():
            check_video_id(vid, self.meta_path)
            if not isinstance(entry, dict) or not isinstance(entry.get("frames"), list):
                raise FlowRVSError(f"{self.meta_path}: video {vid!r} has no 'frames' list")
            self._frames[vid] = [check_name(str(f), self.meta_path, "frame name") for f in entry["frames"]]
            self._expressions[vid] = [self._expression(vid, str(exp_id), e)
                                      for exp_id, e in (entry.get("expressions") or {}).items()]
        self._videos = sorted(self._frames)
        self.has_masks = self.mask_path.is_file()
        self._mask_dict: dict | None = None
        self._foreground: dict | None = None

    def _expression(self, vid: str, exp_id: str, e) -> Expression:
        check_name(exp_id, self.meta_path, "expression id")
        where = f"video {vid!r} expression {exp_id!r}"
        if not isinstance(e, dict) or "exp" not in e:
            raise FlowRVSError(f"{self.meta_path}: {where} has no 'exp' sentence")
        type_id = e.get("type_id")
        if type_id not in KINDS or isinstance(type_id, bool):
            raise FlowRVSError(f"{self.meta_path}: {where} has type_id {type_id!r}; expected 0, 1 or 2")
        self._kinds[(vid, exp_id)] = KINDS[type_id]
        return Expression(video=vid, exp_id=exp_id, sentence=str(e["exp"]),
                          obj_ids=_ids(e.get("obj_id"), self.meta_path, where),
                          anno_ids=_ids(e.get("anno_id"), self.meta_path, where))

    def __repr__(self) -> str:
        return f"ReVOSDataset(root={str(self.root)!r}, split={self.split!r}, videos={len(self._videos)})"

    def _where(self) -> str:
        return f"ReVOS {self.split} ({self.meta_path})"

    def kind(self, expression: Expression) -> str:
        """``referring``, ``reasoning`` or ``no-target`` (``type_id`` 0, 1, 2)."""
        self._check_video(expression.video)
        kind = self._kinds.get((expression.video, expression.exp_id))
        if kind is None:
            raise FlowRVSError(f"expression {expression.key} is not in {self._where()}")
        return kind

    def frame_path(self, video: str, frame: str) -> Path:
        return self.image_dir / video / f"{frame}.jpg"

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        names = self.frame_names(video)
        paths = [self.frame_path(video, names[i]) for i in self.frame_indices(video, indices)]
        return stack_frames([read_rgb(p) for p in paths], paths)

    def _read(self, path: Path, what: str) -> dict:
        if not path.is_file():
            raise FlowRVSError(f"ReVOS {self.split} has no {what} ({path} is missing)")
        data = read_json(path)
        if not isinstance(data, dict):
            raise FlowRVSError(f"{path} is not a JSON object")
        return data

    def _rle_lists(self, expression: Expression) -> list[tuple[str, list]]:
        n = len(self.frame_names(expression.video))
        if self._mask_dict is None:
            self._mask_dict = self._read(self.mask_path, "masks")
        out = []
        for anno in expression.anno_ids:
            rles = self._mask_dict.get(str(anno))
            if not isinstance(rles, list) or len(rles) != n:
                got = "missing" if rles is None else f"{len(rles) if isinstance(rles, list) else 'no'} masks"
                raise FlowRVSError(f"anno_id {anno} of {expression.key} in {self.mask_path}: {got}, "
                                   f"expected {n} masks")
            out.append((f"anno_id {anno}", rles))
        return out

    def _union(self, video: str, sources: list[tuple[str, list]], idx: list[int], path: Path) -> np.ndarray:
        """``(len(idx), H, W)`` bool union of per-frame RLE lists (null = empty) at frames ``idx``."""
        shape = next((s for _, rles in sources for i in idx if (s := _size(rles[i], path)) is not None), None)
        if shape is None:
            names = self.frame_names(video)
            shape = image_size(self.frame_path(video, names[idx[0]])) if idx else (0, 0)
        out = np.zeros((len(idx), *shape), dtype=bool)
        for what, rles in sources:
            for k, i in enumerate(idx):
                if rles[i] is not None:
                    mask = _decode(rles[i], path, f"{what} frame {i}")
                    if mask.shape != shape:
                        raise FlowRVSError(f"{path}: {what} frame {i} is {mask.shape}, other masks {shape}")
                    out[k] |= mask
        return out

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        """``(T, H, W)`` bool union of the masks of ``expression.anno_ids`` (empty for no-target
        expressions); None when the split has no ``mask_dict.json``."""
        if not self.has_masks:
            return None
        idx = self.frame_indices(expression.video, indices)
        return self._union(expression.video, self._rle_lists(expression), idx, self.mask_path)

    def load_foreground(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        """``(T, H, W)`` bool: every annotated object of ``video`` per frame (``mask_dict_foreground.json``)."""
        idx = self.frame_indices(video, indices)
        if self._foreground is None:
            self._foreground = self._read(self.foreground_path, "foreground masks")
        entry = self._foreground.get(video)
        rles = entry.get("masks_rle") if isinstance(entry, dict) else None
        n = len(self.frame_names(video))
        if not isinstance(rles, list) or len(rles) != n:
            raise FlowRVSError(f"{self.foreground_path}: video {video!r} has no 'masks_rle' list of {n} masks")
        return self._union(video, [(f"foreground of {video!r}", rles)], idx, self.foreground_path)

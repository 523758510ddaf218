"""Long-RVOS reader (iSEE-Laboratory/Long_RVOS: long videos, one PNG per object and frame).

Layout of one split (``train``, ``valid``, ``test``) on disk::

    <root>/<split>/JPEGImages/<video>/<frame>.jpg
    <root>/<split>/Annotations/<video>/<obj_id>/<frame>.png   (grayscale, foreground nonzero (255))
    <root>/<split>/meta_expressions.json
        {"videos": {video: {"frames": [frame names without extension],
                            "expressions": {exp_id: {"exp": sentence,
                                                     "obj_id": id or [ids],
                                                     "type": "static" | "dynamic" | "static+dynamic"}}}}}

**A missing annotation PNG means the object is absent in that frame** (empty mask), as the
official scorer reads it. The target of an expression is the union of its objects; an expression
with no object (``obj_id`` an empty list or null: a no-target sentence) has an all-empty mask.
``has_masks`` is true exactly when ``<split>/Annotations`` exists. Object ids are kept as the
folder names they are (``Expression.obj_ids`` holds strings). :meth:`LongRVOSDataset.kind` gives
an expression's type as reported: ``static``, ``dynamic`` or ``hybrid`` (``static+dynamic``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowrvs.data.base import Expression, IndexedVideoDataset
from flowrvs.data.ytvos import image_size, read_index_png, read_json, read_rgb, stack_frames
from flowrvs.errors import FlowRVSError
from flowrvs.io.names import check_name

SPLITS = ("train", "valid", "test")
#: the meta file's ``type`` -> the name the Long-RVOS scorer reports it under.
TYPES = {"static": "static", "dynamic": "dynamic", "static+dynamic": "hybrid"}


def _obj_names(raw, source: Path, where: str) -> tuple[str, ...]:
    """The object folder names of one expression's ``obj_id`` (a scalar, a list, or empty/null)."""
    if raw is None:
        return ()
    values = raw if isinstance(raw, list) else [raw]
    names = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise FlowRVSError(f"{source}: {where}: obj_id {value!r} is not an integer or a string")
        names.append(check_name(str(value), source, "object id"))
    return tuple(names)


class LongRVOSDataset(IndexedVideoDataset):
    """One split of Long-RVOS under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root, split: str = "valid"):
        if split not in SPLITS:
            raise FlowRVSError(f"unknown Long-RVOS split {split!r}; choose one of {', '.join(SPLITS)}")
        self.root = Path(root)
        self.split = split
        self.meta_path = self.root / split / "meta_expressions.json"
        self.image_dir = self.root / split / "JPEGImages"
        self.mask_dir = self.root / split / "Annotations"
        self.has_masks = self.mask_dir.is_dir()
        meta = read_json(self.meta_path)
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict):
            raise FlowRVSError(f"{self.meta_path} has no 'videos' object; is it a Long-RVOS meta_expressions.json?")
        self._frames: dict[str, list[str]] = {}
        self._expressions: dict[str, list[Expression]] = {}
        self._kinds: dict[tuple[str, str], str | None] = {}
        for vid, entry in videos.items():
            check_name(vid, self.meta_path, "video id")
            if not isinstance(entry, dict) or not isinstance(entry.get("frames"), list):
                raise FlowRVSError(f"{self.meta_path}: video {vid!r} has no 'frames' list")
            self._frames[vid] = [check_name(str(f), self.meta_path, "frame name") for f in entry["frames"]]
            self._expressions[vid] = [self._expression(vid, str(exp_id), e)
                                      for exp_id, e in (entry.get("expressions") or {}).items()]
        self._videos = sorted(self._frames)
        self._shapes: dict[str, tuple[int, int]] = {}

    def _expression(self, vid: str, exp_id: str, e) -> Expression:
        check_name(exp_id, self.meta_path, "expression id")
        where = f"video {vid!r} expression {exp_id!r}"
        if not isinstance(e, dict) or "exp" not in e:
            raise FlowRVSError(f"{self.meta_path}: {where} has no 'exp' sentence")
        raw_type = e.get("type")
        if raw_type is not None and raw_type not in TYPES:
            raise FlowRVSError(f"{self.meta_path}: {where} has type {raw_type!r}; "
                               f"expected one of {', '.join(TYPES)}")
        self._kinds[(vid, exp_id)] = None if raw_type is None else TYPES[raw_type]
        return Expression(video=vid, exp_id=exp_id, sentence=str(e["exp"]),
                          obj_ids=_obj_names(e.get("obj_id"), self.meta_path, where))

    def __repr__(self) -> str:
        return f"LongRVOSDataset(root={str(self.root)!r}, split={self.split!r}, videos={len(self._videos)})"

    def _where(self) -> str:
        return f"Long-RVOS {self.split} ({self.meta_path})"

    def kind(self, expression: Expression) -> str:
        """``static``, ``dynamic`` or ``hybrid``; FlowRVSError when the meta file gives no type."""
        kind = self._kinds.get((expression.video, expression.exp_id))
        if kind is None:
            raise FlowRVSError(f"expression {expression.key} has no 'type' in {self.meta_path}")
        return kind

    def frame_path(self, video: str, frame: str) -> Path:
        return self.image_dir / video / f"{frame}.jpg"

    def mask_path(self, video: str, obj_id: str, frame: str) -> Path:
        return self.mask_dir / video / obj_id / f"{frame}.png"

    def frame_shape(self, video: str) -> tuple[int, int]:
        """``(H, W)`` of ``video`` from the header of its first JPEG (cached)."""
        if video not in self._shapes:
            names = self.frame_names(video)
            if not names:
                raise FlowRVSError(f"video {video!r} lists no frames in {self.meta_path}")
            self._shapes[video] = image_size(self.frame_path(video, names[0]))
        return self._shapes[video]

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        paths = [self.frame_path(video, n) for n in self.frame_names_at(video, indices)]
        return stack_frames([read_rgb(p) for p in paths], paths)

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        """``(T, H, W)`` bool union of the expression's objects (all frames, or those at ``indices``).

        A missing PNG is an absent object; the size comes from the PNGs read, or from the first
        JPEG when none is present (a no-target expression, or objects absent in every selected
        frame). None when the split has no annotations.
        """
        if not self.has_masks:
            return None
        video = expression.video
        names = self.frame_names_at(video, indices)
        if expression.obj_ids and not (self.mask_dir / video).is_dir():
            raise FlowRVSError(f"missing annotation folder {self.mask_dir / video}")
        found: list[tuple[int, np.ndarray]] = []
        shape = None
        for obj in expression.obj_ids:
            for t, name in enumerate(names):
                path = self.mask_path(video, obj, name)
                if not path.is_file():
                    continue
                mask = read_index_png(path) != 0
                if shape is None:
                    shape = mask.shape
                elif mask.shape != shape:
                    raise FlowRVSError(f"{path} has size {mask.shape}, other annotations of {video!r} {shape}")
                found.append((t, mask))
        out = np.zeros((len(names), *(shape or self.frame_shape(video))), dtype=bool)
        for t, mask in found:
            out[t] |= mask
        return out

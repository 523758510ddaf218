"""Refer-YouTube-VOS reader (and the shared image/annotation readers of the YTVOS layout).

Layout accepted (the official Ref-YouTube-VOS release, unzipped under ``root``)::

    <root>/meta_expressions/<split>/meta_expressions.json
        {"videos": {<vid>: {"expressions": {<exp_id>: {"exp": <sentence>, "obj_id": "1"}, ...},
                            "frames": ["00000", "00005", ...]}}}
        (``obj_id`` is a string; valid/test expressions carry no ``obj_id``)
    <root>/<split>/JPEGImages/<vid>/<frame>.jpg
    <root>/<split>/Annotations/<vid>/<frame>.png      (train only: indexed 'P' PNGs,
                                                       pixel value = object id, 0 = background)

``split`` is ``train``, ``valid`` or ``test``. ``has_masks`` is true exactly when
``<root>/<split>/Annotations`` exists. A frame listed in the meta file without an annotation
PNG has an empty mask. Frame names are taken from the meta file (Ref-YTVOS lists every 5th
frame: ``00000``, ``00005``, ...).

The official validation set: the released ``meta_expressions/valid`` file lists the 202
validation videos *and* the 305 test videos. With ``official_valid=True`` (the default) and a
``meta_expressions/test/meta_expressions.json`` present, the ``valid`` split drops the videos
listed in the test file, which leaves the 202 official validation videos (the same rule the
public ReferFormer/MTTR inference scripts use). Without the test meta file, ``videos()`` is
everything in the valid meta file.

Nothing on disk is ever written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from flowrvs.data.base import Expression, IndexedVideoDataset
from flowrvs.errors import FlowRVSError
from flowrvs.io.names import check_name

_INDEXED_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB; missing or corrupt -> :class:`FlowRVSError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FlowRVSError(f"missing frame: {path}")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise FlowRVSError(f"cannot read image {path}: {exc}") from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image from its header only."""
    path = Path(path)
    if not path.is_file():
        raise FlowRVSError(f"missing frame: {path}")
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise FlowRVSError(f"cannot read image {path}: {exc}") from exc
    return int(h), int(w)


def read_index_png(path: str | Path) -> np.ndarray:
    """Read an indexed ('P') or grayscale annotation PNG as an ``(H, W)`` integer array of object ids."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.mode not in _INDEXED_MODES:
                raise FlowRVSError(
                    f"annotation {path} is a {img.mode!r} image; expected an indexed ('P') or grayscale PNG"
                )
            return np.asarray(img)
    except FlowRVSError:
        raise
    except FileNotFoundError as err:
        raise FlowRVSError(f"missing annotation: {path}") from err
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise FlowRVSError(f"cannot read annotation {path}: {exc}") from exc


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise FlowRVSError(f"missing file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FlowRVSError(f"cannot parse JSON {path}: {exc}") from exc


def _as_obj_id(value, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise FlowRVSError(f"{where}: obj_id {value!r} is not an integer") from err


def stack_frames(arrays: list[np.ndarray], paths: list[Path]) -> np.ndarray:
    """Stack per-frame arrays, naming the first frame whose size differs from the first one."""
    if not arrays:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    shape = arrays[0].shape
    for arr, p in zip(arrays, paths):
        if arr.shape != shape:
            raise FlowRVSError(f"{p} has size {arr.shape[:2]}, other frames of the video {shape[:2]}")
    return np.stack(arrays)


class RefYouTubeVOSDataset(IndexedVideoDataset):
    """One split of Ref-YouTube-VOS on disk (see the module docstring for the layout)."""

    frame_ext = ".jpg"
    mask_ext = ".png"

    def __init__(self, root: str | Path, split: str = "train", official_valid: bool = True):
        self.root = Path(root)
        self.split = split
        meta_path = self.root / "meta_expressions" / split / "meta_expressions.json"
        meta = read_json(meta_path)
        if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
            raise FlowRVSError(f"{meta_path}: expected an object with a 'videos' mapping")
        videos = meta["videos"]
        if split == "valid" and official_valid:
            test_meta = self.root / "meta_expressions" / "test" / "meta_expressions.json"
            if test_meta.is_file():
                test_videos = set(read_json(test_meta).get("videos", {}))
                videos = {v: d for v, d in videos.items() if v not in test_videos}
        self.image_dir = self.root / split / "JPEGImages"
        self.mask_dir = self.root / split / "Annotations"
        self.has_masks = self.mask_dir.is_dir()
        self._frames: dict[str, list[str]] = {}
        self._expressions: dict[str, list[Expression]] = {}
        self._extra: dict[tuple[str, str], dict] = {}
        for vid, data in videos.items():
            check_name(vid, meta_path, "video id")
            where = f"{meta_path} video {vid}"
            if not isinstance(data, dict) or "frames" not in data:
                raise FlowRVSError(f"{where}: no 'frames' list")
            self._frames[vid] = [check_name(str(f), meta_path, "frame name") for f in data["frames"]]
            exps = []
            for exp_id, e in (data.get("expressions") or {}).items():
                check_name(str(exp_id), meta_path, "expression id")
                if not isinstance(e, dict) or "exp" not in e:
                    raise FlowRVSError(f"{where} expression {exp_id}: no 'exp' sentence")
                obj_ids = ()
                if e.get("obj_id") is not None:
                    raw = e["obj_id"]
                    raw = raw if isinstance(raw, list) else [raw]
                    obj_ids = tuple(_as_obj_id(o, f"{where} expression {exp_id}") for o in raw)
                exps.append(Expression(video=vid, exp_id=str(exp_id), sentence=str(e["exp"]), obj_ids=obj_ids))
                self._extra[(vid, str(exp_id))] = e
            self._expressions[vid] = exps
        self._videos = sorted(self._frames)

    # -- interface -------------------------------------------------------------------------
    def _where(self) -> str:
        return f"the {self.split} split of {self.root}"

    def frame_path(self, video: str, name: str) -> Path:
        return self.image_dir / video / f"{name}{self.frame_ext}"

    def mask_path(self, video: str, name: str) -> Path:
        return self.mask_dir / video / f"{name}{self.mask_ext}"

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        paths = [self.frame_path(video, n) for n in self.frame_names_at(video, indices)]
        return stack_frames([read_rgb(p) for p in paths], paths)

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        if not self.has_masks:
            return None
        video = expression.video
        if not expression.obj_ids:
            raise FlowRVSError(f"expression {expression.key} has no obj_id; cannot build its mask")
        ids = np.asarray(expression.obj_ids)
        names = self.frame_names_at(video, indices)
        masks: list[np.ndarray | None] = []
        shape = None
        for n in names:
            p = self.mask_path(video, n)
            if p.is_file():
                ann = read_index_png(p)
                if shape is None:
                    shape = ann.shape
                elif ann.shape != shape:
                    raise FlowRVSError(f"{p} has size {ann.shape}, other annotations of the video {shape}")
                masks.append(np.isin(ann, ids))
            else:
                masks.append(None)
        if shape is None and names:
            shape = image_size(self.frame_path(video, names[0]))
        out = np.zeros((len(names), *(shape or (0, 0))), dtype=bool)
        for t, m in enumerate(masks):
            if m is not None:
                out[t] = m
        return out

"""Reading prediction PNGs, from any tool, as arrays the scorers take.

A per-expression prediction PNG is foreground where its value is nonzero (palette PNGs: a nonzero
palette index; RGB: any nonzero channel; with alpha: also a nonzero alpha); see
:func:`read_prediction_mask`. A DAVIS-toolkit result PNG holds object proposal ids (indexed or
grayscale, values ``0..MAX_PROPOSALS``); see :func:`read_davis_result`. A PNG whose size differs
from the ground truth is an error (:func:`size_error`), never resized.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.eval.davis import MAX_PROPOSALS

__all__ = ["read_prediction_mask", "read_davis_result", "davis_index_frame", "size_error", "scorable_expressions",
           "missing_predictions", "missing_error", "read_prediction_frames"]

_INDEX_MODES = ("P", "L", "I", "I;16", "I;16B", "I;16L")


def read_prediction_mask(path: Path) -> np.ndarray:
    """One prediction PNG as an ``(H, W)`` bool mask (see the module docstring for what counts as fg)."""
    try:
        with Image.open(path) as img:
            if img.mode == "PA":
                img = img.convert("RGBA")
            arr = np.asarray(img)
            has_alpha = img.mode in ("RGBA", "LA")
    except FileNotFoundError as err:
        raise FlowRVSError(f"missing prediction {path}") from err
    except OSError as err:  # not an image, truncated, unreadable
        raise FlowRVSError(f"cannot read prediction {path}: {err}") from err
    if has_alpha:
        return np.any(arr[..., :-1] != 0, axis=-1) & (arr[..., -1] != 0)
    if arr.ndim == 3:
        return np.any(arr != 0, axis=-1)
    return arr != 0


def read_davis_result(path: Path) -> np.ndarray:
    """One PNG of the DAVIS toolkit's layout as an ``(H, W)`` array of proposal ids (0 = background).

    Indexed ('P') or grayscale PNGs only; a value above :data:`MAX_PROPOSALS` is an error.
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.asarray(img) if mode in _INDEX_MODES else None
    except FileNotFoundError as err:
        raise FlowRVSError(f"missing prediction {path}") from err
    except OSError as err:  # not an image, truncated, unreadable
        raise FlowRVSError(f"cannot read prediction {path}: {err}") from err
    if arr is None:
        raise FlowRVSError(f"prediction {path} is a {mode!r} image; the DAVIS unsupervised protocol needs "
                           f"indexed ('P') or grayscale PNGs whose values are object ids")
    top = int(arr.max()) if arr.size else 0
    if top > MAX_PROPOSALS:
        hint = " (a 0/255 mask? write object ids 1, 2, ...)" if top == 255 else ""
        raise FlowRVSError(f"prediction {path} has pixel value {top}; the DAVIS unsupervised protocol takes at "
                           f"most {MAX_PROPOSALS} object proposals (values 1..{MAX_PROPOSALS}){hint}")
    return arr


def davis_index_frame(sources: Iterable[tuple[int, Path]], shape: tuple[int, int], *,
                      allow_missing: bool = False) -> tuple[np.ndarray, int]:
    """One ``(H, W)`` uint8 frame of object ids painted from per-expression PNGs.

    ``sources``: ``(value, png path)`` in painting order
    (:func:`flowrvs.eval.layouts.davis_paint_order`); each PNG's foreground (see
    :func:`read_prediction_mask`) gets its value. Returns the frame and how many PNGs were
    missing (only with ``allow_missing``; else a missing PNG is an error).
    """
    index = np.zeros(shape, dtype=np.uint8)
    missing = 0
    for value, path in sources:
        if allow_missing and not path.is_file():
            missing += 1
            continue
        mask = read_prediction_mask(path)
        if mask.shape != tuple(shape):
            raise size_error(path, mask.shape, shape)
        index[mask] = value
    return index, missing


def size_error(path: Path, got: tuple, want: tuple) -> FlowRVSError:
    """The error of a prediction whose ``(H, W)`` ``got`` is not the ground truth's ``want``."""
    return FlowRVSError(f"prediction {path} is {got[1]}x{got[0]}, the ground truth is {want[1]}x{want[0]} (WxH); "
                        "predictions are never resized")


def scorable_expressions(dataset, pred_dir: Path, name: str, no_masks: str) -> list:
    """The split's expressions, after checking it has masks (else ``no_masks``, formatted with
    ``split``), the prediction folder exists, and result keys (``<video>_<exp_id>``) are unique."""
    split = getattr(dataset, "split", "?")
    if not dataset.has_masks:
        raise FlowRVSError(no_masks.format(name=name, split=split))
    if not pred_dir.is_dir():
        raise FlowRVSError(f"prediction folder {pred_dir} does not exist")
    expressions = dataset.all_expressions()
    if not expressions:
        raise FlowRVSError(f"{name} split {split} has no expressions")
    keys: set[str] = set()
    for expr in expressions:
        if expr.key in keys:
            raise FlowRVSError(f"two expressions share the result key {expr.key!r}")
        keys.add(expr.key)
    return expressions


def missing_predictions(dataset, expressions: Iterable, pred_dir: Path) -> list[Path]:
    """Every ``<pred_dir>/<video>/<exp_id>/<frame>.png`` of ``expressions`` that is not on disk."""
    missing: list[Path] = []
    for expr in expressions:
        folder = pred_dir / expr.video / expr.exp_id
        try:
            present = set(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing.extend(folder / f"{n}.png" for n in dataset.frame_names(expr.video) if f"{n}.png" not in present)
    return missing


def missing_error(missing: list[Path]) -> FlowRVSError:
    """One line naming the first missing prediction folder or PNGs and the way to score them as empty."""
    hint = "pass --allow-missing to score missing frames as empty"
    folder = missing[0].parent
    if not folder.is_dir():
        return FlowRVSError(f"missing prediction folder {folder} ({len(missing)} frames missing in all); {hint}")
    shown = ", ".join(str(p) for p in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return FlowRVSError(f"{len(missing)} prediction PNGs missing: {shown}{more}; {hint}")


def read_prediction_frames(folder: Path, names: list[str], shape: tuple[int, int], allow_missing: bool) -> np.ndarray:
    """``(len(names), H, W)`` bool predictions ``folder/<name>.png`` at the ground truth's ``shape``
    (a missing PNG is empty with ``allow_missing``, else an error)."""
    out = np.zeros((len(names), *shape), dtype=bool)
    for t, name in enumerate(names):
        path = folder / f"{name}.png"
        if allow_missing and not path.is_file():
            continue
        mask = read_prediction_mask(path)
        if mask.shape != tuple(shape):
            raise size_error(path, mask.shape, shape)
        out[t] = mask
    return out

"""Binary masks on disk: 0/255 PNGs, and COCO run-length encoding (pycocotools).

A mask is ``(H, W)`` bool (any dtype: nonzero is foreground). PNGs are 8-bit greyscale ('L')
of 0/255, written atomically; RLEs are ``{"size": [H, W], "counts": str}`` as MeViS and
``masks.json`` store them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path
from flowrvs.io.checks import one_line


@contextmanager
def _pycocotools_quiet() -> Iterator[None]:
    """pycocotools 2.0.x calls ``np.array(copy=False)`` internally, which NumPy 2 flags; harmless here.

    Silenced only around our own calls: the caller's warning filters stay as they were.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy", category=DeprecationWarning)
        yield


def encode_rle(mask: np.ndarray) -> dict:
    """Encode one ``(H, W)`` mask (any dtype, nonzero = foreground) as ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"encode_rle takes one (H, W) mask, got shape {mask.shape}")
    with _pycocotools_quiet():
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict | None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes or uncompressed list counts) to an ``(H, W)`` bool mask.

    ``None`` (an object absent in that frame) decodes to an empty mask of ``shape``.
    """
    if rle is None:
        if shape is None:
            raise ValueError("decode_rle(None) needs the frame shape")
        return np.zeros(shape, dtype=bool)
    size = [int(s) for s in rle["size"]]
    counts = rle["counts"]
    if isinstance(counts, list):
        with _pycocotools_quiet():
            compressed = mask_utils.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    else:
        compressed = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    with _pycocotools_quiet():
        return mask_utils.decode(compressed).astype(bool)


def check_mask_name(name: str) -> None:
    """A frame name usable as a file stem (no path separators, not empty, not . or ..)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"bad mask name {name!r}")


def write_mask_png(path, mask: np.ndarray) -> None:
    """Write one ``(H, W)`` mask (nonzero = foreground) as an 8-bit 'L' PNG of 0/255, atomically."""
    img = Image.fromarray(np.where(np.asarray(mask).astype(bool), np.uint8(255), np.uint8(0)))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_mask_pngs(folder, masks: np.ndarray, names: list[str]) -> None:
    """Write ``masks`` ``(T, H, W)`` bool as ``folder/<name>.png``: 8-bit 'L' PNGs with values 0/255.

    Non-bool masks count as True where nonzero. Each file is written atomically.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T,H,W), got shape {masks.shape}")
    if len(names) != masks.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks but {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError("mask names must be unique")
    for name in names:
        check_mask_name(name)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for mask, name in zip(masks, names):
            write_mask_png(folder / f"{name}.png", mask)
    except OSError as exc:
        raise FlowRVSError(f"cannot write masks to {folder}: {one_line(exc)}") from exc

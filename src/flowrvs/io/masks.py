"""COCO run-length encoding of binary masks (pycocotools), as MeViS and our outputs store them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from pycocotools import mask as mask_utils


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

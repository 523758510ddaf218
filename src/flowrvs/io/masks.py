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


#: A mask side past this (io.read.MAX_SIDE, the largest frame a video header may claim) is refused.
MAX_MASK_SIDE = 16384


def rle_size(rle) -> tuple[int, int]:
    """``(H, W)`` of a COCO RLE: its ``size``, two whole numbers in ``[0, MAX_MASK_SIDE]``, else ValueError."""
    size = rle.get("size") if isinstance(rle, dict) else None
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)):
        raise ValueError(f"an RLE's size must be [height, width], got {size!r}")
    if not all(0 <= s <= MAX_MASK_SIDE for s in size):
        raise ValueError(f"an RLE's size {list(size)} is outside 0..{MAX_MASK_SIDE}")
    return int(size[0]), int(size[1])


def _compressed_runs(counts: bytes) -> np.ndarray:
    """The run lengths of a COCO compressed counts string (pycocotools' ``rleFrString``), or ValueError.

    Each run is 5-bit digits, least significant first, 0x20 marking "more digits", 0x10 in the
    last digit the sign; from the third run on, each is a difference to the run two before.
    """
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return c
    if c.min() < 0 or c.max() >= 64:
        raise ValueError("an RLE's counts string holds a byte outside '0'..'o'")
    last = (c & 0x20) == 0  # the last digit of each run
    if not last[-1]:
        raise ValueError("an RLE's counts string ends inside a number")
    starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    digit = np.arange(c.size) - np.repeat(starts, np.diff(np.append(starts, c.size)))
    if digit.max() > 7:  # no run of a 16384x16384 mask needs more than 7 digits
        raise ValueError("an RLE's counts string holds a run too long for any mask")
    x = np.add.reduceat((c & 0x1F) << (5 * digit), starts)
    ends = np.flatnonzero(last)
    x = np.where(c[ends] & 0x10, x - (1 << (5 * (digit[ends] + 1))), x)
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def check_rle(rle) -> tuple[int, int]:
    """``(H, W)`` of a COCO RLE whose runs are non-negative and cover exactly its ``H * W`` pixels,
    else ValueError (pycocotools decodes a short one from uninitialised memory)."""
    h, w = rle_size(rle)
    counts = rle.get("counts")
    if isinstance(counts, str):
        counts = counts.encode("ascii", "replace")
    if isinstance(counts, bytes):
        runs = _compressed_runs(counts)
    elif isinstance(counts, list) and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in counts):
        if any(not 0 <= c <= h * w for c in counts):  # before numpy, which overflows on huge numbers
            raise ValueError(f"an RLE's runs must lie in 0..{h * w} (its size is {h}x{w})")
        runs = np.asarray(counts, dtype=np.int64).reshape(-1)
    else:
        raise ValueError(f"an RLE's counts must be a string or a list of whole numbers, got {type(counts).__name__}")
    if (runs < 0).any() or int(runs.sum()) != h * w:
        raise ValueError(f"an RLE's runs cover {int(runs.sum())} pixels (or run backwards); its size {h}x{w} has {h * w}")
    return h, w


def decode_rle(rle: dict | None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes or uncompressed list counts) to an ``(H, W)`` bool mask.

    ``None`` (an object absent in that frame) decodes to an empty mask of ``shape``. A malformed
    RLE (see :func:`check_rle`) raises ValueError.
    """
    if rle is None:
        if shape is None:
            raise ValueError("decode_rle(None) needs the frame shape")
        return np.zeros(shape, dtype=bool)
    size = list(check_rle(rle))
    counts = rle["counts"]
    if isinstance(counts, list):
        with _pycocotools_quiet():
            compressed = mask_utils.frPyObjects({"size": size, "counts": [int(c) for c in counts]}, size[0], size[1])
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

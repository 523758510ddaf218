"""Clip geometry: fitting frames into the model's box, resizing, horizontal flips with word swaps."""

from __future__ import annotations

import dataclasses
import re

import cv2
import numpy as np

from flowrvs.data.base import Clip
from flowrvs.io.frames import WORKING_BOX, fit_size  # noqa: F401  (re-exported: the one rule for working sizes)


def resize_clip(
    frames: np.ndarray, mask: np.ndarray | None, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize ``(T, H, W, 3)`` uint8 frames (area when shrinking, bilinear when enlarging) and a
    ``(T, H, W)`` bool mask (nearest) to ``size = (H', W')``. Returns ``(frames, mask)``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    out_h, out_w = int(size[0]), int(size[1])
    t, h, w = frames.shape[:3]
    if mask is not None and tuple(mask.shape) != (t, h, w):
        raise ValueError(f"mask shape {mask.shape} does not match frames {frames.shape[:3]}")
    if (h, w) == (out_h, out_w):
        return frames, (None if mask is None else mask.astype(bool, copy=False))
    interp = cv2.INTER_AREA if out_h * out_w < h * w else cv2.INTER_LINEAR
    out = np.empty((t, out_h, out_w, 3), dtype=np.uint8)
    for i in range(t):
        out[i] = cv2.resize(np.ascontiguousarray(frames[i]), (out_w, out_h), interpolation=interp)
    if mask is None:
        return out, None
    out_mask = np.empty((t, out_h, out_w), dtype=bool)
    for i in range(t):
        m = np.ascontiguousarray(mask[i], dtype=np.uint8)
        out_mask[i] = cv2.resize(m, (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return out, out_mask


def resize_clip_to_box(clip: Clip, box: tuple[int, int] = WORKING_BOX, multiple: int = 16) -> Clip:
    """A copy of ``clip`` resized to ``fit_size`` of its frames inside ``box``."""
    size = fit_size(clip.frames.shape[1], clip.frames.shape[2], box, multiple)
    frames, mask = resize_clip(clip.frames, clip.mask, size)
    return dataclasses.replace(clip, frames=frames, mask=mask, frame_names=list(clip.frame_names))


_LR = re.compile(r"\b(left|right)(most)?\b", re.IGNORECASE)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:].lower()
    return word.lower()


def swap_left_right(sentence: str) -> str:
    """Swap the whole words left/right (and leftmost/rightmost), keeping their case.

    "left-hand" becomes "right-hand"; "leftover" or "bright" are untouched. The verb "left"
    ("the man who left") is swapped too: words are swapped, not parsed.
    """

    def repl(m: re.Match) -> str:
        base = m.group(1)
        new = "right" if base.lower() == "left" else "left"
        return _match_case(new, base) + (m.group(2) or "")

    return _LR.sub(repl, sentence)


def hflip_clip(clip: Clip) -> Clip:
    """Mirror frames and mask left-right and swap left/right in the sentence."""
    frames = np.ascontiguousarray(clip.frames[:, :, ::-1])
    mask = None if clip.mask is None else np.ascontiguousarray(clip.mask[:, :, ::-1])
    return dataclasses.replace(
        clip, frames=frames, mask=mask, sentence=swap_left_right(clip.sentence), frame_names=list(clip.frame_names)
    )

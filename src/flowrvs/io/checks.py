"""Checks shared by the io modules: frame arrays, and one-line reasons for library errors.

Pillow, PyAV and the OS raise errors whose text may span lines or be empty; the io modules
turn the ones that mean a user mistake into :class:`flowrvs.errors.FlowRVSError` with a
one-line message built here (the original error stays attached as the cause).
"""

from __future__ import annotations

import struct

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

# what Pillow raises for an unreadable, truncated or oversized image (a user's file, not a bug);
# a GIF cut inside a frame header makes it index past its buffer (IndexError, struct.error)
PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


def one_line(exc: BaseException) -> str:
    """The text of ``exc`` on one line (its type name when it has none)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file, or corrupt"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def av_reason(exc: av.FFmpegError) -> str:
    """Why FFmpeg failed, on one line (``strerror`` when it has one)."""
    reason = getattr(exc, "strerror", None) or one_line(exc)
    if isinstance(exc, av.error.InvalidDataError):
        reason += " (not a video file, or corrupt)"
    return " ".join(str(reason).split())


def check_frames(frames: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``frames`` is a non-empty ``(T, H, W, 3)`` uint8 array."""
    ok = isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4
    if not ok or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise ValueError(f"frames must be a (T,H,W,3) uint8 array, got shape {shape} dtype {dtype}")
    if 0 in frames.shape:
        raise ValueError(f"frames has shape {frames.shape}; need at least one non-empty frame")

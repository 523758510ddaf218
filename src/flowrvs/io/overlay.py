"""Masks drawn over frames, one colour per sentence, and videos put side by side.

Frames are ``(T, H, W, 3)`` (one frame ``(H, W, 3)``) uint8 RGB; masks are bool, one per
sentence; sentence ``k`` is drawn in ``PALETTE[k % len(PALETTE)]``.
"""

from __future__ import annotations

import numpy as np

from flowrvs.io.checks import check_frames

PALETTE: list[tuple[int, int, int]] = [
    (230, 25, 75),    # red
    (60, 180, 75),    # green
    (0, 130, 200),    # blue
    (255, 225, 25),   # yellow
    (245, 130, 48),   # orange
    (145, 30, 180),   # purple
    (70, 240, 240),   # cyan
    (240, 50, 230),   # magenta
    (210, 245, 60),   # lime
    (0, 128, 128),    # teal
    (255, 105, 180),  # pink
    (128, 64, 0),     # brown
]


def _inner_contour(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` ``(H, W)`` bool with a 4-neighbour outside it (image borders don't count)."""
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay_frame(frame: np.ndarray, masks, alpha: float = 0.5) -> np.ndarray:
    """One frame of :func:`overlay_masks`: ``frame`` ``(H, W, 3)`` uint8, ``masks`` ``(K, H, W)``
    bool (or a list of ``(H, W)``), prompt ``k`` in ``PALETTE[k % len(PALETTE)]``. Returns a new
    ``(H, W, 3)`` uint8 frame."""
    out = frame.astype(np.float32)
    for k, sel in enumerate(masks):
        sel = np.asarray(sel).astype(bool, copy=False)
        if not sel.any():
            continue
        colour = np.array(PALETTE[k % len(PALETTE)], dtype=np.float32)
        out[sel] = (1.0 - alpha) * out[sel] + alpha * colour
        out[_inner_contour(sel)] = colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay_masks(frames: np.ndarray, masks: list[np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """Blend each prompt's mask into ``frames`` in its own colour, with a 1-px contour.

    ``frames`` is ``(T, H, W, 3)`` uint8; ``masks`` holds one ``(T, H, W)`` bool array per
    prompt; prompt ``k`` uses ``PALETTE[k % len(PALETTE)]`` blended with weight ``alpha`` in
    ``[0, 1]``; later prompts are drawn over earlier ones. The contour lies on the mask's own
    edge pixels, so pixels outside every mask are returned unchanged. Returns ``(T, H, W, 3)`` uint8.
    """
    check_frames(frames)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    masks = [np.asarray(m).astype(bool, copy=False) for m in masks]
    for k, m in enumerate(masks):
        if m.shape != frames.shape[:3]:
            raise ValueError(f"mask {k} has shape {m.shape}, frames are {frames.shape[:3]}")
    out = frames.copy()
    if not masks:
        return out
    for t in range(frames.shape[0]):
        out[t] = overlay_frame(frames[t], [m[t] for m in masks], alpha)
    return out


def side_by_side(*videos: np.ndarray) -> np.ndarray:
    """Concatenate ``(T, H, W_i, 3)`` arrays with equal ``T`` and ``H`` along the width."""
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    first = videos[0]
    for i, v in enumerate(videos):
        if v.ndim != 4 or v.shape[:2] != first.shape[:2] or v.shape[3] != first.shape[3]:
            raise ValueError(f"video {i} has shape {v.shape}, incompatible with video 0 {first.shape}")
    return np.concatenate(videos, axis=2)

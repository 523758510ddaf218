"""Frames made for the io and streaming tests, and a peak-memory probe."""

from __future__ import annotations

import numpy as np

from flowrvs.io.overlay import PALETTE


def smooth_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 of large flat blocks that drift slowly: benign for lossy codecs."""
    rng = np.random.default_rng(seed)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(40, 216, size=3)
    for i in range(t):
        img = np.empty((h, w, 3), dtype=np.float64)
        for c in range(3):
            img[..., c] = base[c] + 30 * np.sin(2 * np.pi * (xx / w + yy / (2 * h) + i / (4 * t) + c / 3))
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
        frames[i, h // 4 : h // 2, w // 4 + i : w // 2 + i] = (220, 60, 40)
    return frames


def distinct_frames(t: int, h: int, w: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames, each a different flat colour."""
    colours = np.array([PALETTE[i % len(PALETTE)] for i in range(t)], dtype=np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (t, h, w, 3)).copy()



def peak_traced_bytes(fn) -> int:
    """Peak bytes NumPy and Python allocate while ``fn`` runs (tracemalloc counts NumPy's arrays)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


"""Paired differences of two runs over the same items (sentences, expressions): the mean of
``values - baseline`` and the standard error of that mean, as the benchmarks report them."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["paired_difference", "format_difference"]


def paired_difference(values: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """``(mean, standard error)`` of ``values[i] - baseline[i]``; the error is NaN for fewer than two
    items (ValueError on none, or on lengths that differ)."""
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equally long non-empty 1-D sequences, got shapes {a.shape} and {b.shape}")
    diff = a - b
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return float(diff.mean()), se


def format_difference(mean: float, se: float, digits: int = 4) -> str:
    """``"+0.0467 ± 0.0212"``."""
    return f"{mean:+.{digits}f} ± {se:.{digits}f}"

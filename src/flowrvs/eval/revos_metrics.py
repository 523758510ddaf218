"""ReVOS scores of arrays (cilinyan/VISA ``tools/eval_revos.py`` and ``tools/metrics.py``).

Per expression, per frame then averaged over its ``T`` frames (``pred``, ``gt``, ``foreground``:
``(T, H, W)``, nonzero = foreground; ``foreground`` is every annotated object of the video):

* J, F: the DAVIS region similarity and boundary F (``bound_th=0.008``).
* A (accuracy) = ``mean(gt == pred)`` over the frame's pixels.
* R (robustness) = ``max(1 - sum(~gt & pred) / (sum(foreground) + 1e-6), 0)``.

Masks are compared as booleans here: the official scorer reads 0/1 PNGs as they are, so a
prediction written 0/255 scores differently there (a writer for ReVOS must write 0/1).

Dataset scores (:func:`summarize`): means over the ``referring`` and over the ``reasoning``
expressions of J, F, A, R and ``J&F = (J + F) / 2``; ``overall`` is the mean of the two groups'
scores. No-target expressions enter none of these means. All values are in [0, 1].

Chunks of frames: :func:`frame_scores` per chunk, :func:`flowrvs.eval.metrics.concat_frames`, then
:func:`expression_scores` give exactly :func:`score_expression`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from flowrvs.eval.metrics import contour_accuracy, region_similarity

__all__ = ["GROUPS", "SCORE_KEYS", "accuracy", "robustness", "frame_scores",
           "expression_scores", "score_expression", "summarize"]

GROUPS = ("referring", "reasoning")
SCORE_KEYS = ("J", "F", "J&F", "A", "R")
_EPS = 1e-6


def _stacks(*masks) -> list[np.ndarray]:
    out = [np.asarray(m) for m in masks]
    out = [m[None] if m.ndim == 2 else m for m in out]
    shapes = {m.shape for m in out}
    if len(shapes) != 1 or out[0].ndim != 3:
        raise ValueError(f"masks must be (T, H, W) stacks of one shape, got {[m.shape for m in out]}")
    return [m if m.dtype == bool else m != 0 for m in out]


def accuracy(pred, gt) -> np.ndarray:
    """Per-frame pixel accuracy ``mean(gt == pred)``, float64 ``(T,)`` in [0, 1]."""
    p, g = _stacks(pred, gt)
    return np.array([np.count_nonzero(p[t] == g[t]) / p[t].size for t in range(p.shape[0])], dtype=np.float64)


def robustness(pred, gt, foreground) -> np.ndarray:
    """Per-frame ``max(1 - |pred & ~gt| / (|foreground| + 1e-6), 0)``, float64 ``(T,)`` in [0, 1]."""
    p, g, fg = _stacks(pred, gt, foreground)
    out = np.empty(p.shape[0], dtype=np.float64)
    for t in range(p.shape[0]):
        false_pos = np.count_nonzero(p[t] & ~g[t])
        out[t] = max(1.0 - false_pos / (np.count_nonzero(fg[t]) + _EPS), 0.0)
    return out


def frame_scores(pred, gt, foreground, bound_th: float = 0.008) -> dict[str, np.ndarray]:
    """Per-frame ``{"J", "F", "A", "R"}``, float64 ``(T,)`` each, of ``(T, H, W)`` stacks."""
    return {
        "J": region_similarity(pred, gt),
        "F": contour_accuracy(pred, gt, bound_th=bound_th),
        "A": accuracy(pred, gt),
        "R": robustness(pred, gt, foreground),
    }


def expression_scores(frames: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``{"J", "F", "J&F", "A", "R"}`` of one expression from its :func:`frame_scores`."""
    if np.asarray(frames["J"]).size == 0:
        raise ValueError("cannot score an expression with no frames")
    out = {k: float(np.mean(frames[k])) for k in ("J", "F", "A", "R")}
    out["J&F"] = (out["J"] + out["F"]) / 2
    return {k: out[k] for k in SCORE_KEYS}


def score_expression(pred, gt, foreground, bound_th: float = 0.008) -> dict[str, float]:
    """``{"J", "F", "J&F", "A", "R"}`` of one expression, all stacks ``(T, H, W)``."""
    return expression_scores(frame_scores(pred, gt, foreground, bound_th=bound_th))


def summarize(per_expression: Mapping[str, Mapping]) -> dict[str, dict[str, float]]:
    """Dataset scores from per-expression records (each with ``"type"``: ``referring``,
    ``reasoning`` or ``no-target``, and the keys of :func:`expression_scores`):
    ``{"referring", "reasoning", "overall"}``. A group without expressions is left out and
    ``overall`` is then that of the one present; ValueError when neither has any."""
    out: dict[str, dict[str, float]] = {}
    for group in GROUPS:
        records = [r for r in per_expression.values() if r["type"] == group]
        if records:
            means = {k: float(np.mean([r[k] for r in records])) for k in ("J", "F", "A", "R")}
            means["J&F"] = (means["J"] + means["F"]) / 2
            out[group] = {k: means[k] for k in SCORE_KEYS}
    if not out:
        raise ValueError("no referring or reasoning expressions to summarise")
    out["overall"] = {k: float(np.mean([out[g][k] for g in GROUPS if g in out])) for k in SCORE_KEYS}
    return out

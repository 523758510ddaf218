"""Long-RVOS scores of arrays (the official ``eval/eval_long_rvos`` scorer's formulas).

Per expression, over all its ``T`` frames (``pred``, ``gt``: ``(T, H, W)``, nonzero = foreground):

* J, F: mean over frames of the DAVIS region similarity and boundary F (``bound_th=0.008``);
  J is 1 on a frame where both masks are empty.
* With ``T_gt`` / ``T_pred`` the frames where the ground truth / the prediction has any
  foreground: ``tIoU = |T_gt & T_pred| / |T_gt | T_pred|`` and
  ``vIoU = sum(J_t for t in T_gt & T_pred) / |T_gt | T_pred|``, both 1 when the union is empty.

Dataset scores (:func:`summarize`): the mean over expressions of J, F, tIoU, vIoU and
``J&F = (J + F) / 2``, per type (``static``, ``dynamic``, ``hybrid``) and ``overall``, which pools
every expression (not a mean of the three types). All values are in [0, 1].

Long videos can be scored in chunks of frames: :func:`frame_scores` of each chunk,
:func:`flowrvs.eval.metrics.concat_frames`, then :func:`expression_scores` give exactly :func:`score_expression`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from flowrvs.eval.metrics import contour_accuracy, region_similarity

__all__ = ["TYPES", "SCORE_KEYS", "frame_scores", "expression_scores", "score_expression",
           "summarize"]

TYPES = ("static", "dynamic", "hybrid")
SCORE_KEYS = ("J", "F", "J&F", "tIoU", "vIoU")


def frame_scores(pred, gt, bound_th: float = 0.008) -> dict[str, np.ndarray]:
    """Per-frame values of ``(T, H, W)`` stacks: ``{"J", "F"}`` float64 ``(T,)`` in [0, 1] and
    ``{"gt", "pred"}`` bool ``(T,)`` (the frame has any foreground)."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    return {
        "J": region_similarity(pred, gt),
        "F": contour_accuracy(pred, gt, bound_th=bound_th),
        "gt": gt.reshape(gt.shape[0], -1).any(axis=1) if gt.ndim == 3 else np.array([gt.any()]),
        "pred": pred.reshape(pred.shape[0], -1).any(axis=1) if pred.ndim == 3 else np.array([pred.any()]),
    }


def expression_scores(frames: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``{"J", "F", "J&F", "tIoU", "vIoU"}`` of one expression from its :func:`frame_scores`."""
    j = np.asarray(frames["J"], dtype=np.float64)
    if j.size == 0:
        raise ValueError("cannot score an expression with no frames")
    f = np.asarray(frames["F"], dtype=np.float64)
    gt = np.asarray(frames["gt"], dtype=bool)
    pred = np.asarray(frames["pred"], dtype=bool)
    both = gt & pred
    union = int(np.count_nonzero(gt | pred))
    if union == 0:
        tiou = viou = 1.0
    else:
        tiou = np.count_nonzero(both) / union
        viou = float(j[both].sum()) / union
    jm, fm = float(j.mean()), float(f.mean())
    return {"J": jm, "F": fm, "J&F": (jm + fm) / 2, "tIoU": float(tiou), "vIoU": float(viou)}


def score_expression(pred, gt, bound_th: float = 0.008) -> dict[str, float]:
    """``{"J", "F", "J&F", "tIoU", "vIoU"}`` of one expression, ``pred``/``gt`` ``(T, H, W)``."""
    return expression_scores(frame_scores(pred, gt, bound_th=bound_th))


def _mean(records: list[Mapping]) -> dict[str, float]:
    out = {k: float(np.mean([r[k] for r in records])) for k in ("J", "F", "tIoU", "vIoU")}
    out["J&F"] = (out["J"] + out["F"]) / 2
    return {k: out[k] for k in SCORE_KEYS}


def summarize(per_expression: Mapping[str, Mapping]) -> dict[str, dict[str, float]]:
    """Dataset scores from per-expression records (each with ``"type"`` in :data:`TYPES` and the
    keys of :func:`expression_scores`): ``{type: scores, ..., "overall": scores}``. A type
    without expressions is left out; ValueError on no expressions or an unknown type."""
    records = list(per_expression.values())
    if not records:
        raise ValueError("no expressions to summarise")
    out: dict[str, dict[str, float]] = {}
    for kind in TYPES:
        group = [r for r in records if r["type"] == kind]
        if group:
            out[kind] = _mean(group)
    unknown = {r["type"] for r in records} - set(TYPES)
    if unknown:
        raise ValueError(f"unknown Long-RVOS types {sorted(unknown)}")
    out["overall"] = _mean(records)
    return out

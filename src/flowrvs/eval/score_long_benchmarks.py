"""Scoring saved predictions on Long-RVOS and ReVOS, as their official scorers do.

Predictions are ``PRED_DIR/<video>/<exp_id>/<frame>.png``, one single-channel PNG per frame
of the split at the frame's size, from any tool; a pixel is foreground when nonzero (read by
:func:`flowrvs.eval.predictions.read_prediction_mask`). The official Long-RVOS scorer reads 0/255
PNGs; **the official ReVOS scorer needs 0/1 PNGs** (0/255 breaks its A and R), so a writer of
ReVOS predictions must write 0/1 (this scorer accepts either). ReVOS video ids hold slashes
(``UVO/all/<id>``): their folders are nested. A missing PNG is an error naming it, unless
``allow_missing`` (then it is an empty mask, counted in ``"missing_frames"``).

Both scorers walk every expression in chunks of :data:`CHUNK` frames, so memory does not grow
with the length of the videos. They return::

    Long-RVOS: {"static", "dynamic", "hybrid", "overall": {"J", "F", "J&F", "tIoU", "vIoU"}, ...}
    ReVOS:     {"referring", "reasoning", "overall": {"J", "F", "J&F", "A", "R"}, ...}

plus ``"num_expressions"``, ``"missing_frames"``, ``"per_expression"`` (key ``<video>_<exp_id>``:
the scores, ``"type"``, ``"no_target"``, ``"video"``, ``"exp_id"``, ``"exp"``) and, when the
split has no-target expressions, ``"no_target": {"N-acc", "T-acc", "TP", "FN", "TN", "FP"}``
(:mod:`flowrvs.eval.no_target`). Scores are in [0, 1]. In Long-RVOS every expression enters its
type's mean and ``overall`` (the official scorer's rule); in ReVOS no-target expressions
(``type_id`` 2) enter no mean.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable


from flowrvs.data.base import Expression
from flowrvs.errors import FlowRVSError
from flowrvs.eval import long_rvos_metrics, revos_metrics
from flowrvs.eval.no_target import no_target_scores
from flowrvs.eval.metrics import concat_frames
from flowrvs.eval.predictions import missing_error, missing_predictions, read_prediction_frames, scorable_expressions

__all__ = ["CHUNK", "score_long_rvos", "score_revos"]

#: frames read and scored at a time.
CHUNK = 32






def _expressions(dataset, pred_dir: Path, allow_missing: bool, name: str) -> tuple[list[Expression], int]:
    """The split's expressions (checked: masks, unique keys, predictions present) and the missing count."""
    expressions = scorable_expressions(dataset, pred_dir, name,
                                       "{name} split {split} has no ground-truth masks to score against")
    missing = missing_predictions(dataset, expressions, pred_dir)
    if missing and not allow_missing:
        raise missing_error(missing)
    return expressions, len(missing)


def _walk(dataset, pred_dir, allow_missing: bool, progress: bool | None, name: str,
          chunk_scores: Callable, metrics) -> dict:
    """Score every expression chunk by chunk; ``chunk_scores(expr, idx, pred) -> per-frame dict``."""
    from tqdm import tqdm

    pred_dir = Path(pred_dir)
    expressions, n_missing = _expressions(dataset, pred_dir, allow_missing, name)
    per_expression: dict[str, dict] = {}
    pairs: list[tuple[bool, bool]] = []
    progress = sys.stderr.isatty() if progress is None else progress
    for expr in tqdm(expressions, desc="scoring", unit="expr", disable=not progress):
        names = dataset.frame_names(expr.video)
        if not names:
            raise FlowRVSError(f"video {expr.video!r} of {name} lists no frames")
        parts, empty = [], True
        for start in range(0, len(names), CHUNK):
            idx = list(range(start, min(start + CHUNK, len(names))))
            gt = dataset.load_mask(expr, idx)
            pred = read_prediction_frames(pred_dir / expr.video / expr.exp_id, names[start:idx[-1] + 1], gt.shape[1:],
                                          allow_missing)
            empty = empty and not pred.any()
            parts.append(chunk_scores(expr, idx, pred, gt))
        kind = dataset.kind(expr)
        no_target = not (expr.anno_ids or expr.obj_ids) or kind == "no-target"
        pairs.append((no_target, empty))
        per_expression[expr.key] = {**metrics.expression_scores(concat_frames(parts)), "type": kind,
                                    "no_target": no_target, "video": expr.video, "exp_id": expr.exp_id,
                                    "exp": expr.sentence}
    try:
        out = metrics.summarize(per_expression)
    except ValueError as err:
        raise FlowRVSError(f"{name} split {getattr(dataset, 'split', '?')}: {err}") from err
    out.update(num_expressions=len(per_expression), missing_frames=n_missing, per_expression=per_expression)
    if any(no_target for no_target, _ in pairs):
        out["no_target"] = no_target_scores(pairs)
    return out


def score_long_rvos(dataset, pred_dir, *, allow_missing: bool = False, progress: bool | None = None) -> dict:
    """Score ``pred_dir`` against a :class:`~flowrvs.data.long_rvos.LongRVOSDataset` split (see the
    module docstring for the layout and the returned dict). ``progress=None``: a bar only on a terminal."""
    def chunk_scores(expr, idx, pred, gt):
        return long_rvos_metrics.frame_scores(pred, gt)

    return _walk(dataset, pred_dir, allow_missing, progress, "Long-RVOS", chunk_scores, long_rvos_metrics)


def score_revos(dataset, pred_dir, *, allow_missing: bool = False, progress: bool | None = None) -> dict:
    """Score ``pred_dir`` against a :class:`~flowrvs.data.revos.ReVOSDataset` split (see the module
    docstring: predictions should be 0/1 PNGs for the official scorer; any nonzero counts here)."""
    def chunk_scores(expr, idx, pred, gt):
        foreground = dataset.load_foreground(expr.video, idx)
        if foreground.shape != gt.shape:
            raise FlowRVSError(f"foreground of {expr.video!r} is {foreground.shape[1:]}, "
                               f"its masks {gt.shape[1:]}")
        return revos_metrics.frame_scores(pred, gt, foreground)

    return _walk(dataset, pred_dir, allow_missing, progress, "ReVOS", chunk_scores, revos_metrics)

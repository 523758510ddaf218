"""No-target sentences (ReVOS ``type_id`` 2, MeViS v2 empty id lists): the GRES measures.

A no-target expression's ground truth is empty in every frame. An expression counts as
*predicted empty* when its prediction has no foreground pixel in any frame. Then:

* no-target expression predicted empty: true positive (TP), otherwise false negative (FN);
* target expression predicted empty: false positive (FP), otherwise true negative (TN);
* ``N-acc = TP / (TP + FN)`` and ``T-acc = TN / (TN + FP)``, in [0, 1] (None when the
  denominator is 0: no expression of that kind).
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["no_target_scores"]


def no_target_scores(expressions: Iterable[tuple[bool, bool]]) -> dict:
    """N-acc and T-acc of ``(no_target, predicted_empty)`` pairs, one per expression (see the
    module docstring). Returns ``{"N-acc", "T-acc"}`` (float in [0, 1] or None) and the counts
    ``{"TP", "FN", "TN", "FP"}``."""
    tp = fn = tn = fp = 0
    for no_target, predicted_empty in expressions:
        if no_target:
            tp += bool(predicted_empty)
            fn += not predicted_empty
        else:
            fp += bool(predicted_empty)
            tn += not predicted_empty
    return {
        "N-acc": tp / (tp + fn) if tp + fn else None,
        "T-acc": tn / (tn + fp) if tn + fp else None,
        "TP": tp, "FN": fn, "TN": tn, "FP": fp,
    }

"""Scoring saved mask predictions against a dataset split's ground truth (J, F, J&F).

Predictions are laid out as ``PRED_DIR/<video>/<exp_id>/<frame>.png``, one PNG per frame of the
split, from any tool: a pixel is foreground when its value is nonzero (palette PNGs: a nonzero
palette index; RGB: any nonzero channel; with alpha: also a nonzero alpha). A PNG whose size
differs from the ground truth is an error, never resized.

:func:`score_expression` scores one ``(T, H, W)`` prediction; :func:`score_mevis` scores a whole
MeViS split and returns the metrics dict that ``flowrvs score`` writes as ``metrics.json``;
:func:`write_metrics` writes ``metrics.json`` and ``metrics.csv``. Other datasets plug in through
:data:`SCORERS`.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .data.base import Expression, ReferringVideoDataset
from .errors import FlowRVSError
from .fileio import atomic_path, write_json
from .metrics import contour_accuracy, jf_summary, region_similarity

__all__ = [
    "score_expression",
    "read_prediction_mask",
    "score_dataset",
    "score_split",
    "score_mevis",
    "score_ytvos",
    "score_davis",
    "score_davis_split",
    "davis_set_dir",
    "SubsetDataset",
    "write_metrics",
    "summary_line",
    "SCORERS",
]


def score_expression(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> tuple[float, float]:
    """Mean J and mean F over the frames of one expression (``(T, H, W)`` or ``(H, W)``, nonzero = fg)."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    if pred.size == 0 and pred.ndim == 3 and pred.shape[0] == 0:
        raise ValueError("cannot score an expression with no frames")
    j = region_similarity(pred, gt)
    f = contour_accuracy(pred, gt, bound_th=bound_th)
    return float(j.mean()), float(f.mean())


def read_prediction_mask(path: Path) -> np.ndarray:
    """One prediction PNG as an ``(H, W)`` bool mask (see the module docstring for what counts as fg)."""
    try:
        with Image.open(path) as img:
            if img.mode == "PA":
                img = img.convert("RGBA")
            arr = np.asarray(img)
            has_alpha = img.mode in ("RGBA", "LA")
    except FileNotFoundError:
        raise FlowRVSError(f"missing prediction {path}") from None
    except (OSError, ValueError) as err:
        raise FlowRVSError(f"cannot read prediction {path}: {err}") from None
    if has_alpha:
        return np.any(arr[..., :-1] != 0, axis=-1) & (arr[..., -1] != 0)
    if arr.ndim == 3:
        return np.any(arr != 0, axis=-1)
    return arr != 0


def _check_predictions(dataset: ReferringVideoDataset, expressions: list[Expression], pred_dir: Path,
                       allow_missing: bool) -> int:
    """Fail fast (before any scoring) on missing prediction folders/frames; return how many are missing."""
    missing: list[Path] = []
    for expr in expressions:
        folder = pred_dir / expr.video / expr.exp_id
        frames = dataset.frame_names(expr.video)
        try:
            present = set(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing.extend(folder / f"{name}.png" for name in frames if f"{name}.png" not in present)
    if missing and not allow_missing:
        first = missing[0]
        folder = first.parent
        what = f"prediction folder {folder}" if not folder.is_dir() else f"prediction {first}"
        more = f" ({len(missing)} frames missing in all)" if len(missing) > 1 else ""
        raise FlowRVSError(f"missing {what}{more}; pass --allow-missing to score missing frames as empty")
    return len(missing)


def score_split(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None, dataset_name: str = "") -> dict:
    """Score ``pred_dir`` against every expression of ``dataset`` (which must have masks).

    Returns ``{"J", "F", "J&F", "num_expressions", "missing_frames", "per_expression": {key: {"J",
    "F", "J&F", "video", "exp_id", "exp"}}}``, with ``key = <video>_<exp_id>`` and scores in [0, 1].
    ``progress=None`` shows a tqdm bar only when stderr is a terminal.
    """
    from tqdm import tqdm

    pred_dir = Path(pred_dir)
    split = getattr(dataset, "split", "?")
    if not dataset.has_masks:
        raise FlowRVSError(f"split {split} has no masks; submit to the server")
    if not pred_dir.is_dir():
        raise FlowRVSError(f"prediction folder {pred_dir} does not exist")
    expressions = dataset.all_expressions()
    if not expressions:
        raise FlowRVSError(f"{dataset_name or 'dataset'} split {split} has no expressions")
    keys: dict[str, Expression] = {}
    for expr in expressions:
        if expr.key in keys:
            raise FlowRVSError(f"two expressions share the result key {expr.key!r}")
        keys[expr.key] = expr
    n_missing = _check_predictions(dataset, expressions, pred_dir, allow_missing)

    if progress is None:
        progress = sys.stderr.isatty()
    per_expression: dict[str, dict] = {}
    for expr in tqdm(expressions, desc="scoring", unit="expr", disable=not progress):
        gt = dataset.load_mask(expr)
        frames = dataset.frame_names(expr.video)
        pred = np.zeros(gt.shape, dtype=bool)
        for t, name in enumerate(frames):
            path = pred_dir / expr.video / expr.exp_id / f"{name}.png"
            if allow_missing and not path.is_file():
                continue  # counted by _check_predictions, scored as empty
            mask = read_prediction_mask(path)
            if mask.shape != gt.shape[1:]:
                raise FlowRVSError(f"prediction {path} is {mask.shape[1]}x{mask.shape[0]} but the ground truth "
                                   f"is {gt.shape[2]}x{gt.shape[1]} (WxH)")
            pred[t] = mask
        j, f = score_expression(pred, gt)
        per_expression[expr.key] = {
            "J": j,
            "F": f,
            "J&F": (j + f) / 2,
            "video": expr.video,
            "exp_id": expr.exp_id,
            "exp": expr.sentence,
        }
    summary = jf_summary([r["J"] for r in per_expression.values()], [r["F"] for r in per_expression.values()])
    return {
        **summary,
        "num_expressions": len(per_expression),
        "missing_frames": n_missing,
        "per_expression": per_expression,
    }


def score_mevis(pred_dir, root, split: str = "valid_u", *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score MeViS predictions in ``pred_dir`` against ``root/<split>``; see :func:`score_split`."""
    from .data.mevis import MeViSDataset

    dataset = MeViSDataset(root, split)
    return score_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress, dataset_name="MeViS")


class SubsetDataset(ReferringVideoDataset):
    """A read-only view of ``base`` keeping only some videos and/or some expression keys.

    ``videos=None`` keeps every video, ``keys=None`` every expression; videos left without an
    expression are dropped. Anything else (``split``, ``annotator``...) is read from ``base``.
    """

    def __init__(self, base: ReferringVideoDataset, videos=None, keys=None):
        self.base = base
        self.has_masks = base.has_masks
        keep_v = None if videos is None else set(videos)
        keep_k = None if keys is None else set(keys)
        self._expressions = {}
        for v in base.videos():
            if keep_v is not None and v not in keep_v:
                continue
            exps = [e for e in base.expressions(v) if keep_k is None or e.key in keep_k]
            if exps:
                self._expressions[v] = exps

    def __getattr__(self, name):
        if name == "base":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.base, name)

    def videos(self) -> list[str]:
        return sorted(self._expressions)

    def frame_names(self, video: str) -> list[str]:
        return self.base.frame_names(video)

    def expressions(self, video: str) -> list[Expression]:
        return list(self._expressions.get(video, []))

    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        return self.base.load_frames(video, indices)

    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        return self.base.load_mask(expression, indices)


def score_ytvos(pred_dir, root, split: str = "train", *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score Ref-YouTube-VOS predictions (``pred_dir[/Annotations]/<video>/<exp_id>/<frame>.png``).

    Only a split with ``Annotations/`` (``train``) can be scored locally; valid/test go to the server.
    """
    from .data.ytvos import RefYouTubeVOSDataset

    pred_dir = Path(pred_dir)
    if (pred_dir / "Annotations").is_dir():
        pred_dir = pred_dir / "Annotations"
    dataset = RefYouTubeVOSDataset(root, split)
    return score_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress,
                       dataset_name="Ref-YouTube-VOS")


def davis_set_dir(index: int) -> str:
    """Folder (under a Ref-DAVIS prediction folder) of the ``index``-th annotator set: ``anno_<index>``."""
    return f"anno_{index}"


def score_davis_split(dataset, pred_dir, *, allow_missing: bool = False, progress: bool | None = None) -> dict:
    """Ref-DAVIS17: score each annotator set on its own and average the sets.

    ``dataset`` is a :class:`~flowrvs.data.davis.RefDAVISDataset` (or a :class:`SubsetDataset` of
    one); predictions of the ``i``-th set (``dataset.annotator_labels()`` order) lie in
    ``pred_dir/anno_<i>/<video>/<exp_id>/<frame>.png``. Top-level J, F, J&F are the means over
    the sets; ``annotator_sets`` holds each set's numbers; ``per_expression`` all expressions
    (each with its ``annotator`` label).
    """
    pred_dir = Path(pred_dir)
    keys = {e.key for e in dataset.all_expressions()}
    labels = dataset.annotator_labels()
    sets, results = [], {}
    for i, (label, members) in enumerate(zip(labels, dataset.annotator_sets())):
        members = members & keys
        if not members:
            continue
        view = SubsetDataset(dataset, keys=members)
        metrics = score_split(view, pred_dir / davis_set_dir(i), allow_missing=allow_missing,
                              progress=progress, dataset_name="Ref-DAVIS17")
        for key, r in metrics["per_expression"].items():
            results[key] = {**r, "annotator": label}
        sets.append({"index": i, "label": label, "dir": davis_set_dir(i), "J": metrics["J"], "F": metrics["F"],
                     "J&F": metrics["J&F"], "num_expressions": metrics["num_expressions"],
                     "missing_frames": metrics["missing_frames"]})
    if not sets:
        raise FlowRVSError(f"Ref-DAVIS17 split {getattr(dataset, 'split', '?')} has no expressions")
    j = float(np.mean([s["J"] for s in sets]))
    f = float(np.mean([s["F"] for s in sets]))
    return {
        "J": j,
        "F": f,
        "J&F": (j + f) / 2,
        "num_expressions": len(results),
        "missing_frames": sum(s["missing_frames"] for s in sets),
        "annotator_sets": sets,
        "per_expression": results,
    }


def score_davis(pred_dir, root, split: str = "valid", *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score Ref-DAVIS17 predictions in ``pred_dir/anno_<i>/...``; see :func:`score_davis_split`."""
    from .data.davis import RefDAVISDataset

    return score_davis_split(RefDAVISDataset(root, split), pred_dir, allow_missing=allow_missing, progress=progress)


#: dataset name -> scorer(pred_dir, root, split, *, allow_missing, progress) -> metrics dict.
SCORERS: dict[str, Callable[..., dict]] = {"mevis": score_mevis, "ytvos": score_ytvos, "davis": score_davis}


def score_dataset(dataset: str, pred_dir, root, split: str, *, allow_missing: bool = False,
                  progress: bool | None = None) -> dict:
    """Dispatch to the scorer for ``dataset`` (FlowRVSError naming the supported ones otherwise)."""
    scorer = SCORERS.get(dataset.lower())
    if scorer is None:
        raise FlowRVSError(f"cannot score dataset {dataset!r}; supported: {', '.join(SCORERS)}")
    return scorer(pred_dir, root, split, allow_missing=allow_missing, progress=progress)


def write_metrics(metrics: dict, out_dir) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.csv`` (one row per expression) into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    json_path = out_dir / "metrics.json"
    csv_path = out_dir / "metrics.csv"
    write_json(json_path, metrics, indent=2)
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["key", "video", "exp_id", "J", "F", "J&F"])
            for key, r in metrics["per_expression"].items():
                writer.writerow([key, r["video"], r["exp_id"], repr(r["J"]), repr(r["F"]), repr(r["J&F"])])
    return json_path, csv_path


def summary_line(metrics: dict) -> str:
    """``J&F 0.xxxx  J 0.xxxx  F 0.xxxx``."""
    return f"J&F {metrics['J&F']:.4f}  J {metrics['J']:.4f}  F {metrics['F']:.4f}"

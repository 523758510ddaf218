"""Scoring a prediction folder against a benchmark split: walks the dataset and the folder, reads
the PNGs and hands arrays to the metrics (:mod:`flowrvs.eval.metrics`) and protocols
(:mod:`flowrvs.eval.davis`).

Predictions are laid out as ``PRED_DIR/<video>/<exp_id>/<frame>.png``, one PNG per frame of the
split, from any tool (what counts as foreground: :mod:`flowrvs.eval.predictions`).
:func:`score_split` scores a MeViS-style split and returns the metrics dict that ``flowrvs score``
writes as ``metrics.json``; :func:`write_metrics` writes ``metrics.json`` and ``metrics.csv``.
Datasets plug in through :data:`SCORERS`.

Ref-DAVIS17 is the exception: it is scored as the DAVIS-2017 toolkit's *unsupervised* task
(:mod:`flowrvs.eval.davis`) once per annotator set, on indexed PNGs of object ids per frame,
and the sets are averaged; see :func:`score_davis_split`.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from flowrvs.data.base import Expression, ReferringVideoDataset
from flowrvs.errors import FlowRVSError
from flowrvs.eval.davis import STAT_KEYS, average_sets, score_video, summarize
from flowrvs.eval.layouts import davis_paint_order, davis_set_dir, davis_sets
from flowrvs.eval.metrics import jf_summary, score_expression
from flowrvs.eval.no_target import no_target_scores
from flowrvs.eval.predictions import (davis_index_frame, missing_error, missing_predictions, read_davis_result,
                                      read_prediction_frames, scorable_expressions, size_error)
from flowrvs.eval.score_long_benchmarks import score_long_rvos, score_revos
from flowrvs.io.atomic import atomic_path, write_json

__all__ = [
    "SubsetDataset",
    "score_split",
    "score_mevis",
    "score_ytvos",
    "score_davis_split",
    "SCORERS",
    "score_dataset",
    "write_metrics",
    "summary_line",
]


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


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress










def score_split(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None, dataset_name: str = "", no_target: bool = False) -> dict:
    """Score ``pred_dir`` against every expression of ``dataset`` (which must have masks).

    Returns ``{"J", "F", "J&F", "num_expressions", "missing_frames", "per_expression": {key: {"J",
    "F", "J&F", "video", "exp_id", "exp"}}}``, with ``key = <video>_<exp_id>`` and scores in [0, 1].
    With ``no_target`` (MeViS), expressions with an empty ``anno_ids`` are no-target ones and, when
    the split has any, ``"no_target"`` holds :func:`flowrvs.eval.no_target.no_target_scores`
    (``N-acc``, ``T-acc`` and the counts). ``progress=None``: a tqdm bar only on a terminal.
    """
    pred_dir = Path(pred_dir)
    expressions = scorable_expressions(dataset, pred_dir, dataset_name or "dataset",
                                       "split {split} has no masks; submit to the server")
    missing = missing_predictions(dataset, expressions, pred_dir)
    if missing and not allow_missing:
        raise missing_error(missing)
    per_expression: dict[str, dict] = {}
    pairs: list[tuple[bool, bool]] = []
    for expr in tqdm(expressions, desc="scoring", unit="expr", disable=not _show_progress(progress)):
        gt = dataset.load_mask(expr)
        pred = read_prediction_frames(pred_dir / expr.video / expr.exp_id, dataset.frame_names(expr.video),
                                      gt.shape[1:], allow_missing)
        j, f = score_expression(pred, gt)
        per_expression[expr.key] = {"J": j, "F": f, "J&F": (j + f) / 2, "video": expr.video,
                                    "exp_id": expr.exp_id, "exp": expr.sentence}
        pairs.append((no_target and not expr.anno_ids, not pred.any()))
    summary = jf_summary([r["J"] for r in per_expression.values()], [r["F"] for r in per_expression.values()])
    out = {**summary, "num_expressions": len(per_expression), "missing_frames": len(missing),
           "per_expression": per_expression}
    if any(empty_gt for empty_gt, _ in pairs):
        out["no_target"] = no_target_scores(pairs)
    return out


def score_mevis(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score MeViS predictions (``pred_dir/<video>/<exp_id>/<frame>.png``); see :func:`score_split`."""
    return score_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress, dataset_name="MeViS",
                       no_target=True)


def score_ytvos(dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                progress: bool | None = None) -> dict:
    """Score Ref-YouTube-VOS predictions (``pred_dir[/Annotations]/<video>/<exp_id>/<frame>.png``).

    Only a split with ``Annotations/`` (``train``) can be scored locally; valid/test go to the server.
    """
    pred_dir = Path(pred_dir)
    if (pred_dir / "Annotations").is_dir():
        pred_dir = pred_dir / "Annotations"
    return score_split(dataset, pred_dir, allow_missing=allow_missing, progress=progress,
                       dataset_name="Ref-YouTube-VOS")


def _davis_per_expression_layout(pred_dir: Path) -> bool:
    """Whether ``pred_dir/anno_<i>/<video>/`` holds expression folders (else frame PNGs)."""
    for set_dir in sorted(pred_dir.glob("anno_*")):
        if not set_dir.is_dir():
            continue
        for video_dir in sorted(set_dir.iterdir()):
            if not video_dir.is_dir():
                continue
            for entry in sorted(video_dir.iterdir()):
                return entry.is_dir()
    return False


class _DavisFolder:
    """A Ref-DAVIS17 prediction folder ``anno_<i>/<video>/...`` in either layout, read as result frames."""

    def __init__(self, dataset, pred_dir: Path, sets) -> None:
        if (pred_dir / "official").is_dir() and not any((pred_dir / davis_set_dir(i)).is_dir() for i, _, _ in sets):
            pred_dir = pred_dir / "official"  # an `flowrvs evaluate` output folder
        self.root = pred_dir
        self.per_expression = _davis_per_expression_layout(pred_dir)
        self.painted = {(i, video): davis_paint_order([e for e in dataset.expressions(video) if e.key in members])
                        for i, _, members in sets for video in dataset.videos()} if self.per_expression else {}

    def sources(self, i: int, video: str, name: str) -> list[tuple[int, Path]]:
        """``(value, path)`` of the PNGs making frame ``name`` (one, value 0, in the toolkit's layout)."""
        folder = self.root / davis_set_dir(i) / video
        if not self.per_expression:
            return [(0, folder / f"{name}.png")]
        return [(value, folder / e.exp_id / f"{name}.png") for value, e in self.painted[i, video]]

    def missing(self, i: int, video: str, frames: list[str]) -> list[Path]:
        return [path for name in frames for _, path in self.sources(i, video, name) if not path.is_file()]

    def result(self, i: int, video: str, frames: list[str], shape: tuple[int, int], allow_missing: bool) -> np.ndarray:
        """Set ``i``'s ``(T, H, W)`` proposal ids of ``video`` (a missing frame: all 0, with ``allow_missing``)."""
        result = np.zeros((len(frames), *shape), dtype=np.uint8 if self.per_expression else np.int64)
        for t, name in enumerate(frames):
            sources = self.sources(i, video, name)
            if self.per_expression:
                result[t] = davis_index_frame(sources, shape, allow_missing=True)[0]  # missing: checked before
                continue
            path = sources[0][1]
            if allow_missing and not path.is_file():
                continue  # counted before, scored as empty
            frame = read_davis_result(path)
            if frame.shape != shape:
                raise size_error(path, frame.shape, shape)
            result[t] = frame
        return result


def _score_davis_video(dataset, folder: _DavisFolder, sets, video: str, allow_missing: bool) -> dict[int, dict]:
    """``{set index: {"<video>_<object>": record}}`` of one video (see :func:`score_davis_split`)."""
    frames = dataset.frame_names(video)
    annotation = dataset.load_annotation(video)
    out = {}
    for i, _, _ in sets:
        result = folder.result(i, video, frames, annotation.shape[1:], allow_missing)
        try:
            records = score_video(annotation, result)
        except ValueError as err:
            raise FlowRVSError(f"predictions {folder.root / davis_set_dir(i) / video}: {err}") from err
        out[i] = {f"{video}_{r['object']}": {**{k: r[k] for k in STAT_KEYS}, "video": video, "object": r["object"],
                                              "proposal": r["proposal"]} for r in records}
    return out


def score_davis_split(dataset, pred_dir, *, allow_missing: bool = False, progress: bool | None = None) -> dict:
    """Ref-DAVIS17: the DAVIS-2017 toolkit's unsupervised task on each annotator set, sets averaged.

    ``dataset`` is a :class:`~flowrvs.data.davis.RefDAVISDataset` (or a :class:`SubsetDataset` of
    one). The ``i``-th annotator set (``dataset.annotator_labels()`` order) is one toolkit run over
    every video of ``dataset``, read from ``pred_dir/anno_<i>/``, in either layout:

    * the toolkit's: ``anno_<i>/<video>/<frame>.png``, one indexed PNG per frame whose pixel value
      ``k > 0`` is object proposal ``k`` (``flowrvs evaluate`` writes it to ``OUT/official``; an
      ``OUT`` folder holding ``official/`` may be given as ``pred_dir``);
    * per expression: ``anno_<i>/<video>/<exp_id>/<frame>.png`` (nonzero = foreground, what
      ``flowrvs evaluate`` writes to ``OUT/predictions``), painted into the toolkit's frames with
      :func:`~flowrvs.eval.layouts.davis_paint_order` exactly as ``flowrvs evaluate`` writes ``OUT/official``.

    The ground truth is the dataset's annotation PNGs (255 = void). Each video is scored by
    :func:`flowrvs.eval.davis.score_video`; a set's numbers are the means over all objects of
    all its videos (:func:`flowrvs.eval.davis.summarize`), the top-level numbers the means over
    the sets. Returns ``{"J", "F", "J&F", "J-Recall", "J-Decay", "F-Recall", "F-Decay",
    "num_videos", "num_objects", "num_expressions", "missing_frames", "annotator_sets": [{"index",
    "label", "dir", <the same numbers>, "num_expressions", "num_objects", "missing_frames",
    "per_object": {"<video>_<object>": {<the numbers>, "video", "object", "proposal"}}}]}``.
    """
    pred_dir = Path(pred_dir)
    split = getattr(dataset, "split", "?")
    if not dataset.has_masks:
        raise FlowRVSError(f"split {split} has no masks; cannot score it")
    if not pred_dir.is_dir():
        raise FlowRVSError(f"prediction folder {pred_dir} does not exist")
    sets = davis_sets(dataset)
    if not sets:
        raise FlowRVSError(f"Ref-DAVIS17 split {split} has no expressions")
    folder = _DavisFolder(dataset, pred_dir, sets)
    videos = dataset.videos()
    missing = {i: [p for v in videos for p in folder.missing(i, v, dataset.frame_names(v))] for i, _, _ in sets}
    all_missing = [path for paths in missing.values() for path in paths]
    if all_missing and not allow_missing:
        raise missing_error(all_missing)
    records: dict[int, dict[str, dict]] = {i: {} for i, _, _ in sets}
    for video in tqdm(videos, desc="scoring", unit="video", disable=not _show_progress(progress)):
        for i, per_object in _score_davis_video(dataset, folder, sets, video, allow_missing).items():
            records[i].update(per_object)
    n_objects = len(next(iter(records.values())))
    if n_objects == 0:
        raise FlowRVSError(f"Ref-DAVIS17 split {split}: no ground-truth object in the first frame of any video")
    out_sets = [{"index": i, "label": label, "dir": davis_set_dir(i), **summarize(records[i].values()),
                 "num_expressions": len(members), "num_objects": len(records[i]),
                 "missing_frames": len(missing[i]), "per_object": records[i]} for i, label, members in sets]
    return {**average_sets(out_sets), "num_videos": len(videos), "num_objects": n_objects,
            "num_expressions": sum(len(m) for _, _, m in sets), "missing_frames": len(all_missing),
            "annotator_sets": out_sets}


#: dataset name -> scorer(dataset, pred_dir, *, allow_missing, progress) -> metrics dict.
SCORERS: dict[str, Callable[..., dict]] = {"mevis": score_mevis, "ytvos": score_ytvos, "davis": score_davis_split,
                                           "long-rvos": score_long_rvos, "revos": score_revos}


def score_dataset(name: str, dataset: ReferringVideoDataset, pred_dir, *, allow_missing: bool = False,
                  progress: bool | None = None) -> dict:
    """Score ``pred_dir`` against ``dataset`` (opened by the caller, e.g. with
    :func:`flowrvs.data.open_dataset`) with the scorer of benchmark ``name``."""
    scorer = SCORERS.get(name.lower())
    if scorer is None:
        raise FlowRVSError(f"cannot score dataset {name!r}; supported: {', '.join(SCORERS)}")
    return scorer(dataset, pred_dir, allow_missing=allow_missing, progress=progress)


def write_metrics(metrics: dict, out_dir) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.csv`` into ``out_dir`` atomically.

    The CSV has one row per expression, or for Ref-DAVIS17 (no ``per_expression``) one row per
    annotator set and ground-truth object, with its recall and decay too.
    """
    out_dir = Path(out_dir)
    json_path = out_dir / "metrics.json"
    csv_path = out_dir / "metrics.csv"
    write_json(json_path, metrics, indent=2)
    with atomic_path(csv_path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if "per_expression" in metrics:
                writer.writerow(["key", "video", "exp_id", "J", "F", "J&F"])
                for key, r in metrics["per_expression"].items():
                    writer.writerow([key, r["video"], r["exp_id"], repr(r["J"]), repr(r["F"]), repr(r["J&F"])])
            else:
                writer.writerow(["annotator", "key", "video", "object", "proposal", *STAT_KEYS])
                for s in metrics["annotator_sets"]:
                    for key, r in s["per_object"].items():
                        writer.writerow([s["label"], key, r["video"], r["object"], r["proposal"],
                                         *(repr(r[k]) for k in STAT_KEYS)])
    return json_path, csv_path


def summary_line(metrics: dict) -> str:
    """``J&F 0.xxxx  J 0.xxxx  F 0.xxxx``: of ``metrics`` or, for Long-RVOS and ReVOS, of its
    ``overall`` group (with its other numbers: ``tIoU``/``vIoU``, ``A``/``R``); then
    ``N-acc``/``T-acc`` when ``metrics`` has a ``no_target`` group."""
    group = metrics.get("overall", metrics)
    parts = [f"{name} {group[name]:.4f}" for name in ("J&F", "J", "F")]
    if "overall" in metrics:
        parts += [f"{name} {value:.4f}" for name, value in group.items()
                  if name not in ("J&F", "J", "F") and isinstance(value, float)]
    for name, value in metrics.get("no_target", {}).items():
        if name in ("N-acc", "T-acc"):
            parts.append(f"{name} {value:.4f}" if value is not None else f"{name} -")
    return "  ".join(parts)

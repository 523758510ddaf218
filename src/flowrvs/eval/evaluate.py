"""Benchmark evaluation: run a model over a dataset split, write predictions (and a submission zip), score.

:func:`evaluate` is what ``flowrvs evaluate`` runs. For each video of the split (sorted; the first
``limit`` with ``limit``) the frames are read once and every expression whose predictions are not yet
on disk is segmented by one pipeline call (one VAE encoding per video). Each expression's PNG folder
is written to a temporary folder and renamed into place, so a folder that exists is complete; a
second run over the same ``out`` skips those expressions (and a video whose expressions are all
done is not even read), which makes a killed run resumable with the same final numbers.

Layouts under ``out``: see :mod:`flowrvs.eval.layouts` (MeViS and Ref-YouTube-VOS also get a
``submission.zip``; Ref-DAVIS17 gets ``official/anno_<i>/`` for the DAVIS-2017 toolkit). The
Ref-YouTube-VOS valid split is the 202 official validation videos when the reader can tell them
apart (test meta file present).

Plus ``evaluate.json`` (what produced the predictions; a later run into the same ``out`` with another
model, a model folder whose files changed since, another split or other settings is refused) and,
for a split with masks, ``metrics.json``/``metrics.csv`` in the format of ``flowrvs score``
(Ref-DAVIS: ``official/`` scored as the toolkit's unsupervised task per annotator set, sets
averaged, per-set and per-object numbers under ``annotator_sets``; see
:func:`flowrvs.eval.benchmark.score_davis_split`). Nothing under the dataset root is written.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) a gloo process group is started, rank ``r``
segments ``videos[r::world]``, all ranks meet at a barrier, then rank 0 writes the zip and scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from flowrvs.data import BENCHMARKS, open_dataset
from flowrvs.data.base import ReferringVideoDataset
from flowrvs.errors import FlowRVSError
from flowrvs.eval.benchmark import SubsetDataset, score_davis_split, score_split, write_metrics
from flowrvs.eval.layouts import Layout, write_davis_official, write_submission_zip
from flowrvs.runtime.distributed import Process, barrier
from flowrvs.runtime.records import check_run_record

__all__ = ["predict_videos", "score_predictions", "PredictStats", "EvaluationResult", "evaluate"]

RUN_FILE = "evaluate.json"
#: The run-record fields a resumed run must match (``root``, ``window``, ``overlap`` are kept for the reader).
RECORD_KEYS = ("dataset", "split", "model", "model_files", "steps", "size", "mask_threshold")

Log = Callable[[str], None]
logger = logging.getLogger(__name__)


@dataclass
class PredictStats:
    """What :func:`predict_videos` did in this process."""

    videos: int = 0
    expressions: int = 0
    skipped_videos: list[str] = field(default_factory=list)
    skipped_expressions: int = 0
    seconds: float = 0.0


def predict_videos(
    get_pipe: Callable[[], object],
    dataset: ReferringVideoDataset,
    layout: Layout,
    videos: Sequence[str],
    *,
    num_steps: int | None = None,
    mask_threshold: float | None = None,
    size: tuple[int, int] | None = None,
    batch_size: int = 1,
    window: int | None = None,
    overlap: int = 4,
    progress: bool | None = None,
    log: Log = logger.info,
) -> PredictStats:
    """Segment every not-yet-written expression of ``videos`` and write its PNG folder.

    ``get_pipe()`` is called (once) only when some video still has work, so a finished run does
    not even load the model. One pipeline call per video: frames read and encoded once for all
    its pending expressions. ``log`` gets the notice of skipped videos (default: this module's logger).
    """
    stats = PredictStats()
    start = time.perf_counter()
    pipe = None
    bar = tqdm(videos, desc="evaluate", unit="video", disable=None if progress is None else not progress)
    for video in bar:
        frames = dataset.frame_names(video)
        exprs = dataset.expressions(video)
        todo = [e for e in exprs if not layout.expression_done(e, frames)]
        stats.skipped_expressions += len(exprs) - len(todo)
        if not todo:
            stats.skipped_videos.append(video)
            continue
        if pipe is None:
            pipe = get_pipe()
        clip = dataset.load_frames(video)
        if clip.shape[0] != len(frames):
            raise FlowRVSError(f"video {video}: read {clip.shape[0]} frames, the split lists {len(frames)}")
        result = pipe(clip, [e.sentence for e in todo], num_inference_steps=num_steps, size=size,
                      batch_size=batch_size, mask_threshold=mask_threshold, window=window,
                      overlap=overlap)
        for expr, masks in zip(todo, result.masks):
            layout.write_masks(expr, masks, frames)
        stats.videos += 1
        stats.expressions += len(todo)
    bar.close()
    stats.seconds = time.perf_counter() - start
    if stats.skipped_videos:
        shown = ", ".join(stats.skipped_videos[:10]) + (" ..." if len(stats.skipped_videos) > 10 else "")
        log(f"skipped {len(stats.skipped_videos)} video(s) already done: {shown}")
    return stats


def score_predictions(dataset_name: str, dataset: ReferringVideoDataset, layout: Layout,
                      videos: Sequence[str], progress: bool | None = None) -> dict:
    """Score the predictions of ``videos`` with the scorers of :mod:`flowrvs.eval.benchmark`."""
    view = SubsetDataset(dataset, videos=videos)
    if dataset_name == "davis":  # what the DAVIS toolkit would read: the indexed PNGs of official/
        return score_davis_split(view, layout.out / "official", progress=progress)
    return score_split(view, layout.video_root, progress=progress, dataset_name=dataset_name)


def _run_record(dataset_name, root, split, model, num_steps, size, mask_threshold=None,
                model_files=None, window=None, overlap=None) -> dict:
    windows = {} if window is None else {"window": window, "overlap": overlap}  # absent: whole videos (older runs)
    return {
        **windows,
        "dataset": dataset_name,
        "split": split,
        "root": str(Path(root).resolve()),
        "model": str(model),
        "model_files": model_files,
        "steps": num_steps,
        "size": list(size) if size else None,
        "mask_threshold": mask_threshold,
    }


@dataclass
class EvaluationResult:
    """What :func:`evaluate` did. ``metrics`` is None on a split without masks (or on ranks > 0)."""

    out: Path
    split: str
    videos: list[str]
    metrics: dict | None
    zip_path: Path | None
    stats: PredictStats
    has_masks: bool


def _check_arguments(dataset_name: str, limit: int | None, batch_size: int, num_steps: int | None) -> None:
    if limit is not None and limit < 1:
        raise FlowRVSError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise FlowRVSError(f"--batch-size must be at least 1, got {batch_size}")
    if num_steps is not None and num_steps < 1:
        raise FlowRVSError(f"--steps must be at least 1, got {num_steps}")
    if dataset_name not in BENCHMARKS:
        raise FlowRVSError(f"unknown benchmark {dataset_name!r}; choose one of {', '.join(BENCHMARKS)}")


def _check_out(out: Path, root) -> None:
    """``out`` must be a folder (or not exist yet) outside the dataset root."""
    root_dir = Path(root).resolve()
    out_abs = out.resolve()
    if out_abs == root_dir or root_dir in out_abs.parents:
        raise FlowRVSError(f"--out {out} lies inside the dataset root {root}; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise FlowRVSError(f"--out {out} exists and is not a folder")


def _finish(layout: Layout, videos: Sequence[str], result: EvaluationResult, progress: bool | None) -> None:
    """Rank 0 after every rank's share is written: check, package and score (fills ``result``)."""
    dataset = layout.dataset
    layout.remove_stale_temps(videos)
    missing = [e.key for v in videos for e in dataset.expressions(v)
               if not layout.expression_done(e, dataset.frame_names(v))]
    if missing:  # another rank failed silently, or files were deleted meanwhile
        raise FlowRVSError(f"{len(missing)} expression(s) have no predictions after the run, e.g. {missing[0]}")
    if layout.zip_path is not None:
        result.zip_path = write_submission_zip(layout, videos)
    else:
        write_davis_official(layout, videos)
    if dataset.has_masks:
        result.metrics = score_predictions(layout.dataset_name, dataset, layout, videos, progress=progress)
        write_metrics(result.metrics, layout.out)


def evaluate(
    get_pipe: Callable[[], object],
    dataset_name: str,
    root,
    split: str | None,
    out,
    *,
    model_id: str = "",
    model_files: str | None = None,
    num_steps: int | None = None,
    mask_threshold: float | None = None,
    size: tuple[int, int] | None = None,
    batch_size: int = 1,
    window: int | None = None,
    overlap: int = 4,
    limit: int | None = None,
    progress: bool | None = None,
    process: Process | None = None,
    log: Log = logger.info,
) -> EvaluationResult:
    """Predict, package and score one split (see the module docstring).

    ``get_pipe()`` returns the :class:`~flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline` (called only
    when there is work). ``model_id`` names the model and ``model_files`` fingerprints its folder
    (:func:`~flowrvs.loading.model_folder.model_fingerprint`); both go into the run record. ``process``
    says which shard this process runs (default: one process); a process group must already be up
    when ``process.world_size > 1``. ``window`` / ``overlap``: run long videos in windows (default:
    whole videos, as the public evaluation does).
    """
    process = process or Process()
    dataset_name = dataset_name.lower()
    _check_arguments(dataset_name, limit, batch_size, num_steps)
    dataset = open_dataset(dataset_name, root, split)
    out = Path(out)
    _check_out(out, root)
    videos = dataset.videos()[:limit]
    if not videos:
        raise FlowRVSError(f"{dataset_name} split {dataset.split} under {root} has no videos")
    layout = Layout(dataset_name, out, dataset)
    out.mkdir(parents=True, exist_ok=True)
    record = _run_record(dataset_name, root, dataset.split, model_id, num_steps, size, mask_threshold,
                         model_files, window, overlap)
    check_run_record(out, RUN_FILE, record, process, keys=RECORD_KEYS, outputs="predictions")
    stats = predict_videos(get_pipe, dataset, layout, videos[process.rank :: process.world_size],
                           num_steps=num_steps, mask_threshold=mask_threshold, size=size, batch_size=batch_size,
                           window=window, overlap=overlap, progress=progress if process.main else False, log=log)
    barrier(process)
    result = EvaluationResult(out=out, split=dataset.split, videos=list(videos), metrics=None, zip_path=None,
                              stats=stats, has_masks=dataset.has_masks)
    if process.main:
        _finish(layout, videos, result, progress)
    return result

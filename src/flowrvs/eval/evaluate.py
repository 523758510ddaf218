"""Benchmark evaluation: run a model over a dataset split, write predictions (and a submission zip), score.

:func:`evaluate` is what ``flowrvs evaluate`` runs. For each video of the split (sorted; the first
``limit`` with ``limit``) every expression whose predictions are not yet on disk is segmented by
one stream (one VAE encoding per window for all of them). Each expression's PNG folder
is written to a temporary folder and renamed into place, so a folder that exists is complete; a
second run over the same ``out`` skips those expressions (and a video whose expressions are all
done is not even read), which makes a killed run resumable with the same final numbers.

Layouts under ``out``: see :mod:`flowrvs.eval.layouts` (MeViS and Ref-YouTube-VOS also get a
``submission.zip``; Ref-DAVIS17 gets ``official/anno_<i>/`` for the DAVIS-2017 toolkit; Long-RVOS
and ReVOS ``predictions/<video>/<exp_id>/``, 0/255 and 0/1 PNGs, scored by
:mod:`flowrvs.eval.score_long_benchmarks`). Each video is one streamed segmentation
(:func:`~flowrvs.pipelines.streaming.stream_segmentation`) of all its pending expressions, its
frames written as they come through :class:`flowrvs.io.writer.SegmentationWriter`; by default
whole videos (MeViS, Ref-YouTube-VOS, Ref-DAVIS17: the public evaluation, whose numbers are the
published ones; REM's clips for a REM model) or the method's window plan (Long-RVOS, ReVOS):
:func:`default_options`. The
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

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from tqdm.auto import tqdm

from flowrvs.data import BENCHMARKS, open_dataset
from flowrvs.data.base import ReferringVideoDataset
from flowrvs.errors import FlowRVSError
from flowrvs.eval.benchmark import SubsetDataset, score_dataset, score_davis_split, write_metrics
from flowrvs.eval.layouts import Layout, write_davis_official, write_submission_zip
from flowrvs.io.read import DEFAULT_FPS, VideoStream
from flowrvs.options import SegmentOptions
from flowrvs.pipelines.streaming import stream_segmentation
from flowrvs.runtime.distributed import Process, barrier
from flowrvs.runtime.records import check_run_record

__all__ = ["WINDOWED", "default_options", "dataset_video", "predict_videos", "score_predictions", "PredictStats", "EvaluationResult", "evaluate"]

RUN_FILE = "evaluate.json"
#: The run-record fields a resumed run must match (``root`` is kept for the reader; ``window`` and
#: ``overlap`` are absent for whole videos).
RECORD_KEYS = ("dataset", "split", "model", "model_files", "steps", "size", "mask_threshold", "window", "overlap")

#: The benchmarks evaluated in windows by default (long videos); the others run whole videos, as
#: the public evaluation does (its published numbers come from that).
WINDOWED = ("long-rvos", "revos")

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
    options: SegmentOptions,
    *,
    progress: bool | None = None,
    log: Log = logger.info,
) -> PredictStats:
    """Segment every not-yet-written expression of ``videos`` and write its PNG folder.

    ``get_pipe()`` is called (once) only when some video still has work, so a finished run does
    not even load the model. Per video one :func:`~flowrvs.pipelines.streaming.stream_segmentation`
    over all its pending expressions' sentences with ``options`` (frames encoded once per window
    for all of them), its frames written as they come through :meth:`Layout.open_writer`.
    ``log`` gets the notice of skipped videos (default: this module's logger).
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
        _segment_video(pipe, dataset, layout, video, todo, options)
        stats.videos += 1
        stats.expressions += len(todo)
    bar.close()
    stats.seconds = time.perf_counter() - start
    if stats.skipped_videos:
        shown = ", ".join(stats.skipped_videos[:10]) + (" ..." if len(stats.skipped_videos) > 10 else "")
        log(f"skipped {len(stats.skipped_videos)} video(s) already done: {shown}")
    return stats


def _segment_video(pipe, dataset: ReferringVideoDataset, layout: Layout, video: str, todo: Sequence,
                   options: SegmentOptions) -> None:
    """Stream the masks of ``todo`` (expressions of ``video``) into their folders, frame by frame:
    frames read one at a time (:func:`dataset_video`), memory set by one window."""
    stream = stream_segmentation(pipe, dataset_video(dataset, video), [e.sentence for e in todo], options)
    items = iter(stream)
    first = next(items)  # the first window is computed before any folder is made
    with layout.open_writer(todo) as writer:
        for item in itertools.chain([first], items):
            writer.add(item.name, None, item.masks)


def default_options(dataset_name: str, benchmark_window: int | None = 0) -> SegmentOptions:
    """The model's settings with the benchmark's window plan: :data:`WINDOWED` benchmarks in
    the method's own plan (FlowRVS: windows of ``DEFAULT_WINDOW`` (17) frames sharing
    ``DEFAULT_OVERLAP`` (4); REM: its clips), the others in the plan the method's published
    numbers come from (``benchmark_window``, the pipeline class's: FlowRVS 0, whole videos;
    REM None, its clips)."""
    if dataset_name in WINDOWED:
        return SegmentOptions()
    return SegmentOptions(window=benchmark_window)


def score_predictions(dataset_name: str, dataset: ReferringVideoDataset, layout: Layout,
                      videos: Sequence[str], progress: bool | None = None) -> dict:
    """Score the predictions of ``videos`` with the scorer of ``flowrvs score`` (:data:`SCORERS`)."""
    view = SubsetDataset(dataset, videos=videos)
    if dataset_name == "davis":  # what the DAVIS toolkit would read: the indexed PNGs of official/
        return score_davis_split(view, layout.out / "official", progress=progress)
    return score_dataset(dataset_name, view, layout.video_root, progress=progress)


def dataset_video(dataset: ReferringVideoDataset, video: str) -> VideoStream:
    """``video`` of ``dataset`` as a :class:`~flowrvs.io.read.VideoStream` named by the split's frame
    names: one ``(H, W, 3)`` uint8 frame read at a time (``dataset.load_frames(video, [t])``)."""
    names = dataset.frame_names(video)
    if not names:
        raise FlowRVSError(f"video {video} of split {getattr(dataset, 'split', '?')} lists no frames")
    first = dataset.load_frames(video, [0])
    if first.ndim != 4 or first.shape[0] != 1 or first.shape[-1] != 3:
        raise FlowRVSError(f"video {video}: frame {names[0]} read as {first.shape[1:]}, not (H, W, 3)")

    def frames() -> Iterator[np.ndarray]:
        yield first[0]
        for t in range(1, len(names)):
            yield dataset.load_frames(video, [t])[0]

    return VideoStream(video, list(names), DEFAULT_FPS, int(first.shape[1]), int(first.shape[2]), frames)


def _run_record(dataset_name: str, root, split: str, model: str, model_files: str | None,
                options: SegmentOptions) -> dict:
    return {
        "window": options.window,  # None: the method's plan
        "overlap": options.overlap,
        "dataset": dataset_name,
        "split": split,
        "root": str(Path(root).resolve()),
        "model": str(model),
        "model_files": model_files,
        "steps": options.num_inference_steps,
        "size": list(options.size) if options.size else None,
        "mask_threshold": options.mask_threshold,
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


def _check_arguments(dataset_name: str, limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise FlowRVSError(f"--limit must be at least 1, got {limit}")
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
    elif layout.dataset_name == "davis":
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
    options: SegmentOptions | None = None,
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
    when ``process.world_size > 1``. ``options``: how each video is segmented (default:
    :func:`default_options` of the benchmark: whole videos for MeViS, Ref-YouTube-VOS and
    Ref-DAVIS17, as the public evaluation, 17-frame windows for Long-RVOS and ReVOS).
    """
    process = process or Process()
    dataset_name = dataset_name.lower()
    _check_arguments(dataset_name, limit)
    options = options or default_options(dataset_name)
    dataset = open_dataset(dataset_name, root, split)
    out = Path(out)
    _check_out(out, root)
    videos = dataset.videos()[:limit]
    if not videos:
        raise FlowRVSError(f"{dataset_name} split {dataset.split} under {root} has no videos")
    layout = Layout(dataset_name, out, dataset)
    out.mkdir(parents=True, exist_ok=True)
    record = _run_record(dataset_name, root, dataset.split, model_id, model_files, options)
    check_run_record(out, RUN_FILE, record, process, keys=RECORD_KEYS, outputs="predictions")
    stats = predict_videos(get_pipe, dataset, layout, videos[process.rank :: process.world_size], options,
                           progress=progress if process.main else False, log=log)
    barrier(process)
    result = EvaluationResult(out=out, split=dataset.split, videos=list(videos), metrics=None, zip_path=None,
                              stats=stats, has_masks=dataset.has_masks)
    if process.main:
        _finish(layout, videos, result, progress)
    return result

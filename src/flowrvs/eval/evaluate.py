"""Benchmark evaluation: run a model over a dataset split, write predictions (and a submission zip), score.

:func:`evaluate` is what ``flowrvs evaluate`` runs. For each video of the split (sorted; the first
``limit`` with ``limit``) the frames are read once and every expression whose predictions are not yet
on disk is segmented by one pipeline call (one VAE encoding per video). Each expression's PNG folder
is written to a temporary folder and renamed into place, so a folder that exists is complete; a
second run over the same ``out`` skips those expressions (and a video whose expressions are all
done is not even read), which makes a killed run resumable with the same final numbers.

Layouts under ``out`` (0/255 PNGs named after the dataset's frame names, at the frames' size):

* MeViS: ``predictions/<video>/<exp_id>/<frame>.png`` and ``submission.zip`` holding
  ``<video>/<exp_id>/<frame>.png`` at its top (the challenge server's layout).
* Ref-YouTube-VOS: ``predictions/Annotations/<video>/<exp_id>/<frame>.png`` and
  ``submission.zip`` holding ``Annotations/<video>/<exp_id>/<frame>.png``. The valid split is the
  202 official validation videos when the reader can tell them apart (test meta file present).
* Ref-DAVIS17: ``predictions/anno_<i>/<video>/<exp_id>/<frame>.png``, ``i`` the position of the
  expression's annotator set in ``RefDAVISDataset.annotator_labels()`` (0..3 normally); indexed
  ('P') PNGs, 0 = background, 1 = the referred object. Also ``official/anno_<i>/<video>/<frame>.png``
  for every annotator set and every video: one indexed PNG per frame, pixel = the ``obj_id`` of the
  set's expression that predicts it (a later obj_id wins an overlap; all 0 where the video has no
  expression of that set), the layout of the DAVIS-2017 evaluation toolkit
  (``--task unsupervised --results_path out/official/anno_<i>``). No zip (there is no server).

Plus ``evaluate.json`` (what produced the predictions; a later run into the same ``out`` with another
model, a model folder whose files changed since, another split or other settings is refused) and,
for a split with masks, ``metrics.json``/``metrics.csv`` in the format of ``flowrvs score``
(Ref-DAVIS: ``official/`` scored as the toolkit's unsupervised task per annotator set, sets
averaged, per-set and per-object numbers under ``annotator_sets``; see
:func:`flowrvs.eval.scoring.score_davis_split`). Nothing under the dataset root is written.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) a gloo process group is started, rank ``r``
segments ``videos[r::world]``, all ranks meet at a barrier, then rank 0 writes the zip and scores.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from flowrvs.data import BENCHMARKS, DEFAULT_SPLITS, open_dataset
from flowrvs.data.base import Expression, ReferringVideoDataset
from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_dir, atomic_path, write_json

__all__ = [
    "DATASETS",
    "DEFAULT_SPLITS",
    "DAVIS_PALETTE",
    "Layout",
    "DistInfo",
    "dist_info",
    "expression_done",
    "predict_videos",
    "write_submission_zip",
    "write_davis_official",
    "score_predictions",
    "EvaluationResult",
    "evaluate",
]

DATASETS = BENCHMARKS  # the video benchmarks of the registry (RefCOCO is training data only)
RUN_FILE = "evaluate.json"
#: DAVIS colour palette (index 1 = dark red, 2 = green, ...), the one of the DAVIS annotation PNGs.
DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128, 0, 128, 128, 128, 128, 128,
                 64, 0, 0, 191, 0, 0, 64, 128, 0, 191, 128, 0, 64, 0, 128, 191, 0, 128, 64, 128, 128, 191, 128, 128]
DAVIS_PALETTE = DAVIS_PALETTE + [0] * (768 - len(DAVIS_PALETTE))

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Layout:
    """Where the predictions of one dataset go under ``out`` (see the module docstring)."""

    dataset_name: str
    out: Path
    dataset: ReferringVideoDataset

    def __post_init__(self):
        self.out = Path(self.out)
        self._set_index: dict[str, int] = {}
        if self.dataset_name == "davis":
            for i, members in enumerate(self.dataset.annotator_sets()):
                for key in members:
                    self._set_index[key] = i

    @property
    def predictions(self) -> Path:
        """The folder handed to the scorer (``out/predictions``)."""
        return self.out / "predictions"

    @property
    def video_root(self) -> Path:
        """The folder holding ``<video>/<exp_id>/`` (Ref-DAVIS: the one of annotator set 0)."""
        return self.predictions / "Annotations" if self.dataset_name == "ytvos" else self.predictions

    @property
    def zip_path(self) -> Path | None:
        return None if self.dataset_name == "davis" else self.out / "submission.zip"

    def expression_dir(self, expr: Expression) -> Path:
        if self.dataset_name == "davis":
            from flowrvs.eval.scoring import davis_set_dir

            return self.predictions / davis_set_dir(self._set_index[expr.key]) / expr.video / expr.exp_id
        return self.video_root / expr.video / expr.exp_id

    def arcname(self, expr: Expression, frame: str) -> str:
        """Name of a frame's PNG inside ``submission.zip``."""
        top = "Annotations/" if self.dataset_name == "ytvos" else ""
        return f"{top}{expr.video}/{expr.exp_id}/{frame}.png"

    def write_masks(self, expr: Expression, masks: np.ndarray, frames: Sequence[str]) -> Path:
        """Write one expression's ``(T, H, W)`` masks as a complete folder (temp folder + rename)."""
        folder = self.expression_dir(expr)
        try:
            with atomic_dir(folder) as tmp:
                if self.dataset_name == "davis":
                    for mask, name in zip(masks, frames):
                        _save_indexed(tmp / f"{name}.png", np.asarray(mask, dtype=bool).astype(np.uint8))
                else:
                    from flowrvs.io.video import write_mask_pngs

                    write_mask_pngs(tmp, masks, list(frames))
        except OSError as err:
            raise FlowRVSError(f"cannot write predictions to {folder}: {err}") from None
        return folder


def _save_indexed(path: Path, index: np.ndarray) -> None:
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette(DAVIS_PALETTE)
    img.save(path, format="PNG")


def expression_done(layout: Layout, expr: Expression, frames: Sequence[str]) -> bool:
    """Whether ``expr``'s folder exists with a PNG for every frame."""
    try:
        present = set(os.listdir(layout.expression_dir(expr)))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return all(f"{name}.png" in present for name in frames)


# ---- distributed -------------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank, world size and local rank from the environment ``torchrun`` sets (1 process otherwise)."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as err:
        raise FlowRVSError(f"bad RANK/WORLD_SIZE/LOCAL_RANK in the environment: {err}") from None


def _barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


# ---- running the model -------------------------------------------------------------------------
@dataclass
class PredictStats:
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
    log: Log = _stderr,
) -> PredictStats:
    """Segment every not-yet-written expression of ``videos`` and write its PNG folder.

    ``get_pipe()`` is called (once) only when some video still has work, so a finished run does
    not even load the model. One pipeline call per video: frames read and encoded once for all
    its pending expressions.
    """
    from tqdm.auto import tqdm

    stats = PredictStats()
    start = time.perf_counter()
    pipe = None
    bar = tqdm(videos, desc="evaluate", unit="video", disable=None if progress is None else not progress)
    for video in bar:
        frames = dataset.frame_names(video)
        exprs = dataset.expressions(video)
        todo = [e for e in exprs if not expression_done(layout, e, frames)]
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


# ---- outputs of rank 0 -------------------------------------------------------------------------
def _remove_stale_temps(layout: Layout, videos: Sequence[str]) -> None:
    """Delete temporary folders a killed run left beside the expression folders."""
    parents = {layout.expression_dir(e).parent for v in videos for e in layout.dataset.expressions(v)}
    for parent in parents:
        try:
            entries = list(parent.iterdir())
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.name.startswith(".") and (entry.name.endswith(".tmp") or ".old-" in entry.name):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def write_submission_zip(layout: Layout, videos: Sequence[str]) -> Path:
    """Zip the predictions of ``videos`` into ``layout.zip_path`` (atomically, in sorted order)."""
    path = layout.zip_path
    dataset = layout.dataset
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for video in sorted(videos):
                frames = dataset.frame_names(video)
                for expr in sorted(dataset.expressions(video), key=lambda e: e.exp_id):
                    folder = layout.expression_dir(expr)
                    for name in frames:
                        zf.write(folder / f"{name}.png", layout.arcname(expr, name))
    return path


def write_davis_official(layout: Layout, videos: Sequence[str]) -> Path:
    """``out/official/anno_<i>/<video>/<frame>.png``: per annotator set and frame, one indexed PNG of
    object ids (the layout of the DAVIS-2017 toolkit's unsupervised task), for every set that has an
    expression among ``videos`` and every one of ``videos``. Each video folder is written atomically.
    """
    from flowrvs.eval.scoring import SubsetDataset, davis_index_frame, davis_paint_order, davis_set_dir, davis_sets
    from flowrvs.eval.scoring import read_prediction_mask

    dataset = layout.dataset
    view = SubsetDataset(dataset, videos=videos)
    sets = davis_sets(view)
    root = layout.out / "official"
    for video in view.videos():
        frames = dataset.frame_names(video)
        exprs = dataset.expressions(video)
        # every prediction of a video has the frames' size: take it from any of them
        shape = read_prediction_mask(layout.expression_dir(exprs[0]) / f"{frames[0]}.png").shape
        for i, _, members in sets:
            painted = davis_paint_order([e for e in exprs if e.key in members])
            try:
                with atomic_dir(root / davis_set_dir(i) / video) as tmp:
                    for name in frames:
                        sources = [(value, layout.expression_dir(e) / f"{name}.png") for value, e in painted]
                        _save_indexed(tmp / f"{name}.png", davis_index_frame(sources, shape)[0])
            except OSError as err:
                raise FlowRVSError(f"cannot write {root / davis_set_dir(i) / video}: {err}") from None
    return root


def score_predictions(dataset_name: str, dataset: ReferringVideoDataset, layout: Layout,
                      videos: Sequence[str], progress: bool | None = None) -> dict:
    """Score the predictions of ``videos`` with the scorers of :mod:`flowrvs.eval.scoring`."""
    from flowrvs.eval.scoring import SubsetDataset, score_davis_split, score_split

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


def _check_run_record(out: Path, record: dict, info: DistInfo) -> None:
    """Refuse to mix predictions of different runs in one ``out``; rank 0 writes the record."""
    path = out / RUN_FILE
    if path.is_file():
        import json

        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict):
            diff = [k for k in ("dataset", "split", "model", "model_files", "steps", "size", "mask_threshold")
                    if old.get(k) != record[k]]
            if diff:
                what = "; ".join(f"{k} {old.get(k)!r} there, {record[k]!r} now" for k in diff)
                raise FlowRVSError(f"{out} holds predictions of another run ({what}); use another --out")
    elif info.main:
        write_json(path, record, indent=2)


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
    info: DistInfo | None = None,
    log: Log = _stderr,
) -> EvaluationResult:
    """Predict, package and score one split (see the module docstring).

    ``get_pipe()`` returns the :class:`~flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline` (called only when there
    is work). ``model_id`` names the model and ``model_files`` fingerprints its folder
    (:func:`~flowrvs.pipelines.pipeline_flowrvs.model_fingerprint`); both go into the run record. ``info`` says which
    shard this process runs (default: one process); a process group must already be up when
    ``info.world > 1``. ``window`` / ``overlap``: run long videos in windows (default: whole
    videos, as the public evaluation does).
    """
    info = info or DistInfo()
    dataset_name = dataset_name.lower()
    if limit is not None and limit < 1:
        raise FlowRVSError(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        raise FlowRVSError(f"--batch-size must be at least 1, got {batch_size}")
    if num_steps is not None and num_steps < 1:
        raise FlowRVSError(f"--steps must be at least 1, got {num_steps}")
    if dataset_name not in DATASETS:
        raise FlowRVSError(f"unknown benchmark {dataset_name!r}; choose one of {', '.join(DATASETS)}")
    dataset = open_dataset(dataset_name, root, split)
    split = dataset.split
    out = Path(out)
    root_dir = Path(root).resolve()
    out_abs = out.resolve()
    if out_abs == root_dir or root_dir in out_abs.parents:
        raise FlowRVSError(f"--out {out} lies inside the dataset root {root}; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise FlowRVSError(f"--out {out} exists and is not a folder")
    videos = dataset.videos()
    if limit is not None:
        videos = videos[:limit]
    if not videos:
        raise FlowRVSError(f"{dataset_name} split {split} under {root} has no videos")
    layout = Layout(dataset_name, out, dataset)
    out.mkdir(parents=True, exist_ok=True)
    _check_run_record(out, _run_record(dataset_name, root, split, model_id, num_steps, size, mask_threshold,
                                        model_files, window, overlap), info)

    mine = videos[info.rank :: info.world]
    stats = predict_videos(get_pipe, dataset, layout, mine, num_steps=num_steps, mask_threshold=mask_threshold, size=size,
                           batch_size=batch_size, window=window, overlap=overlap,
                           progress=progress if info.main else False, log=log)
    _barrier(info)
    result = EvaluationResult(out=out, split=split, videos=list(videos), metrics=None, zip_path=None, stats=stats,
                              has_masks=dataset.has_masks)
    if not info.main:
        return result

    _remove_stale_temps(layout, videos)
    missing = [e.key for v in videos for e in dataset.expressions(v)
               if not expression_done(layout, e, dataset.frame_names(v))]
    if missing:  # another rank failed silently, or files were deleted meanwhile
        raise FlowRVSError(f"{len(missing)} expression(s) have no predictions after the run, e.g. {missing[0]}")
    if layout.zip_path is not None:
        result.zip_path = write_submission_zip(layout, videos)
    else:
        write_davis_official(layout, videos)
    if dataset.has_masks:
        from flowrvs.eval.scoring import write_metrics

        result.metrics = score_predictions(dataset_name, dataset, layout, videos, progress=progress)
        write_metrics(result.metrics, out)
    return result

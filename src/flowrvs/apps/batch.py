"""Segment a folder of videos, each with its own sentences (``flowrvs segment-batch``).

Inputs: a folder of videos (video files, or folders of frames) and a sentence file mapping
video names to sentences: JSON ``{"video name": ["sentence", ...]}`` or a CSV with the columns
``video,sentence`` (one row per sentence). A name may be given with or without its extension
(``clip.mp4`` or ``clip``).

Outputs, per video: ``OUT/<name>/`` in the layout of ``flowrvs segment`` (``<k>/<frame>.png``,
``masks.json``, ``overlay.mp4``), written atomically; and ``OUT/summary.json`` with, per video,
its frames, sentences, seconds and status (``done`` or ``failed`` with the error).

Each video is streamed once through the pipeline with all its sentences, window by window (each
window is encoded once, the sentences go through the DiT in batches) and written frame by frame,
so memory does not grow with a video's length. A video whose folder holds the
same sentences already is skipped, so a killed run started again ends with what an
uninterrupted one writes. One video's problem (missing, corrupt, an empty sentence) fails that
video only. Under ``torchrun`` each process takes every ``world``-th video (as ``evaluate`` does).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.io.atomic import atomic_dir, remove_stale_temps, write_json
from flowrvs.io.names import check_name
from flowrvs.io.read import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from flowrvs.options import SegmentOptions
from flowrvs.runtime.distributed import Process, barrier
from flowrvs.runtime.records import check_run_record, read_record

SUMMARY_FILE = "summary.json"
STATUS_DIR = ".status"  # one record per video, written by the process that ran it
RUN_FILE = "run.json"  # in STATUS_DIR: the model and settings of the run
Log = Callable[[str], None]


logger = logging.getLogger(__name__)


# ---- inputs ------------------------------------------------------------------------------------
def read_sentence_file(path: str | Path) -> dict[str, list[str]]:
    """``{video name: [sentence, ...]}`` from a JSON or CSV file (by its suffix; else by content).

    Sentences are kept as written (an empty one fails its video later, not the whole batch).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise FlowRVSError(f"sentence file {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise FlowRVSError(f"cannot read sentence file {path}: {first_line(err)}") from err
    as_json = path.suffix.lower() == ".json" or (path.suffix.lower() != ".csv" and text.lstrip().startswith("{"))
    mapping = _parse_json(text, path) if as_json else _parse_csv(text, path)
    if not mapping:
        raise FlowRVSError(f"sentence file {path} names no video")
    for name in mapping:
        check_name(name, path, "video name")
    return mapping


def _parse_json(text: str, path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise FlowRVSError(f"sentence file {path} is not valid JSON: {first_line(err)}") from err
    if not isinstance(data, dict):
        raise FlowRVSError(f'sentence file {path} must hold a JSON object {{"video": ["sentence", ...]}}')
    out = {}
    for name, sentences in data.items():
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise FlowRVSError(f"sentence file {path}: the value of {name!r} must be a list of sentences")
        out[str(name)] = list(sentences)
    return out


def _parse_csv(text: str, path: Path) -> dict[str, list[str]]:
    rows = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (rows.fieldnames or [])]
    if "video" not in header or "sentence" not in header:
        raise FlowRVSError(f"sentence file {path} must be JSON or a CSV with the columns video,sentence "
                           f"(its header is {','.join(rows.fieldnames or []) or 'empty'})")
    rows.fieldnames = header
    out: dict[str, list[str]] = {}
    for i, row in enumerate(rows, start=2):
        name = (row.get("video") or "").strip()
        if not name:
            raise FlowRVSError(f"sentence file {path}, line {i}: no video name")
        out.setdefault(name, []).append(row.get("sentence") or "")
    return out


def output_name(name: str) -> str:
    """The output folder of a video: its name without a video extension."""
    p = Path(name)
    return p.stem if p.suffix.lower() in VIDEO_EXTENSIONS else p.name


def list_videos(folder: str | Path) -> dict[str, Path]:
    """Videos in ``folder`` by file name and by name without extension: video files and folders of frames."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FlowRVSError(f"videos folder {folder} does not exist or is not a folder")
    found: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() or entry.suffix.lower() in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS:
            found[entry.name] = entry
            found.setdefault(output_name(entry.name), entry)
    return found


@dataclass
class Job:
    """One video of the batch: its name (the output folder), source and sentences."""

    name: str
    source: Path | None
    sentences: list[str]
    problem: str | None = None  # known before running (missing or ambiguous video)


def plan_jobs(videos_dir: str | Path, mapping: dict[str, list[str]]) -> list[Job]:
    """Match the sentence file's names to the videos of ``videos_dir``, sorted by output name."""
    videos = list_videos(videos_dir)
    folder = Path(videos_dir)
    jobs: dict[str, Job] = {}
    for key, sentences in mapping.items():
        name = output_name(key)
        if not name or name.startswith(".") or "/" in key or "\\" in key:
            raise FlowRVSError(f"video name {key!r} in the sentence file is not a plain name")
        if name in jobs:
            raise FlowRVSError(f"the sentence file names video {name!r} twice ({jobs[name].source or name} and {key})")
        stems = [p for n, p in videos.items() if output_name(n) == name and n == p.name]
        source = videos.get(key)
        problem = None
        if source is None:
            problem = f"no video {key!r} in {folder}"
        elif key == name and len(stems) > 1:
            problem = f"{key!r} is ambiguous in {folder}: {', '.join(p.name for p in stems)}; name the file"
        jobs[name] = Job(name, source, list(sentences), problem)
    return [jobs[k] for k in sorted(jobs)]


# ---- resume ------------------------------------------------------------------------------------
def finished(out: Path, job: Job) -> bool:
    """Whether ``out/<name>`` already holds this job's masks (same sentences, same order)."""
    index = read_record(out / job.name / "masks.json")
    prompts = index.get("prompts") if index else None
    if not isinstance(prompts, list):
        return False
    return [p.get("prompt") if isinstance(p, dict) else None for p in prompts] == job.sentences


def _status_path(out: Path, name: str) -> Path:
    return out / STATUS_DIR / "videos" / f"{name}.json"


# ---- running -----------------------------------------------------------------------------------
@dataclass
class BatchStats:
    """What this process did: segmented, skipped (already done) and failed video names."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def prepare(job: Job):
    """Check ``job``'s sentences and open its video as a stream: ``(sentences, VideoStream)``.

    Nothing is decoded beyond what opening needs (the names, fps and size); raises
    :class:`FlowRVSError` for a missing or undecodable video or an empty sentence.
    """
    from flowrvs.models.text import check_prompts
    from flowrvs.io.read import open_video

    if job.problem:
        raise FlowRVSError(job.problem)
    return check_prompts(job.sentences), open_video(job.source)


def segment_one(pipe, job: Job, prompts: list[str], video, out: Path, options: SegmentOptions,
                overlay: bool = True) -> dict:
    """Stream all of ``job``'s sentences through ``pipe`` window by window into ``out/<name>`` (atomically).

    video: the opened :class:`~flowrvs.io.read.VideoStream` (decoded once, each window encoded
    once for all its sentences); frames and masks are written as they are final, so memory
    does not grow with the video's length. Returns the job's record for the summary
    (``seconds`` is filled in by the caller).
    """
    from flowrvs.io.writer import SegmentFolder, SegmentationWriter
    from flowrvs.pipelines.streaming import stream_segmentation

    stream = stream_segmentation(pipe, video, prompts, options)
    with atomic_dir(out / job.name) as tmp:
        layout = SegmentFolder(tmp, str(job.source), stream.fps, overlay=overlay)
        with SegmentationWriter(layout, stream.prompts) as writer:
            for item in stream:
                writer.add(item.name, item.frame, item.masks)
    return {"frames": len(stream), "sentences": len(prompts), "seconds": None, "status": "done"}


def run_jobs(get_pipe: Callable[[], object], jobs: Sequence[Job], out: str | Path, *,
             options: SegmentOptions | None = None, overlay: bool = True, progress: bool | None = None,
             log: Log = logger.warning) -> BatchStats:
    """Segment every unfinished job in ``jobs``; one video's failure is recorded and the rest go on.

    options: how each video is segmented (default: the model's settings, 17-frame windows).
    ``get_pipe()`` is called once, when the first video is ready to segment (so a batch of
    finished or broken videos never loads the model; a model that fails to load stops the
    batch). Each job's record goes to ``out/.status/videos/<name>.json``; :func:`write_summary`
    gathers them.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    options = options or SegmentOptions()
    stats = BatchStats()
    start = time.perf_counter()
    pipe = None
    bar = tqdm(jobs, desc="segment-batch", unit="video", disable=None if progress is None else not progress)
    for job in bar:
        bar.set_postfix_str(job.name, refresh=False)
        if finished(out, job):
            stats.skipped.append(job.name)
            continue
        began = time.perf_counter()
        try:
            prompts, video = prepare(job)
            if pipe is None:
                pipe = _load(get_pipe)
            record = segment_one(pipe, job, prompts, video, out, options, overlay=overlay)
            record["seconds"] = round(time.perf_counter() - began, 3)
            stats.done.append(job.name)
        except ModelLoadError:
            raise
        except FlowRVSError as err:
            record = {"frames": None, "sentences": len(job.sentences), "seconds": None,
                      "status": "failed", "error": first_line(err)}
            stats.failed[job.name] = record["error"]
            shutil.rmtree(out / job.name, ignore_errors=True)  # masks of other sentences, from an older run
            log(f"{job.name}: failed: {record['error']}")
        write_json(_status_path(out, job.name), record)
    bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


class ModelLoadError(FlowRVSError):
    """The model could not be loaded: no video can be segmented, so the batch stops."""


def _load(get_pipe: Callable[[], object]):
    try:
        return get_pipe()
    except FlowRVSError as err:
        raise ModelLoadError(str(err)) from err


def write_summary(out: str | Path, jobs: Sequence[Job]) -> dict:
    """``out/summary.json``: per video its frames, sentences, seconds and status, plus totals.

    A finished video keeps the record of the run that made it; one without a record (its status
    file lost) is described from its ``masks.json``.
    """
    out = Path(out)
    videos = {}
    for job in jobs:
        record = read_record(_status_path(out, job.name))
        if finished(out, job):
            if not record or record.get("status") != "done":
                index = json.loads((out / job.name / "masks.json").read_text())
                record = {"frames": index["num_frames"], "sentences": len(index["prompts"]),
                          "seconds": None, "status": "done"}
        elif not record or record.get("status") == "done":
            record = {"frames": None, "sentences": len(job.sentences), "seconds": None,
                      "status": "failed", "error": "no output (the run did not reach this video)"}
        videos[job.name] = record
    failed = sorted(n for n, r in videos.items() if r["status"] != "done")
    summary = {"videos": videos, "total": len(videos), "done": len(videos) - len(failed), "failed": failed}
    write_json(out / SUMMARY_FILE, summary, indent=2)
    return summary


def segment_batch(get_pipe: Callable[[], object], videos_dir: str | Path, sentence_file: str | Path,
                  out: str | Path, *, process: Process | None = None, run_record: dict | None = None,
                  log: Log = logger.warning, progress: bool | None = None, options: SegmentOptions | None = None,
                  overlay: bool = True) -> tuple[BatchStats, dict | None]:
    """The whole batch: plan, run this process's share, and (rank 0) write ``summary.json``.

    ``options``: how each video is segmented; ``overlay``: write each ``overlay.mp4`` (see
    :func:`run_jobs`). ``run_record``: what made the masks (model, settings); a rerun into the
    same ``out`` must match it. ``process`` says which share this process runs; a process group
    must be up when ``process.world_size > 1``. Returns this process's stats and the summary (None on
    ranks > 0).
    """
    process = process or Process()
    out = Path(out)
    jobs = plan_jobs(videos_dir, read_sentence_file(sentence_file))
    videos_abs, out_abs = Path(videos_dir).resolve(), out.resolve()
    if out_abs == videos_abs or videos_abs in out_abs.parents:
        raise FlowRVSError(f"--out {out} lies inside the videos folder {videos_dir}; choose a folder outside it")
    if out.exists() and not out.is_dir():
        raise FlowRVSError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    if run_record is not None:
        check_run_record(out, f"{STATUS_DIR}/{RUN_FILE}", run_record, process, outputs="masks")
    mine = jobs[process.rank :: process.world_size]
    stats = run_jobs(get_pipe, mine, out, options=options, overlay=overlay, progress=progress if process.main else False,
                     log=log)
    barrier(process)
    if not process.main:
        return stats, None
    remove_stale_temps(out)
    return stats, write_summary(out, jobs)

"""Windowed against whole-video evaluation on long synthetic videos laid out as Long-RVOS.

    nice python benchmarks/long_rvos_windows.py --threads 1 --markdown long_rvos_windows.md

(the defaults are the run recorded in docs/benchmarks.md: 4 videos of 145 frames, 9.4 CPU minutes
on one core, 15.4 minutes wall under ``nice`` on the shared 2-core machine; ``--videos 1 --frames 13
--size 48x80 --window 5 --overlap 2`` takes about 25 s).

Writes a Long-RVOS split (``<work>/long_rvos/valid/{JPEGImages, Annotations, meta_expressions.json}``,
one PNG per object and frame, no PNG where the object is absent) of long videos from the held-out
synthetic generator (``flowrvs.data.synth.generate``, the shipped model's test distribution, here
with ``--frames`` frames and ``--returns``: objects that leave the frame and come back, so that
tIoU and vIoU see absences in the middle of a video as well as at its ends). Sentence types:
appearance, relation and multi-object sentences are ``static``, motion sentences ``dynamic`` when
their noun phrase names no attribute (``the object that turns``) and ``static+dynamic`` (hybrid)
when it does (``the red circle that turns``).

Then runs the real commands, in this process through ``flowrvs.apps.cli.main``::

    flowrvs evaluate --dataset long-rvos --root R --split valid --model M --out <work>/windowed
    flowrvs evaluate --dataset long-rvos --root R --split valid --model M --out <work>/whole --window 0
    flowrvs score <out>/predictions --dataset long-rvos --root R --split valid --out <out>/score

and prints a markdown table of J&F, tIoU and vIoU per type and overall for each plan, read from
``flowrvs score``'s ``metrics.json``, the paired difference (windowed minus whole, same expression)
with its standard error over expressions, and the frames the VAE encodes in each plan.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from flowrvs.apps.cli import main as flowrvs_main
from flowrvs.data.long_rvos import TYPES as META_TYPES
from flowrvs.data.synth.generate import generate_video, parse_size, video_rng
from flowrvs.data.synth.video import SynthVideo
from flowrvs.data.synth.vocabulary import COLOURS, SHAPES, SIZES, TEXTURES
from flowrvs.data.synth.writer import JPEG_QUALITY, write_video_frames
from flowrvs.eval.long_rvos_metrics import TYPES
from flowrvs.eval.paired import format_difference, paired_difference
from flowrvs.io.atomic import atomic_path
from flowrvs.io.frames import padded_length
from flowrvs.io.masks import write_mask_png
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.runtime.machine import describe

SPLIT = "valid"
METRICS = ("J&F", "tIoU", "vIoU")
GROUPS = TYPES + ("overall",)
APPEARANCE_WORDS = frozenset(COLOURS) | frozenset(SIZES) | frozenset(TEXTURES) | frozenset(SHAPES)
#: the meta file's type of each synthetic sentence kind (motion: see :func:`meta_type`)
STATIC_KINDS = ("appearance", "relation", "multi")


def meta_type(sentence: str, kind: str) -> str:
    """The Long-RVOS ``type`` of a synthetic sentence of ``kind``."""
    if kind in STATIC_KINDS:
        return "static"
    if kind != "motion":
        raise ValueError(f"unknown synthetic sentence kind {kind!r}")
    return "static+dynamic" if APPEARANCE_WORDS & set(sentence.split()) else "dynamic"


def write_long_rvos(root: Path, videos: list[SynthVideo]) -> Path:
    """Write ``videos`` as the Long-RVOS split ``root/valid`` (object ids are the generator's
    indices, absent frames have no PNG); returns ``root``."""
    base = root / SPLIT
    meta = {}
    for video in videos:
        names = write_video_frames(base / "JPEGImages" / video.name, video, JPEG_QUALITY)
        for obj, masks in enumerate(video.masks):
            for name, mask in zip(names, masks):
                if mask.any():
                    write_mask_png(base / "Annotations" / video.name / str(obj) / f"{name}.png", mask)
        exps = {str(k): {"exp": sentence, "obj_id": [int(i) for i in ids], "type": meta_type(sentence, kind)}
                for k, ((sentence, ids), kind) in enumerate(zip(video.expressions, video.kinds))}
        meta[video.name] = {"frames": names, "expressions": exps}
    (base / "meta_expressions.json").write_text(json.dumps({"videos": meta}, sort_keys=True))
    return root


def make_videos(count: int, frames: int, size: str, seed: int, returns: float, mix: str | None) -> list[SynthVideo]:
    return [generate_video(video_rng(seed, i), frames=frames, size=parse_size(size), mix=mix,
                           name=f"long_{seed}_{i:03d}", returns=returns) for i in range(count)]


def cli(argv: list[str]) -> str:
    """Run ``flowrvs ARGV`` in this process (its stdout to stderr); returns the command line."""
    with contextlib.redirect_stdout(sys.stderr):
        code = flowrvs_main(argv)
    if code:
        raise SystemExit(f"flowrvs {' '.join(argv)} failed with exit status {code}")
    return "flowrvs " + " ".join(argv)


def run_plan(root: Path, out: Path, model: str, plan_args: list[str]) -> dict:
    """``flowrvs evaluate`` into ``out`` then ``flowrvs score`` of its predictions: the commands,
    the seconds evaluate took and the scorer's ``metrics.json``."""
    common = ["--dataset", "long-rvos", "--root", str(root), "--split", SPLIT]
    start = time.perf_counter()
    evaluate = cli(["evaluate", *common, "--model", model, "--out", str(out), *plan_args])
    seconds = time.perf_counter() - start
    score = cli(["score", str(out / "predictions"), *common, "--out", str(out / "score")])
    metrics = json.loads((out / "score" / "metrics.json").read_text())
    evaluated = json.loads((out / "metrics.json").read_text())
    if evaluated["overall"] != metrics["overall"]:
        raise SystemExit(f"evaluate and score disagree on {out}: {evaluated['overall']} != {metrics['overall']}")
    return {"commands": [evaluate, score], "seconds": seconds, "metrics": metrics}


def frames_encoded(pipe, videos: list[SynthVideo], window: int | None, overlap: int | None) -> int:
    """Frames the VAE encodes over ``videos`` in the pipeline's plan (windows padded to 4k+1)."""
    return sum(padded_length(len(w)) for v in videos for w in pipe.plan_windows(v.num_frames, window, overlap))


def plan_label(pipe, frames: int, window: int | None, overlap: int | None) -> str:
    """``"windows 17:4"`` (frames per window : frames the first two share) or ``"whole video"``."""
    plan = pipe.plan_windows(frames, window, overlap)
    if len(plan) == 1:
        return "whole video" if window == 0 else f"one window of {len(plan[0])}"
    return f"windows {len(plan[0])}:{plan[0].stop - plan[1].start}"


def group_rows(label: str, group: str, runs: dict[str, dict]) -> list[str]:
    """The table rows of one type: each plan's means (from the scorer) and the paired difference."""
    per = {plan: {k: e for k, e in run["metrics"]["per_expression"].items() if group == "overall" or e["type"] == group}
           for plan, run in runs.items()}
    (whole_plan, whole), (win_plan, win) = per.items()
    if not whole:
        return [f"| {label} (0) | – | – | – | – |"]
    keys = sorted(whole)
    head = f"| {label} ({len(keys)}) "
    rows = [head + f"| {plan} | " + " | ".join(f"{runs[plan]['metrics'][group][m]:.4f}" for m in METRICS) + " |"
            for plan in runs]
    diffs = [format_difference(*paired_difference([win[k][m] for k in keys], [whole[k][m] for k in keys]))
             for m in METRICS]
    return rows + [head + f"| {win_plan} − {whole_plan} | " + " | ".join(diffs) + " |"]


def table(runs: dict[str, dict], encoded: dict[str, int], total_frames: int) -> str:
    rows = ["| type (expressions) | plan | J&F | tIoU | vIoU |", "|---|---|---|---|---|"]
    for group in GROUPS:
        rows += group_rows(group, group, runs)
    rows += ["", "| plan | frames encoded / video length | evaluate wall seconds |", "|---|---|---|"]
    rows += [f"| {plan} | {encoded[plan] / total_frames:.2f} | {run['seconds']:.1f} |" for plan, run in runs.items()]
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny-synthetic")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=145, help="frames per video")
    parser.add_argument("--size", default="96x160", help="HxW of the generated videos")
    parser.add_argument("--seed", type=int, default=202, help="generator seed (not the training splits' seeds)")
    parser.add_argument("--returns", type=float, default=0.5, help="chance an object leaves and comes back")
    parser.add_argument("--mix", default="appearance=0.4,motion=0.4,relation=0.1,multi=0.1",
                        help="sentence kinds (more motion than the generator's default, for the dynamic types)")
    parser.add_argument("--window", type=int, default=None, help="windowed plan's --window (default: evaluate's)")
    parser.add_argument("--overlap", type=int, default=None, help="windowed plan's --overlap (default: evaluate's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=None, help="folder for the split and outputs (default: a temporary one)")
    parser.add_argument("--markdown", default=None, help="write the header and table here")
    parser.add_argument("--json", default=None, help="write both plans' metrics.json and the commands here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="long_rvos_windows_"))
    videos = make_videos(args.videos, args.frames, args.size, args.seed, args.returns, args.mix)
    root = write_long_rvos(work / "long_rvos", videos)
    windowed = [f for flag, v in (("--window", args.window), ("--overlap", args.overlap)) if v is not None
                for f in (flag, str(v))]
    pipe = load_pipeline(args.model, device="cpu", dtype=torch.float32)
    # the baseline first (group_rows takes the first plan as it)
    plans = {"whole video": (["--window", "0"], 0, 0), "windowed": (windowed, args.window, args.overlap)}
    runs, encoded = {}, {}
    for name, (flags, window, overlap) in plans.items():
        label = plan_label(pipe, args.frames, window, overlap)
        runs[label] = run_plan(root, work / name.replace(" ", "_"), args.model, flags)
        encoded[label] = frames_encoded(pipe, videos, window, overlap)
    total = sum(v.num_frames for v in videos)
    first = next(iter(runs.values()))["metrics"]
    this = "python benchmarks/long_rvos_windows.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (f"{args.videos} synthetic videos of {args.frames} frames at {args.size} laid out as Long-RVOS "
              f"(seed {args.seed}, returns {args.returns:g}, mix {args.mix}), {first['num_expressions']} expressions, "
              f"model `{args.model}`, {pipe.config.num_steps} step(s), threshold {pipe.config.mask_threshold:g}.\n"
              f"Machine: {describe()}, {torch.get_num_threads()} torch thread(s); torch {torch.__version__}; "
              f"{date.today().isoformat()}.\n\n```\n{this}\n" + "\n".join(c for r in runs.values() for c in r["commands"])
              + "\n```\n")
    text = header + "\n" + table(runs, encoded, total)
    print(text)
    if args.markdown:
        with atomic_path(args.markdown) as tmp:
            tmp.write_text(text + "\n")
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps({"work": str(work), "encoded": encoded, "frames": total, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

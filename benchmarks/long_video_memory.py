"""Peak memory of segmenting a video against its length, windowed and whole-video.

Writes a synthetic 1280x720 mp4 of each length (moving shapes, so the encoder has work), runs
``--command`` on it in a fresh process per run (the shipped `tiny-synthetic` model by default),
and reports wall time and the process's peak RSS (``ru_maxrss``): ``segment`` and
``segment-batch`` (a folder holding that one video) through the CLI, ``web`` through
:func:`flowrvs.apps.web.segment_upload`, the function the page's Segment button calls. Prints a
markdown table naming the machine, torch version and date.

    python benchmarks/long_video_memory.py --lengths 17 81 321 1281 --out /tmp/longvid
    python benchmarks/long_video_memory.py --command segment-batch --lengths 33 528 --windows 17 --out /tmp/lvm
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RUNNER = """
import resource, sys
from flowrvs.apps.cli import main
code = main(sys.argv[1:])
print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""

WEB_RUNNER = """
import resource, sys
from pathlib import Path
from flowrvs.apps.web import default_steps, segment_upload
from flowrvs.options import SegmentOptions
from flowrvs.pipelines.loader import load_pipeline
video, model, window, out = sys.argv[1:]
pipe = load_pipeline(model)
segment_upload(pipe, video, SENTENCE, default_steps(pipe), Path(out), options=SegmentOptions(window=int(window)))
print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""
SENTENCE = "the red circle"
COMMANDS = ("segment", "segment-batch", "web")


def write_video(path: Path, frames: int, size=(720, 1280), fps: float = 24.0) -> None:
    """A moving disc and square on a gradient, written frame by frame (never held whole)."""
    from flowrvs.io.encode import VideoWriter

    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 96)], -1).astype(np.uint8)
    writer = VideoWriter(path, fps)
    try:
        for t in range(frames):
            frame = background.copy()
            cx, cy = int(w * (0.2 + 0.6 * (t % 97) / 97)), h // 2
            frame[(xx - cx) ** 2 + (yy - cy) ** 2 < (h // 8) ** 2] = (230, 40, 40)
            x0 = int(w * 0.7 - 0.3 * w * (t % 53) / 53)
            frame[h // 5 : h // 5 + h // 6, x0 : x0 + h // 6] = (40, 60, 230)
            writer.write(frame)
    except BaseException:
        writer.abort()
        raise
    writer.close()


def command_line(command: str, video: Path, out: Path, model: str, window: int) -> list[str]:
    """The ``python -c ...`` arguments that run ``command`` on ``video`` into ``out`` in a fresh process."""
    if command == "web":
        return ["-c", WEB_RUNNER.replace("SENTENCE", repr(SENTENCE)), str(video), model, str(window), str(out)]
    if command == "segment":
        args = ["segment", str(video), "-p", SENTENCE, "--out", str(out)]
    else:  # a folder holding this one video, and its sentence file
        folder = out.with_name(out.name + "_videos")
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / video.name
        if not link.exists():
            link.symlink_to(video.resolve())
        sentences = folder.with_suffix(".json")
        sentences.write_text(json.dumps({video.name: [SENTENCE]}))
        args = ["segment-batch", str(folder), "--sentences", str(sentences), "--out", str(out)]
    return ["-c", RUNNER, *args, "--model", model, "--window", str(window)]


def run_command(command: str, video: Path, out: Path, model: str, window: int) -> dict:
    """Wall time and peak RSS of one fresh process running ``command`` (``out`` is replaced)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, *command_line(command, video, out, model, window)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{command} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    peak = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB"))
    return {"seconds": round(seconds, 1), "peak_rss_gib": round(peak / 2**20, 2)}


def main() -> None:
    import torch

    from flowrvs.runtime.machine import cpu_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", choices=COMMANDS, default="segment", help="what is measured (default: segment)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[17, 81, 321, 1281])
    parser.add_argument("--model", default="tiny-synthetic")
    parser.add_argument("--windows", type=int, nargs="+", default=[17, 0], help="0 = whole video")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for length in args.lengths:
        video = args.out / f"video_{length}.mp4"
        if not video.exists():
            write_video(video, length)
        for window in args.windows:
            result = run_command(args.command, video, args.out / f"{args.command}_{length}_{window}", args.model, window)
            rows.append({"command": args.command, "frames": length, "window": window, **result})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n`{args.command}`, {cpu_name()}, torch {torch.__version__}, {datetime.date.today()}, model {args.model}, "
          f"1280x720 mp4, one sentence\n")
    print("| frames | mode | peak RSS (GiB) | wall (s) |\n|---|---|---|---|")
    for row in rows:
        mode = "whole video" if row["window"] == 0 else f"windows of {row['window']}"
        print(f"| {row['frames']} | {mode} | {row['peak_rss_gib']} | {row['seconds']} |")


if __name__ == "__main__":
    main()

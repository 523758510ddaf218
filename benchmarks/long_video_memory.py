"""Peak memory of `flowrvs segment` against video length, windowed and whole-video.

Writes a synthetic 1280x720 mp4 of each length (moving shapes, so the encoder has work), runs
`flowrvs segment` on it in a fresh process per run (the shipped `tiny-synthetic` model by
default), and reports wall time and the process's peak RSS (``ru_maxrss``). Prints a markdown
table naming the machine, torch version and date.

    python benchmarks/long_video_memory.py --lengths 17 81 321 1281 --out /tmp/longvid
"""

from __future__ import annotations

import argparse
import datetime
import json
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


def run_segment(video: Path, out: Path, model: str, window: int) -> dict:
    args = ["segment", str(video), "-p", "the red circle", "--model", model, "--out", str(out), "--window", str(window)]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"segment failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1]}")
    peak = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB"))
    return {"seconds": round(seconds, 1), "peak_rss_gib": round(peak / 2**20, 2)}


def main() -> None:
    import torch

    from flowrvs.runtime.machine import cpu_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
            result = run_segment(video, args.out / f"seg_{length}_{window}", args.model, window)
            rows.append({"frames": length, "window": window, **result})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{cpu_name()}, torch {torch.__version__}, {datetime.date.today()}, model {args.model}, 1280x720 mp4, "
          f"one sentence\n")
    print("| frames | mode | peak RSS (GiB) | wall (s) |\n|---|---|---|---|")
    for row in rows:
        mode = "whole video" if row["window"] == 0 else f"windows of {row['window']}"
        print(f"| {row['frames']} | {mode} | {row['peak_rss_gib']} | {row['seconds']} |")


if __name__ == "__main__":
    main()

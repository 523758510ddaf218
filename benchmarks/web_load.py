"""Peak memory of the ``flowrvs web`` server with 1, then N visitors uploading long videos at once
(issue 24, point 3).

For each visitor count a fresh server is started as ``flowrvs web`` starts it (``python -m
flowrvs web --model tiny-synthetic --no-examples``, its Gradio cache in a fresh folder); that
many gradio_client visitors each upload their own synthetic video (``generate_video``, written
as mp4) with one sentence, all at once; each result is checked (its status line names its frame
count), then the server's peak resident memory (``VmHWM`` of its process, read from ``/proc``
by :func:`flowrvs.runtime.memory.peak_rss_bytes`) is read, and the server stopped. A fresh
process per count, because ``VmHWM`` only grows.

Usage: ``python benchmarks/web_load.py [--frames 240] [--size 96x160] [--visitors 1,4] [--json PATH]``.
Prints one line per count and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flowrvs.runtime.memory import peak_rss_bytes

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "the red circle"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_videos(folder: Path, count: int, frames: int, size: str) -> list[Path]:
    """``count`` synthetic videos (seeds 0..count-1), each ``frames`` frames at ``size`` (HxW)."""
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video

    paths = []
    for seed in range(count):
        path = folder / f"visitor-{seed}" / "upload.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            write_video(path, generate_video(seed, frames=frames, size=size).frames, fps=24)
        paths.append(path)
    return paths


def start_server(work: Path, model: str, timeout_s: float = 300.0) -> tuple[subprocess.Popen, str]:
    """``flowrvs web`` in a child process; returns it and its URL once it serves."""
    env = {**os.environ, "GRADIO_TEMP_DIR": str(work / "gradio"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "flowrvs", "web", "--model", model, "--no-examples", "--device", "cpu",
               "--port", str(free_port())]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    end = time.monotonic() + timeout_s
    for line in proc.stdout:
        found = re.search(r"open (http\S+)", line)
        if found:
            return proc, found.group(1)
        if time.monotonic() > end:
            break
    proc.kill()
    raise RuntimeError(f"flowrvs web did not start (exit {proc.poll()})")


def visit(url: str, video: Path, downloads: Path) -> str:
    """One visitor: upload ``video`` with one sentence, wait for the result; its status line."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=str(downloads))
    result = client.predict(handle_file(str(video)), SENTENCE, 1, api_name="/run")
    return result[4]


def one_round(visitors: int, videos: list[Path], frames: int, model: str, work: Path) -> dict:
    """A fresh server, ``visitors`` visitors at once; its peak memory and the time the round took."""
    proc, url = start_server(work / f"server-{visitors}", model)
    try:
        idle = peak_rss_bytes(proc.pid)
        start = time.perf_counter()
        with ThreadPoolExecutor(visitors) as pool:
            statuses = list(pool.map(lambda k: visit(url, videos[k], work / f"downloads-{visitors}-{k}"),
                                     range(visitors)))
        seconds = time.perf_counter() - start
        peak = peak_rss_bytes(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    expected = f"1 sentence(s), {frames} frames."
    if any(s != expected for s in statuses):
        raise RuntimeError(f"a visitor got {statuses}, expected {expected!r} each")
    return {"visitors": visitors, "idle_peak_mib": round(idle / 2**20, 1), "peak_mib": round(peak / 2**20, 1),
            "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240, help="frames of each uploaded video (default 240)")
    parser.add_argument("--size", default="96x160", help="HxW of the uploaded videos (default 96x160)")
    parser.add_argument("--visitors", default="1,4", help="visitor counts, one fresh server each (default 1,4)")
    parser.add_argument("--model", default="tiny-synthetic", help="the server's --model (default tiny-synthetic)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.visitors.split(",")]
    with tempfile.TemporaryDirectory(prefix="flowrvs-web-load-") as tmp:
        work = Path(tmp)
        videos = write_videos(work / "videos", max(counts), args.frames, args.size)
        upload_kib = round(videos[0].stat().st_size / 2**10, 1)
        rounds = []
        for count in counts:
            rounds.append(one_round(count, videos, args.frames, args.model, work))
            print(f"{count} visitor(s) at once: server peak {rounds[-1]['peak_mib']} MiB "
                  f"(idle {rounds[-1]['idle_peak_mib']} MiB), {rounds[-1]['seconds']} s", flush=True)
    summary = {"frames": args.frames, "size": args.size, "upload_kib": upload_kib, "model": args.model,
               "rounds": rounds}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()

"""benchmarks/gpu_inference.py end to end at the tiny preset on the CPU (the GPU run's dress rehearsal)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_inference.py"


@pytest.mark.slow
def test_tiny_gpu_benchmark_runs_on_cpu(tmp_path):
    folder, out = tmp_path / "model", tmp_path / "figures.json"
    cmd = [sys.executable, str(SCRIPT), "--preset", "tiny", "--folder", str(folder), "--device", "cpu",
           "--frames", "9", "--size", "32x48", "--sentences", "2", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    figures = json.loads(out.read_text())
    header = figures["header"]
    assert header["torch"] == torch.__version__ and header["machine"] and header["date"]
    assert header["command"].startswith("python benchmarks/gpu_inference.py --preset tiny")
    assert (header["frames"], header["size"]) == (9, "32x48")
    assert (folder / "model_index.json").is_file()  # the folder was built by fullsize.py's builder
    assert figures["text_cold"]["sentences"] == 2
    assert set(figures["one_sentence"]) == {"whole video (window=0)", "windowed (17:4, default)"}
    assert all(r["wall_s"] > 0 and r["peak_gpu_bytes"] is None for r in figures["one_sentence"].values())

    tp = figures["throughput"]
    assert tp["sentences"] == tp["batch_size"] == 2
    assert tp["flowrvs"]["wall_s"] > 0 and tp["public"]["wall_s"] > 0
    assert tp["speedup"] == pytest.approx(tp["public"]["wall_s"] / tp["flowrvs"]["wall_s"])
    assert tp["pixels"] == 2 * 9 * 32 * 48
    # the public loop re-stated in the script gives flowrvs' masks, and they are not trivial
    assert tp["masks_identical"] is True and tp["differing_pixels"] == 0
    assert all(0 < f < 1 for f in tp["foreground"])

    assert "Masks identical: yes" in done.stdout and "| whole video (window=0) |" in done.stdout

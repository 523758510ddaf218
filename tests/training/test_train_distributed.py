"""Many processes (torchrun, gloo on CPU): the same config trains the same at any world size,
with DDP and with FSDP, and a killed 2-process run resumes exactly."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from safetensors.torch import load_file

from flowrvs.data.synth.writer import write_split
from flowrvs.training.config import load_config
from flowrvs.training.trainer import train

pytestmark = pytest.mark.slow
STEPS = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A synthetic split, a config file, and the 1-process reference run."""
    root = tmp_path_factory.mktemp("dist")
    write_split(root / "synth", "train", videos=3, frames=5, size=(32, 48), seed=0, progress=False)
    config = {
        "device": "cpu", "progress": False, "checkpoint_every": 2, "log_every": 1, "keep_last": 0,
        "model": {"preset": "tiny", "vocabulary": "synth", "text_len": 16},
        "data": {"datasets": [{"type": "mevis", "root": str(root / "synth"), "split": "train"}],
                 "num_frames": 5, "size": [32, 48], "sampling": "mixed", "hflip_p": 0.5},
        "optim": {"steps": STEPS, "lr": 1e-3, "batch_size": 4, "warmup_steps": 2, "schedule": "cosine"},
        "ema": {"decay": 0.9},
        "tensorboard": {"enabled": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    reference = train(load_config(path, [f"output_dir={root / 'one'}"]))
    return root, path, reference.losses


def torchrun(config: Path, *overrides: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "flowrvs", "train", str(config), *overrides]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def logged_losses(run: Path) -> dict[int, float]:
    steps = re.findall(r"^step=(\d+) loss=(\S+)", (run / "train.log").read_text(), re.M)
    return {int(s): float(v) for s, v in steps}  # a resumed run logs its steps again: the last wins


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(str(run / "checkpoints" / f"step-{STEPS:08d}.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "ema.", "optim."))}


def assert_same_run(run: Path, root: Path, reference: dict[int, float]) -> None:
    losses = logged_losses(run)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert len(set(reference.values())) == STEPS  # the steps really differ
    for step, loss in reference.items():
        assert losses[step] == pytest.approx(loss, abs=1e-5, rel=0), step
    ours, theirs = final_weights(run), final_weights(root / "one")
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.allclose(ours[key], theirs[key], atol=1e-5, rtol=0), key


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_as_one(setup, strategy):
    root, config, reference = setup
    run = root / strategy
    proc = torchrun(config, f"output_dir={run}", f"dist.strategy={strategy}", "optim.grad_accum=2")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert out.count("model written to") == 1  # rank 0 speaks for the run
    assert f"processes=2 strategy={strategy}" in (run / "train.log").read_text()
    assert_same_run(run, root, reference)
    assert (run / "model" / "model_index.json").is_file()


def test_killed_two_process_run_resumes_exactly(setup):
    root, config, reference = setup
    run = root / "killed"
    proc = torchrun(config, f"output_dir={run}")
    first = run / "checkpoints" / "step-00000002.safetensors"
    deadline = time.monotonic() + 600
    while not first.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)  # torchrun runs them in their own sessions
    for p in [psutil.Process(proc.pid), *workers]:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(workers, timeout=60)
    proc.wait()
    assert not (run / "model").exists(), "the run ended before it was killed; make it longer"
    done = sorted(int(p.name[5:13]) for p in (run / "checkpoints").glob("step-*.safetensors"))
    assert done and done[-1] < STEPS
    resumed = torchrun(config, f"output_dir={run}", "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"start_step={done[-1]}" in (run / "train.log").read_text()
    assert_same_run(run, root, reference)

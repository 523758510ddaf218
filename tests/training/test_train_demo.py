"""benchmarks/train_demo.py end to end at a tiny size on CPU, its clock counting training steps."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def driver():
    spec = importlib.util.spec_from_file_location("train_demo", REPO / "benchmarks" / "train_demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_plan_fills_the_time_left_at_the_measured_rate(driver):
    # 260 s left after 20 s of start-up, at 0.25 s a step: 1040 steps more
    assert driver.plan_steps(300, now=100.0, end=380.0, rate=0.25, overhead=20.0, max_steps=100000) == 1340
    assert driver.plan_steps(300, now=100.0, end=380.0, rate=0.25, overhead=20.0, max_steps=1000) == 1000
    assert driver.plan_steps(300, now=370.0, end=380.0, rate=0.25, overhead=20.0, max_steps=100000) == 300


def test_rate_leaves_out_the_start_up(driver):
    # steps 0 -> 100 in 33 s of clock: 10 s before step 10 was logged, 3 s after step 100 (the export)
    chunk = driver.Chunk(0, 100, 33.0, samples=[(5.0, 0), (10.0, 10), (20.0, 60), (30.0, 100), (33.0, 100)])
    assert chunk.rate() == pytest.approx(20.0 / 90)
    assert chunk.overhead() == pytest.approx(33.0 - 100 * 20.0 / 90)


def test_watchdog_stops_a_chunk_past_its_deadline(driver, tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    chunk = driver.train_chunk(sleeper, tmp_path, tmp_path / "log", clock=lambda: 100.0, hard_deadline=50.0, poll=0.01)
    assert chunk.stopped and not chunk.failed and chunk.last == 0


def test_a_failed_second_chunk_is_recorded_a_failed_first_one_ends_the_driver(driver, tmp_path):
    (tmp_path / "train.log").write_text("step=10 loss=1\nstep=20 loss=nan\n")
    failing = [sys.executable, "-c", "raise SystemExit(2)"]
    chunk = driver.train_chunk(failing, tmp_path, tmp_path / "log", clock=lambda: 0.0, hard_deadline=None, poll=0.01,
                               fatal=False)
    assert chunk.failed and not chunk.stopped and chunk.last == 20
    with pytest.raises(SystemExit, match="training failed"):
        driver.train_chunk(failing, tmp_path, tmp_path / "log", clock=lambda: 0.0, hard_deadline=None, poll=0.01)


@pytest.mark.slow
def test_train_demo_end_to_end_stops_training_at_the_budget(driver, tmp_path):
    from flowrvs.apps.cli import main as flowrvs
    from flowrvs.pipelines.loader import load_pipeline

    out = tmp_path / "out"
    run_dir = out / "work" / "runs" / "flow"

    def steps_clock() -> float:
        """One 'second' per training step logged; nothing else takes time."""
        return float(driver.logged_step(run_dir))

    budget, reserve, first = 9, 3, 2
    argv = [
        "--out", str(out), "--budget", str(budget), "--reserve", str(reserve), "--first-chunk", str(first),
        "--videos", "4", "--shard-videos", "2", "--frames", "5", "--size", "32", "48",
        "--heldout-videos", "2", "--tune-videos", "1", "--heads", "2", "--ffn-dim", "64",
        "--set", "log_every=1", "optim.batch_size=2", "optim.warmup_steps=1", "checkpoint_every=1000",
        "--eval-steps", "1", "--no-threshold-zero", "--device", "cpu",
        "--workers", "2", "--cache-jobs", "2", "--tune-threads", "1", "--poll", "0.1",
    ]
    assert driver.main(argv, clock=steps_clock) == 0
    numbers = json.loads((out / "numbers.json").read_text())

    # the first chunk ends at step 2 (clock 2); then (9 - 3 - 2) / 1 = 4 steps fit: step 6, far below max_steps
    training = numbers["training"]
    assert training["steps"] == 6 and training["stopped_by"] == "budget"
    assert [(c["from"], c["to"]) for c in training["chunks"]] == [(0, 2), (2, 6)]
    assert training["samples"] == 6 * 2
    assert numbers["data"]["videos"] == 4 and numbers["data"]["seeds"] == [100, 101]
    # the run trained on the caches its builders wrote: one file per shard, none encoded again
    assert len(list((out / "work" / "cache").glob("latents-*.safetensors"))) == 2

    # a loadable model: the wider DiT without DVI, the tuned threshold stored in it
    pipe = load_pipeline(out / "model", device="cpu")
    assert not pipe.dvi and pipe.transformer.config.num_attention_heads == 2
    assert pipe.config.mask_threshold == numbers["tuning"]["threshold"] == numbers["heldout"]["threshold"]
    assert numbers["model"]["megabytes"] < 20

    # the held-out J&F is what `flowrvs score` finds in the written predictions
    headline = numbers["heldout"]["evaluations"][0]
    assert headline["steps"] == 1 and numbers["heldout"]["J&F"] == headline["J&F"]
    scored = tmp_path / "scored"
    assert flowrvs(["score", str(out / headline["folder"] / "predictions"), "--dataset", "mevis",
                    "--root", str(out / "work" / "data" / "heldout"), "--split", "valid_u", "--out", str(scored)]) == 0
    metrics = json.loads((scored / "metrics.json").read_text())
    assert metrics["num_expressions"] == headline["expressions"] > 0
    assert numbers["heldout"]["J&F"] == pytest.approx(metrics["J&F"], abs=1e-12)
    assert f"**{metrics['J&F']:.3f}**" in (out / "numbers.md").read_text()

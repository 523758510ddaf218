"""Train the demo model ``tiny-synthetic`` on one GPU within a time budget (issue 18), in one command.

    python benchmarks/train_demo.py --out OUT [--budget 480] [--videos 24000]

On a fresh GPU machine it
1. builds the start model ``WORK/init``: the shipped model's VAE (its trained mask decoder),
   text encoder and tokenizer (``--decoder``), with a fresh random Wan DiT without direct video
   injection, ``--heads`` x 32 wide (``--ffn-dim``);
2. writes the synthetic data with ``--workers`` processes (``flowrvs.data.synth.writer.write_split``, one
   seed per shard of ``--shard-videos``; same seed, same bytes): the training shards (seeds
   ``--first-seed``...), the tuning split (seed 3, 20 videos) and the held-out split (seed 1,
   50 videos, ``valid_u``: the model card's); none of the training seeds is 1 or 3;
3. encodes each shard's latent cache as soon as the shard is written, ``--cache-jobs`` at a time
   (a 1-step ``flowrvs train`` per shard on the GPU, all writing one shared ``data.cache_dir``);
4. trains the flow stage (``configs/tiny-synthetic-gpu.yaml``) in two ``flowrvs train``
   invocations: ``--first-chunk`` steps at a constant lr, timed; then, resumed, as many steps
   as the measured rate fits before ``budget - reserve``, the lr annealed by a cosine to zero.
   A watchdog stops a second chunk that runs late and exports its last checkpoint;
5. copies the model to ``OUT/model``, re-tunes its mask threshold on the tuning split
   (``benchmarks/tune_threshold.py --write``), evaluates it on the held-out split
   (``flowrvs evaluate``, float32, 1 and 4 Euler steps, and at threshold 0), and writes
   ``OUT/numbers.json`` and ``OUT/numbers.md`` (the model card's rows).

Everything runs through the ``flowrvs`` command line (subprocesses), so the training code
behind it may change. The clock starts when this script does: ``--budget`` covers all of the
above; installing the wheels before it is not counted. Work files (data, latent caches, runs;
tens of GB at the defaults) go to ``--work`` (default ``OUT/work``); the run is ``WORK/runs/flow``.

On the GPU machine (device tool ``run``; the wheels were fetched here with the
``pip download`` command in docs/tiny-synthetic.md into the git-ignored ``wheels/``):

    run(command="bash benchmarks/train_demo_gpu.sh", carry=["wheels"], timeout_s=600)

``benchmarks/train_demo_gpu.sh`` installs the wheels, runs this script with ``--out /tmp/demo``
and packs ``OUT/model`` (split in 15 MB parts) with the numbers and the log into ``$OUT``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's flowrvs, as in the subprocesses (``env``)
CONFIG = REPO / "configs" / "tiny-synthetic-gpu.yaml"
TUNE = REPO / "benchmarks" / "tune_threshold.py"
STEP_RE = re.compile(r"^step=(\d+)\b", re.M)
Clock = Callable[[], float]


# ------------------------------------------------------------------------------ helpers
def log(msg: str) -> None:
    print(f"train_demo: {msg}", flush=True)


def env(threads: int | None = None) -> dict[str, str]:
    """The subprocesses' environment: this repo's ``src`` first on the path, offline hubs."""
    out = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    if threads is not None:
        out.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return out


def flowrvs(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowrvs.apps.cli", *args]


def run(cmd: list[str], logfile: Path, threads: int | None = None) -> None:
    """Run ``cmd`` with its output appended to ``logfile``; a failure ends the driver with the log's tail."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env(threads)).returncode
    if code:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"train_demo: {cmd[2:4]} failed (exit {code}); end of {logfile}:\n{tail}")


def logged_step(run_dir: Path) -> int:
    """The last step a run's ``train.log`` reports (0 before the first)."""
    path = run_dir / "train.log"
    found = STEP_RE.findall(path.read_text()) if path.is_file() else []
    return int(found[-1]) if found else 0


def write_yaml(path: Path, config: dict) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ 1. start model
def build_init(decoder: str, out: Path, heads: int, ffn_dim: int, seed: int) -> dict:
    """``out``: a copy of model folder ``decoder`` whose DiT is replaced by a random one without
    DVI (``in_channels = out_channels``), ``heads`` attention heads wide. Returns its DiT config."""
    import torch
    from diffusers import WanTransformer3DModel

    from flowrvs.io.atomic import atomic_dir
    from flowrvs.loading.resolve import resolve_model_dir

    source = resolve_model_dir(decoder)
    config = json.loads((source / "transformer" / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    config.update(in_channels=config["out_channels"], num_attention_heads=heads, ffn_dim=ffn_dim)
    built = out / "transformer" / "config.json"
    if built.is_file() and all(json.loads(built.read_text()).get(k) == config[k] for k in config):
        return config  # a rerun: the same start model
    with atomic_dir(out) as tmp:
        tmp.rmdir()
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("README.md"))
        shutil.rmtree(tmp / "transformer")
        torch.manual_seed(seed)
        WanTransformer3DModel.from_config(config).save_pretrained(tmp / "transformer")
    return config


# ------------------------------------------------------------------------------ 2-3. data and caches
@dataclass
class Shard:
    seed: int
    videos: int
    root: Path
    split: str = "train"

    def spec(self) -> dict:
        return {"type": "mevis", "root": str(self.root), "split": self.split, "weight": 1.0}


def cache_builder(args, shard: Shard, init: Path, work: Path) -> Callable[[], None]:
    """A job that encodes ``shard``'s latent cache into ``WORK/cache`` (a 1-step run of its own)."""

    def job() -> None:
        run_dir = work / "runs" / f"cache-s{shard.seed}"
        shutil.rmtree(run_dir, ignore_errors=True)  # on a rerun it finds its cache file and only loads it
        config = train_config(args, init, work, [shard], run_dir)
        config["optim"].update(steps=1, batch_size=min(8, config["optim"]["batch_size"]), warmup_steps=0)
        config["checkpoint_every"] = 1
        path = write_yaml(work / "configs" / f"cache-s{shard.seed}.yaml", config)
        run(flowrvs("train", str(path), *args.set), work / "logs" / f"cache-s{shard.seed}.log", threads=1)

    return job


def make_data(args, init: Path, work: Path, clock: Clock, deadline: float) -> tuple[list[Shard], dict]:
    """Write every split and the training shards' latent caches; shards not written by
    ``deadline`` are dropped. Returns the shards trained on and the data summary."""
    data = work / "data"
    size = tuple(args.size)
    shards = [
        Shard(args.first_seed + k, min(args.shard_videos, args.videos - k * args.shard_videos), data / f"train-s{args.first_seed + k}")
        for k in range(math.ceil(args.videos / args.shard_videos))
    ]
    if {args.heldout_seed, args.tune_seed} & {s.seed for s in shards}:
        raise SystemExit("train_demo: a training shard would use the held-out or tuning seed; change --first-seed")
    splits = [("heldout", data / "heldout", "valid_u", args.heldout_videos, args.heldout_seed),
              ("tune", data / "tune", "valid", args.tune_videos, args.tune_seed)]
    splits += [(f"s{s.seed}", s.root, s.split, s.videos, s.seed) for s in shards]
    by_name = {f"s{s.seed}": s for s in shards}
    written: list[Shard] = []
    started = clock()
    from flowrvs.data.synth.writer import write_split

    with ThreadPoolExecutor(args.cache_jobs) as encoders, \
            multiprocessing.get_context("spawn").Pool(min(args.workers, len(splits))) as pool:
        pending = {}  # same seed, same bytes: a split already on disk is not written again
        for name, root, split, videos, seed in splits:
            done = (root / split / "meta_expressions.json").is_file()
            pending[name] = None if done else pool.apply_async(
                write_split, (str(root), split, videos), dict(frames=args.frames, size=size, seed=seed, progress=False))
        encoding = []
        while pending and clock() <= deadline:
            for name, result in list(pending.items()):
                if result is None or result.ready():
                    if result is not None:
                        result.get()  # a failed split ends the driver with its error
                    del pending[name]
                    if name in by_name:
                        written.append(by_name[name])
                        encoding.append(encoders.submit(cache_builder(args, by_name[name], init, work)))
            time.sleep(0.1 if pending else 0)
        if pending:
            if {"heldout", "tune"} & set(pending):
                raise SystemExit("train_demo: the held-out and tuning splits were not written before the data deadline")
            log(f"data deadline reached: {len(pending)} shard(s) dropped")
            pool.terminate()
        synth_seconds = clock() - started
        for future in encoding:
            future.result()
    written.sort(key=lambda s: s.seed)
    expressions = sum(count_expressions(s.root / s.split) for s in written)
    summary = {"videos": sum(s.videos for s in written), "expressions": expressions, "shards": len(written),
               "seeds": [s.seed for s in written], "frames": args.frames, "size": list(size),
               "synth_seconds": round(synth_seconds, 1), "seconds": round(clock() - started, 1)}
    return written, summary


def count_expressions(split_dir: Path) -> int:
    meta = json.loads((split_dir / "meta_expressions.json").read_text())["videos"]
    return sum(len(v["expressions"]) for v in meta.values())


# ------------------------------------------------------------------------------ 4. training
def train_config(args, init: Path, work: Path, shards: list[Shard], run_dir: Path) -> dict:
    """The run's config: ``--config`` with the driver's paths and data filled in."""
    import yaml

    config = yaml.safe_load(Path(args.config).read_text())
    config.update(output_dir=str(run_dir), progress=False)
    if args.device:
        config["device"] = args.device
    config["model"]["init"] = str(init)
    config["data"].update(datasets=[s.spec() for s in shards], cache_dir=str(work / "cache"),
                          num_frames=args.frames, size=list(args.size))
    return config


@dataclass
class Chunk:
    """One ``flowrvs train`` invocation: the steps it ran and what the clock said around it."""

    first: int
    last: int
    seconds: float
    samples: list[tuple[float, int]] = field(default_factory=list)  # (clock, logged step) while it ran
    stopped: bool = False  # by the watchdog
    failed: bool = False  # a non-fatal chunk that exited with an error (a NaN loss, say)

    def rate(self) -> float:
        """Seconds per step, from when the log first showed each step after the chunk's first
        tenth (start-up and the export after the last step excluded), else over the whole chunk."""
        steps = self.last - self.first
        seen: dict[int, float] = {}
        for c, s in self.samples:
            seen.setdefault(s, c)
        warm = sorted((c, s) for s, c in seen.items() if s >= self.first + max(1, steps // 10))
        if len(warm) >= 2 and warm[-1][1] > warm[0][1]:
            return (warm[-1][0] - warm[0][0]) / (warm[-1][1] - warm[0][1])
        return self.seconds / max(1, steps)

    def overhead(self) -> float:
        """Seconds of the chunk not spent in its steps (start, model and cache loading, export)."""
        return max(0.0, self.seconds - self.rate() * (self.last - self.first))


def train_chunk(cmd: list[str], run_dir: Path, logfile: Path, clock: Clock, hard_deadline: float | None,
                poll: float, fatal: bool = True) -> Chunk:
    """Run one training invocation, sampling the clock against the logged step; past
    ``hard_deadline`` the process is stopped (its last checkpoint remains). A failure ends the
    driver when ``fatal``, else it is recorded in the chunk."""
    first = logged_step(run_dir)
    started = clock()
    chunk = Chunk(first, first, 0.0)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env())
        while proc.poll() is None:
            chunk.samples.append((clock(), logged_step(run_dir)))
            if hard_deadline is not None and clock() > hard_deadline:
                log("the training chunk runs past its deadline: stopping it")
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                chunk.stopped = True
                break
            time.sleep(poll)
    if proc.returncode and not chunk.stopped:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-15:])
        if fatal:
            raise SystemExit(f"train_demo: training failed (exit {proc.returncode}); end of {logfile}:\n{tail}")
        log(f"training failed (exit {proc.returncode}); end of {logfile}:\n{tail}")
        chunk.failed = True
    chunk.samples.append((clock(), logged_step(run_dir)))
    chunk.last = logged_step(run_dir)
    chunk.seconds = clock() - started
    return chunk


def plan_steps(done: int, now: float, end: float, rate: float, overhead: float, max_steps: int) -> int:
    """The step to train to: ``done`` plus what fits between ``now`` and ``end`` at ``rate``
    seconds per step after ``overhead`` seconds of start-up, at most ``max_steps``."""
    extra = math.floor((end - now - overhead) / rate) if rate > 0 else max_steps
    return max(done, min(max_steps, done + extra))


def train(args, init: Path, work: Path, shards: list[Shard], clock: Clock, deadline: float) -> tuple[Path, dict]:
    """Both chunks; returns the model folder written and the training summary."""
    import yaml

    run_dir = work / "runs" / "flow"
    config = write_yaml(work / "configs" / "flow.yaml", train_config(args, init, work, shards, run_dir))
    logfile = work / "logs" / "flow.log"
    end = deadline - args.reserve
    max_steps = args.max_steps
    first = min(args.first_chunk, max_steps)
    shutil.rmtree(run_dir, ignore_errors=True)  # a rerun reuses the data and caches, not a run
    # the watchdog: a chunk that runs late still leaves half of the reserve for the evaluation
    watchdog = deadline - args.reserve / 2
    one = train_chunk(flowrvs("train", str(config), f"optim.steps={max_steps}", f"stop_at={first}",
                              "optim.schedule=constant", *args.set),
                      run_dir, logfile, clock, watchdog, args.poll)
    rate, overhead = one.rate(), one.overhead()
    chunks, total = [one], one.last
    if not one.stopped:
        total = plan_steps(one.last, clock(), end, rate, overhead, max_steps)
        log(f"chunk 1: {one.last} steps in {one.seconds:.1f} s ({rate * 1000:.1f} ms/step, {overhead:.1f} s start-up); "
            f"planned to step {total}")
    if total > one.last:
        two = train_chunk(flowrvs("train", str(config), f"optim.steps={total}", "optim.schedule=cosine",
                                  f"optim.decay_start={one.last}", *args.set, "--resume"),
                          run_dir, logfile, clock, watchdog, args.poll, fatal=False)
        chunks.append(two)
        log(f"chunk 2: to step {two.last} in {two.seconds:.1f} s")
    model = run_dir / "model"
    last = chunks[-1].last
    if chunks[-1].stopped or chunks[-1].failed:
        last = last_checkpoint_step(run_dir)
        log(f"exporting the last checkpoint, of step {last}")
        if not last:
            raise SystemExit("train_demo: training was stopped before its first checkpoint (lower checkpoint_every)")
        shutil.rmtree(model, ignore_errors=True)
        run(flowrvs("export", str(run_dir), "--out", str(model)), logfile)
    optim = yaml.safe_load(config.read_text())["optim"]
    for override in args.set:  # --set optim.KEY=VALUE wins over the config file
        key, _, value = override.partition("=")
        if key.startswith("optim."):
            optim[key[len("optim."):]] = yaml.safe_load(value)
    batch = int(optim["batch_size"])
    summary = {
        "steps": last, "planned_steps": total, "max_steps": max_steps, "batch_size": batch, "samples": last * batch,
        "lr": optim["lr"], "warmup_steps": optim["warmup_steps"],
        "schedule": f"constant to step {one.last}" + (f", then cosine to zero at step {total}" if total > one.last else ""),
        "stopped_by": ("failure" if chunks[-1].failed else "watchdog" if chunks[-1].stopped
                       else "max_steps" if total >= max_steps else "budget"),
        "seconds_per_step": round(rate, 4), "startup_seconds": round(overhead, 1),
        "chunks": [{"from": c.first, "to": c.last, "seconds": round(c.seconds, 1), "stopped": c.stopped, "failed": c.failed}
                   for c in chunks],
        "config": str(args.config), "overrides": list(args.set),
    }
    return model, summary


def last_checkpoint_step(run_dir: Path) -> int:
    steps = [int(m[1]) for p in (run_dir / "checkpoints").glob("step-*.safetensors") if (m := re.match(r"step-(\d+)", p.name))]
    return max(steps, default=0)


# ------------------------------------------------------------------------------ 5. threshold, evaluation, numbers
def tune_threshold(args, model: Path, work: Path, out: Path) -> dict:
    logfile = out / "tune.txt"
    logfile.unlink(missing_ok=True)
    run([sys.executable, str(TUNE), "--model", str(model), "--root", str(work / "data" / "tune"), "--split", "valid",
         "--write", "--threads", str(args.tune_threads)], logfile, threads=args.tune_threads)
    best = re.search(r"^best: (\S+) \(J&F ([0-9.]+); at 0: ([0-9.]+)\)", logfile.read_text(), re.M)
    if not best:
        raise SystemExit(f"train_demo: no 'best:' line in {logfile}")
    return {"threshold": float(best[1]), "J&F": float(best[2]), "J&F_at_0": float(best[3]),
            "seed": args.tune_seed, "videos": args.tune_videos, "split": "valid"}


def evaluate(args, model: Path, work: Path, out: Path, steps: int, threshold: float | None) -> dict:
    name = f"n{steps}" + ("" if threshold is None else f"-t{threshold:g}")
    folder = out / "eval" / name
    cmd = flowrvs("evaluate", "--dataset", "mevis", "--root", str(work / "data" / "heldout"), "--split", "valid_u",
                  "--model", str(model), "--out", str(folder), "--steps", str(steps), "--batch-size", "16",
                  "--dtype", "float32")
    if threshold is not None:
        cmd += ["--mask-threshold", f"{threshold:g}"]
    if args.device:
        cmd += ["--device", args.device]
    run(cmd, out / "logs" / f"eval-{name}.log", threads=args.tune_threads)
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"name": name, "steps": steps, "threshold": threshold, "folder": str(folder.relative_to(out)),
            "J": metrics["J"], "F": metrics["F"], "J&F": metrics["J&F"], "expressions": metrics.get("num_expressions")}


def model_summary(model: Path) -> dict:
    from safetensors import safe_open

    params = {}
    for part in ("transformer", "text_encoder", "vae"):
        count = 0
        for path in (model / part).glob("*.safetensors"):
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    count += math.prod(f.get_slice(key).get_shape())
        params[part] = count
    size = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    dit = json.loads((model / "transformer" / "config.json").read_text())
    return {"megabytes": round(size / 1e6, 2), "parameters": params,
            "dit": {k: dit[k] for k in ("num_layers", "num_attention_heads", "attention_head_dim", "ffn_dim", "in_channels")},
            "dvi": dit["in_channels"] != dit["out_channels"]}


def machine() -> dict:
    import torch

    from flowrvs.runtime.machine import cpu_name

    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cpus": os.cpu_count(), "gpu": gpu, "torch": torch.__version__, "python": platform.python_version()}


def markdown(numbers: dict) -> str:
    """The model card's rows for ``numbers``."""

    def steps(n: int) -> str:
        return f"{n} Euler step" + ("s" if n != 1 else "")

    t, h, d, m = numbers["training"], numbers["heldout"], numbers["data"], numbers["model"]
    main = h["evaluations"][0]
    lines = [
        f"Trained by `{numbers['command']}` on {numbers['machine']['gpu'] or 'CPU'} "
        f"({numbers['machine']['cpus']} x {numbers['machine']['cpu']}), torch {numbers['machine']['torch']}, {numbers['date']}; "
        f"{numbers['seconds']:.0f} s of a {numbers['budget_seconds']:.0f} s budget.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out J&F (J, F), {steps(main['steps'])}, mask threshold {h['threshold']:g} | "
        f"**{main['J&F']:.3f}** ({main['J']:.3f}, {main['F']:.3f}) |",
    ]
    for e in h["evaluations"][1:]:
        what = steps(e["steps"]) + (f", threshold {e['threshold']:g}" if e["threshold"] is not None else "")
        lines.append(f"| the same, {what} | {e['J&F']:.3f} ({e['J']:.3f}, {e['F']:.3f}) |")
    tune = numbers["tuning"]
    lines += [
        f"| mask threshold picked on the tuning split (seed {tune['seed']}, {tune['videos']} videos) | "
        f"{tune['threshold']:g} (J&F {tune['J&F']:.3f} there; {tune['J&F_at_0']:.3f} at 0) |",
        f"| held-out split | `{h['split']}`, seed {h['seed']}, {h['videos']} videos, {main['expressions']} expressions, "
        f"{d['frames']} frames of {d['size'][0]}x{d['size'][1]} |",
        f"| training data | {d['videos']} videos ({d['expressions']} expressions), seeds {d['seeds'][0]}-{d['seeds'][-1]}; "
        f"written and encoded in {d['seconds']:.0f} s |",
        f"| flow steps x batch | {t['steps']} x {t['batch_size']} = {t['samples']} samples; lr {t['lr']:g}, {t['schedule']}; "
        f"{t['seconds_per_step'] * 1000:.1f} ms per step; stopped by the {t['stopped_by']} |",
        f"| model | {m['megabytes']:.1f} MB; DiT {m['dit']['num_layers']} layers x {m['dit']['num_attention_heads']} heads of "
        f"{m['dit']['attention_head_dim']}, DVI {'on' if m['dvi'] else 'off'}; parameters: "
        + ", ".join(f"{k} {v}" for k, v in m["parameters"].items()) + " |",
        "| times (s) | " + ", ".join(f"{k} {v:.0f}" for k, v in numbers["timings"].items()) + " |",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from flowrvs.data.synth.generate import DEFAULT_FRAMES, DEFAULT_SIZE

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder: model/, numbers.json, numbers.md, eval/, logs/")
    p.add_argument("--work", type=Path, default=None, help="data, caches and runs (default OUT/work)")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for everything this script does")
    p.add_argument("--reserve", type=float, default=100.0, help="seconds of the budget kept for tuning and evaluation")
    p.add_argument("--data-share", type=float, default=0.4, help="training shards not written within this share of the budget are dropped")
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of every flowrvs train call")
    p.add_argument("--decoder", default="tiny-synthetic", help="model folder whose VAE, text encoder and tokenizer are reused")
    p.add_argument("--heads", type=int, default=6, help="DiT attention heads (width = heads x the decoder's head dim)")
    p.add_argument("--ffn-dim", type=int, default=768)
    p.add_argument("--seed", type=int, default=0, help="seed of the random DiT")
    p.add_argument("--videos", type=int, default=24000, help="training videos")
    p.add_argument("--shard-videos", type=int, default=1500, help="videos per training shard (one seed each)")
    p.add_argument("--first-seed", type=int, default=100, help="seed of the first training shard")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per video, all splits")
    p.add_argument("--size", type=int, nargs=2, default=list(DEFAULT_SIZE), metavar=("H", "W"), help="frame size, all splits")
    p.add_argument("--heldout-seed", type=int, default=1)
    p.add_argument("--heldout-videos", type=int, default=50)
    p.add_argument("--tune-seed", type=int, default=3)
    p.add_argument("--tune-videos", type=int, default=20)
    p.add_argument("--first-chunk", type=int, default=300, help="steps of the timed first chunk")
    p.add_argument("--max-steps", type=int, default=100000, help="never train past this step")
    p.add_argument("--eval-steps", type=int, nargs="+", default=[1, 4], help="Euler steps of the held-out evaluations (the first is the headline)")
    p.add_argument("--threshold-zero", action=argparse.BooleanOptionalAction, default=True,
                   help="also evaluate the first --eval-steps at mask threshold 0")
    p.add_argument("--device", default=None, help="cpu or cuda for training and evaluation (default: cuda when available)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="synth processes")
    p.add_argument("--cache-jobs", type=int, default=min(8, os.cpu_count() or 1), help="latent-cache builders at a time")
    p.add_argument("--tune-threads", type=int, default=min(8, os.cpu_count() or 1), help="CPU threads of tuning and evaluation")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between looks at a training chunk's log")
    args = p.parse_args(argv)
    for name in ("budget", "videos", "shard_videos", "first_chunk", "max_steps", "workers", "cache_jobs"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.reserve >= args.budget:
        p.error("--reserve must be below --budget")
    return args


def main(argv: list[str] | None = None, clock: Clock = time.monotonic) -> int:
    """Run everything; ``clock`` (seconds) decides when to stop (tests pass one that counts steps)."""
    args = parse_args(argv)
    start = clock()
    deadline = start + args.budget
    out = args.out.resolve()
    work = (args.work or out / "work").resolve()
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(clock() - since, 1)
        return clock()

    t = clock()
    init = work / "init"
    dit = build_init(args.decoder, init, args.heads, args.ffn_dim, args.seed)
    t = lap("init", t)
    log(f"start model {init}: DiT {dit['num_layers']} layers x {dit['num_attention_heads']} heads, no DVI")

    shards, data = make_data(args, init, work, clock, start + args.budget * args.data_share)
    t = lap("data", t)
    log(f"data: {data['videos']} training videos ({data['expressions']} expressions) in {data['seconds']:.0f} s")

    run_model, training = train(args, init, work, shards, clock, deadline)
    t = lap("train", t)
    model = out / "model"
    from flowrvs.io.atomic import atomic_dir

    with atomic_dir(model) as tmp:
        tmp.rmdir()
        shutil.copytree(run_model, tmp)

    # the threshold (CPU) alongside the threshold-0 evaluation; then the others at the tuned threshold
    with ThreadPoolExecutor(2) as pool:
        tuned = pool.submit(tune_threshold, args, model, work, out)
        zero = pool.submit(evaluate, args, model, work, out, args.eval_steps[0], 0.0) if args.threshold_zero else None
        tuning = tuned.result()
        at_zero = zero.result() if zero else None
    t = lap("tune", t)
    with ThreadPoolExecutor(len(args.eval_steps)) as pool:
        evaluations = list(pool.map(lambda n: evaluate(args, model, work, out, n, None), args.eval_steps))
    lap("evaluate", t)
    evaluations += [at_zero] if at_zero else []

    numbers = {
        "command": "python benchmarks/train_demo.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d"),
        "budget_seconds": args.budget,
        "seconds": round(clock() - start, 1),
        "timings": timings,
        "machine": machine(),
        "model": model_summary(model),
        "data": data,
        "training": training,
        "tuning": tuning,
        "heldout": {"split": "valid_u", "seed": args.heldout_seed, "videos": args.heldout_videos,
                    "threshold": tuning["threshold"], "evaluations": evaluations, "J&F": evaluations[0]["J&F"]},
    }
    if numbers["model"]["megabytes"] > 20:
        log(f"warning: the model folder is {numbers['model']['megabytes']} MB, more than the 20 MB a shipped model may take")
    from flowrvs.io.atomic import atomic_path, write_json

    write_json(out / "numbers.json", numbers, indent=2)
    with atomic_path(out / "numbers.md") as tmp:
        tmp.write_text(markdown(numbers))
    log(f"held-out J&F {numbers['heldout']['J&F']:.3f} after {training['steps']} steps; wrote {out}/numbers.json")
    return 0


if __name__ == "__main__":
    from flowrvs.errors import FlowRVSError

    try:
        sys.exit(main())
    except FlowRVSError as err:  # a bad --decoder, say: one line, as the CLI does
        print(f"train_demo: error: {err}", file=sys.stderr)
        sys.exit(2)

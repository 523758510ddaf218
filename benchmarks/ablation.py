"""The paper's ablation at small scale, on the synthetic benchmark (run by hand, not a test).

Trains the flow stage of the same small model under each variant and seed, starting from one
shared mask-decoder model (its VAE is frozen in the flow stage, so every variant sees the
same latents; the text encoder trains with the DiT as the config says). Each run is then
evaluated on a held-out split at 1 and 4 Euler steps and diagnosed (``diagnose.py``: its
one-step error at t = 1 and how much its output depends on the sentence). Writes
``OUT/ablation.json`` and a markdown table ``OUT/ablation.md``.

    flowrvs synth data/synth --videos 1800 --seed 0                        # train
    flowrvs synth data/synth --videos 50 --seed 1 --split-name valid_u    # held out
    python benchmarks/ablation.py --data data/synth --decoder runs/tiny/dec/model --out runs/ablation \
        --seeds 0 1 --steps 4000 --size 48 80 --eval-videos 50    # the defaults

Jobs run ``--jobs`` at a time, each on one CPU thread; a rerun skips what is already done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flowrvs.io.atomic import atomic_path, write_json

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tiny-synthetic.yaml"

#: name -> (flow-stage overrides, what it tests)
VARIANTS: dict[str, tuple[list[str], str]] = {
    "flowrvs": ([], "the config's recipe: BBS p=0.75, SPA 0.2, DVI, video->mask velocity"),
    "uniform-t": (["flow.bbs_p=0"], "t ~ U(0, 1], no boundary bias"),
    "bbs-0.25": (["flow.bbs_p=0.25"], "BBS p=0.25"),
    "bbs-0.5": (["flow.bbs_p=0.5"], "BBS p=0.5 (the paper's)"),
    "no-spa": (["flow.spa_strength=0"], "start point = posterior mean"),
    "full-spa": (["flow.spa_strength=1"], "start point = a full posterior sample (the paper's SPA)"),
    "no-dvi": (["model.dvi=false"], "no direct video injection"),
    "noise-to-mask": (["model.source=noise"], "flow from Gaussian noise (video through DVI only)"),
    "direct-mask": (["model.prediction=mask", "flow.bbs_p=1"], "predict the mask latent in one step at t=1"),
    "sentences-4": (["data.sentences_per_video=4"], "each batch: 2 videos x 4 of their sentences (not in the paper)"),
}
EXTRA = ("full-spa", "sentences-4")
"""Variants run only on request (``--variants``): not in the issue's list."""
EVAL_STEPS = (1, 4)


def run(cmd: list[str], log: Path, threads: int = 1) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, env=env)


def train_command(args, run_dir: Path, seed: int, steps: int, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "flowrvs.apps.cli", "train", str(CONFIG), "stage=flow", f"model.init={args.decoder}",
            f"output_dir={run_dir}", f"seed={seed}", f"optim.steps={steps}", f"optim.batch_size={args.batch_size}",
            *([f"optim.lr={args.lr}"] if args.lr else []), f"data.datasets.0.root={args.data}",
            f"data.size=[{args.size[0]},{args.size[1]}]", "data.cache_latents=true", f"data.cache_dir={args.out / 'cache'}",
            "data.cache_seed=0", "data.hflip_p=0", "progress=false", *args.base, "device=cpu", *overrides]


def build_cache(args) -> None:
    """One 1-step run on every thread writes the latent cache that all jobs then share."""
    warmup = args.out / "runs" / "cache-warmup"
    if not (warmup / "model" / "model_index.json").is_file():
        run(train_command(args, warmup, 0, 1, []), args.out / "logs" / "cache.log", threads=os.cpu_count() or 1)


def train_seconds(run_dir: Path) -> float | None:
    """The run's training time, from the last ``seconds=`` of its log (None if absent)."""
    log = run_dir / "train.log"
    found = re.findall(r"seconds=([0-9.]+)", log.read_text()) if log.is_file() else []
    return float(found[-1]) if found else None


def job(args, variant: str, seed: int) -> dict:
    """Train (unless its model exists), evaluate and diagnose one run; each step is skipped once done."""
    overrides, _ = VARIANTS[variant]
    name = f"{variant}-s{seed}"
    run_dir = args.out / "runs" / name
    log = args.out / "logs" / f"{name}.log"
    model = run_dir / "model"
    if not (model / "model_index.json").is_file():
        run(train_command(args, run_dir, seed, args.steps, overrides), log)
    scores = {}
    for steps in EVAL_STEPS:
        out = args.out / "eval" / f"{name}-n{steps}"
        if not (out / "metrics.json").is_file():
            run([sys.executable, "-m", "flowrvs.apps.cli", "evaluate", "--dataset", "mevis", "--root", str(args.data),
                 "--split", args.split, "--limit", str(args.eval_videos), "--model", str(model),
                 "--out", str(out), "--steps", str(steps), "--device", "cpu", "--batch-size", "8"], log)
        metrics = json.loads((out / "metrics.json").read_text())
        scores[steps] = {k: metrics[k] for k in ("J", "F", "J&F")}
    diagnosis = args.out / "eval" / f"{name}-diagnose.json"
    if not diagnosis.is_file():
        run([sys.executable, str(REPO / "benchmarks" / "diagnose.py"), "--model", str(model), "--root", str(args.data),
             "--split", args.split, "--json", str(diagnosis)], log)
    return {"variant": variant, "seed": seed, "scores": scores, "diagnose": json.loads(diagnosis.read_text()),
            "train_seconds": train_seconds(run_dir)}


def spread(values: list[float], scale: float = 100, digits: int = 1) -> str:
    mean = statistics.mean(values)
    half = (max(values) - min(values)) / 2
    return f"{scale * mean:.{digits}f} ± {scale * half:.{digits}f}"


def table(results: list[dict], seeds: list[int]) -> str:
    lines = [
        "| variant | what changes | J&F 1 step | J&F 4 steps | t=1 error | text dependence |",
        "|---|---|---|---|---|---|",
    ]
    for variant, (_, what) in VARIANTS.items():
        rows = [r for r in results if r["variant"] == variant]
        if not rows:
            continue
        cells = [spread([r["scores"][n]["J&F"] for r in rows]) for n in EVAL_STEPS]
        error = spread([r["diagnose"]["t1_error"] / r["diagnose"]["mask_latent_ms"] for r in rows], 1, 3)
        text = spread([r["diagnose"]["text_dependence"] / r["diagnose"]["text_dependence_true"] for r in rows], 1, 3)
        lines.append(f"| {variant} | {what} | {cells[0]} | {cells[1]} | {error} | {text} |")
    lines.append("")
    lines.append(f"J&F in %, mean ± half-range over seeds {', '.join(map(str, seeds))}. t=1 error: mean square of "
                 "(one-step mask latent - true one) over the true one's mean square; text dependence: spread of a "
                 "video's one-step mask latents across its sentences over the same for the true latents "
                 "(`benchmarks/diagnose.py`, first 40 held-out expressions).")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="synthetic root with train and held-out splits")
    parser.add_argument("--split", default="valid_u", help="held-out split")
    parser.add_argument("--decoder", type=Path, required=True, help="mask-decoder stage model folder (shared start)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v not in EXTRA], choices=list(VARIANTS),
                        help=f"default: all but {', '.join(EXTRA)} (the issue's list)")
    parser.add_argument("--steps", type=int, default=4000, help="flow-stage training steps per run")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="default: the config's")
    parser.add_argument("--size", type=int, nargs=2, default=[48, 80], help="working size box")
    parser.add_argument("--eval-videos", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--base", nargs="*", default=[], help="overrides of every run")
    args = parser.parse_args()
    for sub in ("runs", "eval", "logs", "cache"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    build_cache(args)  # before the parallel jobs, which would race to write it
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda vs: job(args, *vs), jobs))
    results.sort(key=lambda r: (list(VARIANTS).index(r["variant"]), r["seed"]))
    summary = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.perf_counter() - started, 1),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
    }
    write_json(args.out / "ablation.json", summary, indent=2)
    with atomic_path(args.out / "ablation.md") as tmp:
        tmp.write_text(table(results, args.seeds) + "\n")
    print(table(results, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

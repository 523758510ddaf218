"""This machine's measured peak for each kind of kernel FlowRVS inference spends its time in.

    python benchmarks/kernel_peak.py                       # the 1.3B DiT's and Wan VAE's shapes at 240x416
    python benchmarks/kernel_peak.py --json peaks.json
    python benchmarks/kernel_peak.py --preset tiny --size 32x48 --repeats 1   # seconds

Kinds (as ``benchmarks/cost.py``'s ``kind_of`` sorts the operators a part runs):

- ``gemm``: ``torch.nn.functional.linear`` with bias at the DiT's shapes: the video tokens
  ``M = T' * h/2 * w/2`` of a ``--frames`` x ``--size`` clip against the attention projections
  (``dim x dim``), the FFN (``dim x ffn_dim`` and back) and the text projection
  (``text_len x text_dim``).
- ``conv``: the Wan VAE's 3x3x3 causal convolution at each resolution level of the clip (a chunk
  of 4 frames plus 2 cached, as the VAE runs it), channels ``base_dim * dim_mult``; contiguous
  (NCDHW) and channels-last (NDHWC) tensors.
- ``attention``: ``scaled_dot_product_attention`` at the DiT's self-attention (video tokens) and
  cross-attention (``text_len`` keys) shapes.

Each shape runs once to warm up, then ``--repeats`` times; its FLOP/s is ``flops / best time``
(FLOPs: ``2*M*K*N`` a GEMM, ``2*C_in*C_out*27*T*H*W`` a convolution, ``4*heads*L_q*L_k*head_dim``
attention), its sustained FLOP/s ``flops / median time``. A kind's peak (per dtype) is its best
shape: the most the machine's kernel did at the shapes the parts really run (``peaks``: best
times; ``sustained``: median times). On a shared VM single calls now and then run up to twice as
fast as the same kernel sustains for seconds (2026-12-03, 2-core Xeon): a part that runs for
seconds is better set against ``sustained``. ``bfloat16`` and ``float32`` are measured; the
threads are torch's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from flowrvs.presets import preset_config

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
KINDS = ("gemm", "conv", "attention")


@dataclass
class KernelRun:
    """One shape of one kind: ``flops`` per call, ``seconds`` (best of the repeats) and
    ``median_seconds``, ``layout``."""

    kind: str
    dtype: str
    shape: str
    layout: str
    flops: int
    seconds: float
    median_seconds: float

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.seconds

    @property
    def sustained_flops_per_s(self) -> float:
        return self.flops / self.median_seconds


def timed(call: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """``(best, median)`` seconds of ``repeats`` runs of ``call`` after one warm-up run; ``sync``
    waits for the device (``torch.cuda.synchronize`` on a GPU) before each clock reading."""
    call()
    sync()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        seconds.append(time.perf_counter() - start)
    return min(seconds), statistics.median(seconds)


def dit_shapes(preset: str, frames: int, size: tuple[int, int]) -> dict:
    """Token counts and widths of the preset's DiT on one clip (latent ``/8`` in space, ``/4`` in time, 2x2 patches)."""
    cfg = preset_config(preset, "transformer")
    text_len = int(preset_config(preset, "pipeline")["text_len"])
    tokens = ((frames - 1) // 4 + 1) * (size[0] // 8 // cfg["patch_size"][1]) * (size[1] // 8 // cfg["patch_size"][2])
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    return {"tokens": tokens, "dim": dim, "ffn": cfg["ffn_dim"], "heads": cfg["num_attention_heads"],
            "head_dim": cfg["attention_head_dim"], "text_len": text_len, "text_dim": cfg["text_dim"]}


def gemm_runs(shapes: dict, dtype: torch.dtype, repeats: int, device: torch.device) -> list[KernelRun]:
    m, d = shapes["tokens"], shapes["dim"]
    cases = [(m, d, d), (m, d, shapes["ffn"]), (m, shapes["ffn"], d), (shapes["text_len"], shapes["text_dim"], d)]
    runs = []
    for rows, k, n in cases:
        x, w, b = (torch.randn(*shape, dtype=dtype, device=device) for shape in ((1, rows, k), (n, k), (n,)))
        seconds = timed(lambda: F.linear(x, w, b), repeats, _sync(device))
        runs.append(KernelRun("gemm", str(dtype).split(".")[-1], f"{rows}x{k} @ {k}x{n}", "row-major", 2 * rows * k * n, *seconds))
    return runs


def vae_levels(preset: str, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """``(channels, H, W)`` of each resolution level of the preset's VAE at ``size``."""
    cfg = preset_config(preset, "vae")
    dims = [cfg["base_dim"] * m for m in cfg["dim_mult"]]
    return [(c, size[0] // 2 ** i, size[1] // 2 ** i) for i, c in enumerate(dims)]


def conv_runs(preset: str, size: tuple[int, int], dtype: torch.dtype, repeats: int, device: torch.device) -> list[KernelRun]:
    runs = []
    for c, h, w in vae_levels(preset, size):
        x = torch.randn(1, c, 6, h, w, dtype=dtype, device=device)  # a chunk of 4 frames and the 2 cached before it
        weight = torch.randn(c, c, 3, 3, 3, dtype=dtype, device=device)
        flops = 2 * c * c * 27 * 4 * h * w
        for layout, fmt in (("NCDHW", torch.contiguous_format), ("NDHWC", torch.channels_last_3d)):
            xx, ww = x.contiguous(memory_format=fmt), weight.contiguous(memory_format=fmt)
            seconds = timed(lambda: F.conv3d(xx, ww, padding=(0, 1, 1)), repeats, _sync(device))
            runs.append(KernelRun("conv", str(dtype).split(".")[-1], f"{c}->{c} 3x3x3 on 4x{h}x{w}", layout, flops, *seconds))
    return runs


def attention_runs(shapes: dict, dtype: torch.dtype, repeats: int, device: torch.device) -> list[KernelRun]:
    heads, d, lq = shapes["heads"], shapes["head_dim"], shapes["tokens"]
    runs = []
    for name, lk in (("self", lq), ("cross", shapes["text_len"])):
        q = torch.randn(1, heads, lq, d, dtype=dtype, device=device)
        k, v = (torch.randn(1, heads, lk, d, dtype=dtype, device=device) for _ in range(2))
        seconds = timed(lambda: F.scaled_dot_product_attention(q, k, v), repeats, _sync(device))
        runs.append(KernelRun("attention", str(dtype).split(".")[-1], f"{name}: {heads} heads, {lq}x{lk}x{d}", "BHLD",
                              4 * heads * lq * lk * d, *seconds))
    return runs


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def measure_peaks(preset: str, frames: int, size: tuple[int, int], dtypes: list[str], repeats: int,
                  kinds: tuple[str, ...] = KINDS, device: str | torch.device = "cpu") -> dict:
    """Every run and each ``(kind, dtype)``'s peak FLOP/s: ``{"runs": [...], "peaks": {dtype: {kind:
    flops_per_s}}, "sustained": {dtype: {kind: sustained_flops_per_s}}}``.

    ``kinds``: measure only these (``benchmarks/fullsize.py`` measures a part's own kinds right after it).
    ``device``: where the kernels run (a GPU's peaks for ``fullsize.py --device cuda --peaks``)."""
    device = torch.device(device)
    shapes = dit_shapes(preset, frames, size)
    runs: list[KernelRun] = []
    with torch.no_grad():
        for name in dtypes:
            dtype = DTYPES[name]
            measure = {"gemm": lambda: gemm_runs(shapes, dtype, repeats, device),
                       "conv": lambda: conv_runs(preset, size, dtype, repeats, device),
                       "attention": lambda: attention_runs(shapes, dtype, repeats, device)}
            for kind in kinds:
                runs += measure[kind]()
    peaks: dict[str, dict[str, float]] = {}
    sustained: dict[str, dict[str, float]] = {}
    for run in runs:
        for table, value in ((peaks, run.flops_per_s), (sustained, run.sustained_flops_per_s)):
            best = table.setdefault(run.dtype, {})
            best[run.kind] = max(best.get(run.kind, 0.0), value)
    return {"preset": preset, "frames": frames, "size": list(size), "device": str(device), "threads": torch.get_num_threads(),
            "runs": [{**asdict(r), "flops_per_s": r.flops_per_s, "sustained_flops_per_s": r.sustained_flops_per_s}
                     for r in runs], "peaks": peaks, "sustained": sustained}


def markdown(result: dict) -> str:
    lines = ["| kind | dtype | shape | layout | GFLOP | best s | GFLOP/s | median s | sustained GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['kind']} | {r['dtype']} | {r['shape']} | {r['layout']} | {r['flops'] / 1e9:,.3f} | "
                     f"{r['seconds']:.4f} | {r['flops_per_s'] / 1e9:,.0f} | {r['median_seconds']:.4f} | "
                     f"{r['sustained_flops_per_s'] / 1e9:,.0f} |")
    dtypes = list(result["peaks"])
    lines += ["", "| peak GFLOP/s (sustained) | " + " | ".join(dtypes) + " |", "|---|" + "---|" * len(dtypes)]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(f"{result['peaks'][d].get(kind, 0) / 1e9:,.0f} "
                                                 f"({result['sustained'][d].get(kind, 0) / 1e9:,.0f})" for d in dtypes) + " |")
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and int(h) % 16 == 0 == int(w) % 16 and int(h) > 0 and int(w) > 0):
        raise argparse.ArgumentTypeError(f"size must be HxW in positive multiples of 16, got {text!r}")
    return int(h), int(w)


def main(argv: list[str] | None = None) -> int:
    from flowrvs.runtime.machine import describe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan2.1-1.3b")
    parser.add_argument("--frames", type=int, default=17, help="clip frames (4k+1)")
    parser.add_argument("--size", type=parse_size, default=(240, 416), help="HxW working size")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU's peaks")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    dtypes = [d for d in args.dtypes.split(",") if d]
    if not dtypes or any(d not in DTYPES for d in dtypes):
        parser.error(f"--dtypes takes {', '.join(DTYPES)}")
    if args.frames < 1 or (args.frames - 1) % 4 or args.repeats < 1:
        parser.error("--frames must be 4k+1 and --repeats positive")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device: {args.device!r} is not a device (cpu, cuda, cuda:N)")
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        parser.error(f"--device {args.device}: not a CPU, or no GPU is visible to torch")
    result = measure_peaks(args.preset, args.frames, args.size, dtypes, args.repeats, device=device)
    on_gpu = device.type == "cuda"
    result["machine"] = torch.cuda.get_device_name(device) if on_gpu else describe()
    result["torch"] = torch.__version__
    print(f"{result['machine']}, torch {torch.__version__}, " + ("GPU" if on_gpu else f"{result['threads']} threads") + "\n")
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every convolution shape a VAE part really runs: its seconds inside the part, and the same
convolution timed alone right after.

    python benchmarks/conv_shapes.py --folder MODEL --part vae-encode        # 17 frames into 240x416
    python benchmarks/conv_shapes.py --folder MODEL --part vae-decode --json shapes.json
    python benchmarks/conv_shapes.py --preset tiny --folder /tmp/tiny --frames 5 --size 32x64   # seconds

Loads the VAE as ``benchmarks/fullsize.py`` does (the loader's precision, layout and lean layers;
the folder is built by it when missing), runs the part once with ``torch.nn.functional.conv3d``
and ``conv2d`` wrapped to time each call and record its input and weight shapes, stride, padding and memory
layout, then times each distinct convolution again alone (``--repeats`` calls after a warm-up;
best and median) on tensors of the same shapes and layout. Per shape: calls, seconds in the part,
GFLOP (``2 * out.numel() * C_in/groups * kT*kH*kW``), GFLOP/s in the part and alone. A shape whose
rate in the part is far below its rate alone loses time to its surroundings (cache, memory
traffic); a shape slow alone is slow in oneDNN at that shape.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

BENCHMARKS = Path(__file__).resolve().parent


@dataclass
class ConvShape:
    """One distinct convolution of a part: its calls' seconds in the part and its rate alone."""

    input: tuple[int, ...]
    weight: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    channels_last: bool
    flops: int  # per call
    dtype: str
    seconds: list[float] = field(default_factory=list)
    alone_best_s: float = 0.0
    alone_median_s: float = 0.0

    @property
    def rate_in_part(self) -> float:
        return self.flops * len(self.seconds) / sum(self.seconds)

    @property
    def rate_alone(self) -> float:
        return self.flops / self.alone_median_s


def _fullsize():
    spec = importlib.util.spec_from_file_location("flowrvs_bench_fullsize", BENCHMARKS / "fullsize.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CONV = {4: "conv2d", 5: "conv3d"}  # input dims -> the functional that runs it
LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def _spatial(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * (dims - 2)


def _channels_last(x: torch.Tensor) -> bool:
    return x.is_contiguous(memory_format=LAST[x.dim()]) and not x.is_contiguous()


def record_convolutions(call) -> dict[tuple, ConvShape]:
    """Run ``call`` with every ``F.conv2d`` / ``F.conv3d`` timed; the distinct convolutions it ran
    (the Wan VAE's spatial resampling runs 2-d convolutions frame by frame)."""
    shapes: dict[tuple, ConvShape] = {}
    originals = {name: getattr(F, name) for name in CONV.values()}

    def timed(original):
        def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
            start = time.perf_counter()
            out = original(x, weight, bias, stride, padding, dilation, groups)
            seconds = time.perf_counter() - start
            key = (tuple(x.shape), tuple(weight.shape), _spatial(stride, x.dim()), _spatial(padding, x.dim()),
                   _channels_last(x), groups)
            if key not in shapes:
                flops = 2 * out.numel() * weight.shape[1] * weight[0, 0].numel()
                shapes[key] = ConvShape(*key[:5], flops, str(x.dtype).removeprefix("torch."))
            shapes[key].seconds.append(seconds)
            return out
        return conv

    for name, original in originals.items():
        setattr(F, name, timed(original))
    try:
        with torch.no_grad():
            call()
    finally:
        for name, original in originals.items():
            setattr(F, name, original)
    return shapes


def time_alone(shape: ConvShape, repeats: int) -> None:
    """Time ``shape``'s convolution alone on random tensors of its shapes and layout."""
    dtype = getattr(torch, shape.dtype)
    fmt = LAST[len(shape.input)] if shape.channels_last else torch.contiguous_format
    x = torch.randn(shape.input, dtype=dtype).contiguous(memory_format=fmt)
    weight = torch.randn(shape.weight, dtype=dtype).contiguous(memory_format=fmt)
    bias = torch.randn(shape.weight[0], dtype=dtype)
    conv = getattr(F, CONV[len(shape.input)])
    with torch.no_grad():
        conv(x, weight, bias, shape.stride, shape.padding)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x, weight, bias, shape.stride, shape.padding)
            seconds.append(time.perf_counter() - start)
    shape.alone_best_s, shape.alone_median_s = min(seconds), statistics.median(seconds)


def markdown(shapes: list[ConvShape]) -> str:
    total = sum(sum(s.seconds) for s in shapes)
    lines = ["| input (N, C, [T,] H, W) | weight | stride | layout | calls | s in the part | share | GFLOP | "
             "GFLOP/s in the part | GFLOP/s alone (median) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in shapes:
        lines.append(f"| {'x'.join(map(str, s.input))} | {'x'.join(map(str, s.weight))} | {'x'.join(map(str, s.stride))} | "
                     f"{'NDHWC' if s.channels_last else 'NCDHW'} | {len(s.seconds)} | {sum(s.seconds):.2f} | "
                     f"{100 * sum(s.seconds) / total:.0f} % | {s.flops * len(s.seconds) / 1e9:,.1f} | "
                     f"{s.rate_in_part / 1e9:,.0f} | {s.rate_alone / 1e9:,.0f} |")
    flops = sum(s.flops * len(s.seconds) for s in shapes)
    alone = sum(len(s.seconds) * s.alone_median_s for s in shapes)
    lines.append(f"\nall convolutions: {total:.1f} s in the part ({flops / total / 1e9:,.0f} GFLOP/s); "
                 f"the same calls alone {alone:.1f} s ({flops / alone / 1e9:,.0f} GFLOP/s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from flowrvs.runtime.machine import describe
    from flowrvs.runtime.precision import choose_precision

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="model folder (built by fullsize.py when missing)")
    parser.add_argument("--preset", default="wan2.1-1.3b", help="model shape, when the folder is built")
    parser.add_argument("--part", choices=["vae-encode", "vae-decode"], default="vae-encode")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="240x416")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    fullsize = _fullsize()
    size = fullsize.parse_size(args.size)
    if (args.frames - 1) % 4 or args.repeats < 1:
        parser.error("--frames must be 4k+1 and --repeats positive")
    if not (args.folder / "model_index.json").is_file():
        fullsize.build_model_folder(args.preset, args.folder)
    plan = choose_precision("cpu", args.dtype)
    call = fullsize._load_vae(args.folder, plan, plan.device, args.part == "vae-encode", args.frames, size,
                              torch.Generator().manual_seed(0))
    start = time.perf_counter()
    shapes = sorted(record_convolutions(call).values(), key=lambda s: -sum(s.seconds))
    part_s = time.perf_counter() - start
    for shape in shapes:
        time_alone(shape, args.repeats)
    header = (f"{describe()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"{args.part} of {args.frames}x{args.size} in {plan.vae.compute}: {part_s:.1f} s")
    print(header + "\n\n" + markdown(shapes))
    if args.json:
        rows = [{**asdict(s), "rate_in_part": s.rate_in_part, "rate_alone": s.rate_alone} for s in shapes]
        args.json.write_text(json.dumps({"header": header, "part_s": part_s, "shapes": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

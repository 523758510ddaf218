"""Flow-stage training speed and peak memory per process at full size (run by hand on GPUs).

    torchrun --nproc_per_node 8 benchmarks/train_speed.py --preset wan2.1-1.3b --strategy ddp
    torchrun --nproc_per_node 8 benchmarks/train_speed.py --preset wan2.1-14b --strategy fsdp
    python benchmarks/train_speed.py --preset tiny --frames 5 --size 32x48 --device cpu --dtype float32 --steps 2

One training step as ``flowrvs train`` runs it with pre-encoded inputs (``flowrvs cache``:
video posterior, mask latent and umT5 embeddings of ``--text-tokens`` real tokens, random here,
since speed does not depend on values): the DiT of the preset with random weights, wrapped by
DDP or sharded by FSDP2 (``flowrvs.runtime.distributed.wrap``), AdamW, EMA, bf16 autocast,
gradient checkpointing unless ``--no-checkpointing``, ``--batch`` samples per process. Prints
and writes (``--json``) samples/s of the whole job and per process, seconds per step (median of
the timed steps after ``--warmup``) and peak memory per process (cuda: max allocated; cpu:
peak RSS), with the machine, torch version, command and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import sys
import time
from types import SimpleNamespace

import torch


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 480x832, got {text!r}") from None
    if h % 16 or w % 16 or h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size sides must be positive multiples of 16, got {text!r}")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="wan2.1-1.3b")
    p.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp")
    p.add_argument("--frames", type=int, default=17, help="clip frames (4k+1)")
    p.add_argument("--size", type=parse_size, default=(480, 832), help="HxW (multiples of 16)")
    p.add_argument("--batch", type=int, default=1, help="samples per process per step")
    p.add_argument("--text-tokens", type=int, default=20, help="real tokens per sentence (padded to text_len)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="weights")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast")
    p.add_argument("--no-checkpointing", action="store_true", help="no gradient checkpointing")
    p.add_argument("--no-dvi", action="store_true", help="a 16-channel DiT (the 2026 public release)")
    p.add_argument("--device", default=None, help="default: cuda when available")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file (rank 0)")
    return p


def check_args(args) -> None:
    if args.frames < 1 or (args.frames - 1) % 4:
        raise SystemExit(f"train_speed: --frames must be 4k+1, got {args.frames}")
    for name in ("batch", "steps", "text_tokens"):
        if getattr(args, name) < 1:
            raise SystemExit(f"train_speed: --{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        raise SystemExit("train_speed: --warmup must be >= 0")


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> dict:
    from flowrvs.runtime.machine import describe
    from flowrvs.presets import PRESETS, build_transformer, preset_config
    from flowrvs.training.config import config_from_dict
    from flowrvs.runtime import distributed
    from flowrvs.training.ema import EMA
    from flowrvs.training.trainer import sample_generators
    from flowrvs.training.stages import FlowStage

    args = build_parser().parse_args(argv)
    check_args(args)
    if args.preset not in PRESETS:
        raise SystemExit(f"train_speed: --preset must be one of {', '.join(PRESETS)}")
    process = distributed.from_environment()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    device = distributed.process_device(device, process)
    owns = distributed.setup(process, device)
    dtype = getattr(torch, args.dtype)

    config = config_from_dict({"device": device.type, "dtype": args.dtype, "amp": None if args.no_amp else "bfloat16",
                               "model": {"preset": args.preset, "dvi": not args.no_dvi,
                                         "gradient_checkpointing": not args.no_checkpointing},
                               "data": {"num_frames": args.frames, "size": list(args.size)},
                               "optim": {"batch_size": args.batch * process.world_size},
                               "dist": {"strategy": args.strategy}})
    torch.manual_seed(0)
    transformer = build_transformer(args.preset, dvi=not args.no_dvi, device=device).to(dtype)
    text_len, text_dim = 256, preset_config(args.preset, "transformer")["text_dim"]
    pipe = SimpleNamespace(transformer=transformer, vae=None, text_encoder=None,
                           config=SimpleNamespace(source="video", prediction="velocity", text_len=text_len,
                                                  mask_latent_normalized=False))
    stage = FlowStage(config, pipe)
    model = distributed.wrap(stage, args.strategy, process, device)
    named = stage.named_trainable()
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(params, lr=5e-5, weight_decay=5e-4)
    ema = EMA(named, 0.9999)

    t_lat, (h, w) = (args.frames - 1) // 4 + 1, (args.size[0] // 8, args.size[1] // 8)
    shape = (args.batch, 16, t_lat, h, w)
    text = torch.zeros(args.batch, text_len, text_dim, dtype=dtype, device=device)
    text[:, : args.text_tokens] = torch.randn(args.batch, args.text_tokens, text_dim, device=device).to(dtype)
    batch = {"z_video_mean": torch.randn(shape, device=device, dtype=dtype),
             "z_video_std": torch.rand(shape, device=device, dtype=dtype) * 0.1,
             "z_mask": torch.randn(shape, device=device, dtype=dtype), "text_embeds": text, "prompts": [""] * args.batch}
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=not args.no_amp)
    indices = [process.rank * args.batch + i for i in range(args.batch)]
    times = []
    for step in range(1, args.warmup + args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss = model(batch, sample_generators(0, step, indices, device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        ema.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > args.warmup:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    memory = torch.tensor([peak_memory_gib(device)], dtype=torch.float64, device=device)
    if process.distributed:
        torch.distributed.all_reduce(memory, op=torch.distributed.ReduceOp.MAX)
    result = {
        "preset": args.preset, "strategy": args.strategy if process.distributed else "none",
        "processes": process.world_size, "frames": args.frames, "size": list(args.size), "batch_per_process": args.batch,
        "dtype": args.dtype, "amp": not args.no_amp, "gradient_checkpointing": not args.no_checkpointing,
        "dvi": not args.no_dvi, "trainable_parameters": sum(p.numel() for p in params),  # a DTensor counts whole
        "seconds_per_step": seconds, "samples_per_s": args.batch * process.world_size / seconds,
        "samples_per_s_per_process": args.batch / seconds, "peak_memory_gib_per_process": float(memory.item()),
        "device": describe(str(device)),
        "torch": torch.__version__, "command": " ".join([os.path.basename(sys.argv[0]), *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
    }
    if process.main:
        print(json.dumps(result, indent=2))
        if args.json:
            from flowrvs.io.atomic import write_json

            write_json(args.json, result, indent=2)
    if owns:
        distributed.teardown()
    return result


if __name__ == "__main__":
    main()

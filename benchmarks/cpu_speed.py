"""Per-stage inference time of a random-weight preset on this machine (run by hand, not a test).

    python benchmarks/cpu_speed.py --preset small --frames 9 --size 128x224 --prompts 3 --threads 1

Prints one line per stage (prompt embedding, VAE encode once per video, DiT per step and
prompt, mask decode per prompt) and the whole ``pipe(video, prompts)`` call, as the median of
``--repeats`` runs. Weights are random: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from flowrvs.apps.commands.common import parse_size
    from flowrvs.io.frames import fit_size, frames_to_tensor
    from flowrvs.presets import build_pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=["tiny", "small"])
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", default="128x224", help="video size HxW (also the working box)")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = parse_size(args.size)
    dtype = getattr(torch, args.dtype)

    pipe = build_pipeline(args.preset, size=(height, width))
    pipe.to("cpu", dtype)
    pipe.set_progress_bar_config(disable=True)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
    prompts = [f"the red circle number {i}" for i in range(args.prompts)]
    video = frames_to_tensor(frames, fit_size(height, width, (height, width))).to(dtype)

    with torch.no_grad():
        embed = timed(lambda: (pipe.prompt_encoder.clear_cache(), pipe.encode_prompt(prompts)), args.repeats)
        text = pipe.encode_prompt(prompts[:1])
        encode = timed(lambda: pipe.encode_video(video), args.repeats)
        z_video = pipe.encode_video(video)
        dit = timed(lambda: pipe.sample(z_video, text, args.steps), args.repeats)
        z_mask = pipe.sample(z_video, text, args.steps)
        decode = timed(lambda: pipe.decode(z_mask), args.repeats)
        whole = timed(lambda: (pipe.prompt_encoder.clear_cache(), pipe(frames, prompts, num_inference_steps=args.steps)),
                      args.repeats)
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"preset {args.preset}, {args.frames} frames of {height}x{width}, {args.dtype}, {args.steps} step(s)")
    print(f"embed {args.prompts} prompts        {embed:7.3f} s")
    print(f"VAE encode (once per video) {encode:7.3f} s")
    print(f"DiT, per prompt             {dit:7.3f} s")
    print(f"mask decode, per prompt     {decode:7.3f} s")
    print(f"pipe(video, {args.prompts} prompts)      {whole:7.3f} s")


if __name__ == "__main__":
    main()

"""Full-size cost of record: each part alone, then the whole `flowrvs segment`, with peak memory.

    nice python benchmarks/fullsize.py --folder /tmp/flowrvs-fullsize            # CPU, auto dtype
    python benchmarks/fullsize.py --folder /tmp/flowrvs-fullsize --device cuda
    python benchmarks/fullsize.py --preset tiny --folder /tmp/tiny --frames 5 --size 32x64   # seconds

1. Builds (once; reused when complete) a random-weight model folder of the preset laid out as a
   real one: the DiT in bf16 safetensors shards (the public DiT is bf16), the Wan VAE in
   float32, the umT5 encoder in float32 shards (the Wan release's layout; with the real weight
   maps for ``wan2.1-1.3b``), a word-level tokenizer standing in for umT5's vocabulary (which
   cannot be downloaded). Each part is built on ``meta`` and its random weights are made and
   written one shard at a time, so building needs one shard of memory, not the model.
2. Times each part alone in its own process (text encode, VAE encode, one DiT step, VAE
   decode; load and run separately) with its peak RSS (and peak GPU memory on CUDA), then
   ``flowrvs segment`` of ``--frames`` frames resized into ``--size``, one sentence, cold
   (empty embedding cache), in a subprocess.
3. Prints a markdown table headed by the machine (``lscpu`` model name or the GPU), torch
   version, date and command; ``--json`` writes the figures too.

Weights are random: time and memory do not depend on their values.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()  # before the heavy imports: a part's process start-up is measured from here

import argparse
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
PARTS = ("text", "vae-encode", "dit", "vae-decode")
EXTRA_PARTS = ("text-loaded",)  # umT5 loaded whole (stock from_pretrained) instead of streamed
SENTENCE = "the person in the red jacket walking to the left"
MODEL_PARTS = ("transformer", "vae", "text_encoder", "tokenizer")


# ---- building the model folder -------------------------------------------------------------
def _random_tensor(name: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Plausible random values: norms 1, biases 0, matrices N(0, 1/fan_in), tables N(0, 1)."""
    if len(shape) <= 1:
        if "bias" in name:
            return torch.zeros(shape)
        if "norm" in name or name.endswith("scale_shift_table"):
            return torch.ones(shape)
        return torch.randn(shape, generator=generator) * 0.02
    if "shared" in name or "embed_tokens" in name:
        return torch.randn(shape, generator=generator)
    if name.endswith("scale_shift_table"):
        return torch.randn(shape, generator=generator) / math.sqrt(shape[-1])
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=generator) / math.sqrt(fan_in)


def _shard_plan(shapes: dict[str, tuple], dtype: torch.dtype, prefix: str, weight_map: dict | None,
                max_shard_bytes: int) -> dict[str, str]:
    """Tensor name -> shard file name: the real weight map when given, else by size."""
    if weight_map is not None:
        missing, extra = set(shapes) - set(weight_map), set(weight_map) - set(shapes)
        if missing or extra:
            raise SystemExit(f"the reference weight map does not fit the model: missing {sorted(missing)[:3]}, "
                             f"extra {sorted(extra)[:3]}")
        return dict(weight_map)
    groups, size = [[]], 0
    itemsize = torch.tensor([], dtype=dtype).element_size()
    for name, shape in shapes.items():
        nbytes = math.prod(shape) * itemsize
        if groups[-1] and size + nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    ext = "safetensors"
    if len(groups) == 1:
        return {name: f"{prefix}.{ext}" for name in groups[0]}
    n = len(groups)
    return {name: f"{prefix}-{i + 1:05d}-of-{n:05d}.{ext}" for i, group in enumerate(groups) for name in group}


def write_random_shards(module: torch.nn.Module, folder: Path, dtype: torch.dtype, prefix: str,
                        weight_map: dict | None = None, max_shard_bytes: int = 2 << 30, seed: int = 0) -> int:
    """Write random weights for ``module`` (built on ``meta``) as safetensors shards; returns bytes.

    Tensors are made one shard at a time (memory: one shard). Non-persistent buffers (the Wan
    rotary tables) are not written, as in real checkpoints; tied weights are written once.
    """
    from safetensors.torch import save_file

    persistent = set(module.state_dict().keys())
    shapes = {name: tuple(p.shape) for name, p in module.named_parameters()}
    shapes.update({name: tuple(b.shape) for name, b in module.named_buffers() if name in persistent})
    plan = _shard_plan(shapes, dtype, prefix, weight_map, max_shard_bytes)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    total = 0
    for shard in sorted(set(plan.values())):
        tensors = {}
        for name in (n for n in shapes if plan[n] == shard):
            tensors[name] = _random_tensor(name, shapes[name], generator).to(dtype)
            total += tensors[name].numel() * tensors[name].element_size()
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        del tensors
    if len(set(plan.values())) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(plan.items()))}
        (folder / f"{prefix}.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


def _reference_map(preset: str, part: str) -> dict | None:
    path = FIXTURES / preset / f"{part}_index.json"
    if preset != "wan2.1-1.3b" or not path.is_file():
        return None
    return json.loads(path.read_text())["weight_map"]


def _skeleton(tmp: Path, preset: str) -> None:
    """model_index.json and any non-weight folders (scheduler) as the package writes them today,
    from a tiny pipeline, with the preset's settings."""
    from flowrvs.presets import build_pipeline, preset_config

    scratch = tmp / ".skeleton"
    build_pipeline("tiny", dvi=False).save_pretrained(scratch)
    for item in scratch.iterdir():
        if item.name not in MODEL_PARTS:
            shutil.move(str(item), str(tmp / item.name))
    shutil.rmtree(scratch)
    index = json.loads((tmp / "model_index.json").read_text())
    index.update(preset_config(preset, "pipeline"))
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def build_model_folder(preset: str, folder: Path, dvi: bool = False, text_dtype: str = "float32",
                       dit_dtype: str = "bfloat16", seed: int = 0) -> dict:
    """A complete random-weight model folder of ``preset`` (atomic); returns bytes per part."""
    from flowrvs.io.atomic import atomic_dir
    from flowrvs.presets import (
        build_text_encoder,
        build_transformer,
        build_vae,
        build_word_tokenizer,
        preset_config,
        preset_vocabulary,
    )

    sizes = {}
    with atomic_dir(folder) as tmp:
        _skeleton(tmp, preset)
        transformer = build_transformer(preset, dvi=dvi, device="meta")
        transformer.save_config(tmp / "transformer")
        sizes["transformer"] = write_random_shards(
            transformer, tmp / "transformer", getattr(torch, dit_dtype), "diffusion_pytorch_model",
            None if dvi else _reference_map(preset, "transformer"), seed=seed)
        del transformer
        torch.manual_seed(seed)
        vae = build_vae(preset)
        vae.save_pretrained(tmp / "vae")
        sizes["vae"] = sum(p.numel() * p.element_size() for p in vae.parameters())
        del vae
        words = ["<pad>", "</s>", "<unk>", *SENTENCE.split(), *preset_vocabulary("tiny")[3:]]
        tokenizer = build_word_tokenizer(list(dict.fromkeys(words)))
        tokenizer.save_pretrained(tmp / "tokenizer")
        vocab_size = max(preset_config(preset, "text_encoder")["vocab_size"], len(tokenizer))
        encoder = build_text_encoder(preset, vocab_size=vocab_size, device="meta")
        encoder.config.dtype = text_dtype
        encoder.config.save_pretrained(tmp / "text_encoder")
        sizes["text_encoder"] = write_random_shards(
            encoder, tmp / "text_encoder", getattr(torch, text_dtype), "model",
            _reference_map(preset, "text_encoder"), seed=seed + 1)
        del encoder
    return sizes


# ---- one part alone ------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_part(part: str, folder: Path, device: str, dtype: str, frames: int, size: tuple[int, int]) -> dict:
    """Load one part as the plan says, run it once on random inputs; seconds and peak memory."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from flowrvs.runtime.memory import peak_rss_bytes
    from flowrvs.runtime.precision import apply_part_precision, choose_precision

    plan = choose_precision(device, dtype)
    device = plan.device
    index = json.loads((folder / "model_index.json").read_text())
    text_len = int(index.get("text_len", 256))
    h, w = size
    latent_shape = (1, 16, (frames - 1) // 4 + 1, h // 8, w // 8)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    startup = start - _T0
    with torch.no_grad():
        if part == "text-loaded":
            from transformers import AutoTokenizer, UMT5EncoderModel

            from flowrvs.models.text import encode_sentences

            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
            encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=plan.text_encoder.storage)
            apply_part_precision(encoder, plan.text_encoder, device)
            loaded = time.perf_counter()
            out = encode_sentences([SENTENCE], lambda: (tokenizer, encoder), None, text_len, "bench", device=device)
        elif part == "text":
            from transformers import AutoTokenizer

            from flowrvs.models.text import encode_sentences, load_streamed_text_encoder

            precision = plan.text_encoder

            def load():
                tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
                return tokenizer, load_streamed_text_encoder(folder / "text_encoder", precision.compute, device)

            loaded = time.perf_counter()
            out = encode_sentences([SENTENCE], load, None, text_len, "bench", device=device)
        elif part in ("vae-encode", "vae-decode"):
            vae = AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=plan.vae.storage)
            apply_part_precision(vae, plan.vae, device)
            if part == "vae-encode":
                x = (torch.rand((1, 3, frames, h, w), generator=generator) * 2 - 1).to(device, plan.vae.compute)
            else:
                x = torch.randn(latent_shape, generator=generator).to(device, plan.vae.compute)
            _sync(device)
            loaded = time.perf_counter()
            out = vae.encode(x).latent_dist.mean if part == "vae-encode" else vae.decode(x).sample
        elif part == "dit":
            transformer = WanTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=plan.transformer.storage)
            apply_part_precision(transformer, plan.transformer, device)
            compute = plan.transformer.compute
            z = torch.randn(latent_shape, generator=generator).to(device, compute)
            text = torch.randn((1, text_len, transformer.config.text_dim), generator=generator).to(device, compute)
            hidden = torch.cat([z, z], 1) if transformer.config.in_channels == 2 * z.shape[1] else z
            _sync(device)
            loaded = time.perf_counter()
            out = transformer(hidden, timestep=torch.full((1,), 1000.0, device=device),
                              encoder_hidden_states=text, return_dict=False)[0]
        else:
            raise SystemExit(f"unknown part {part!r}; parts: {', '.join(PARTS + EXTRA_PARTS)}")
        _sync(device)
    end = time.perf_counter()
    result = {"part": part, "startup_s": startup, "load_s": loaded - start, "run_s": end - loaded, "out_shape": list(out.shape),
              "finite": bool(torch.isfinite(out.float()).all()), "peak_rss_bytes": peak_rss_bytes(),
              "plan": plan.describe()}
    if device.type == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return result


MAX_RSS_BYTES: int | None = None  # --max-rss-gb: a child above it is stopped (shared machines)


def _wait(cmd: list[str], env: dict | None = None) -> tuple[int, float, int | None, str]:
    """Run ``cmd``; returns (exit code, wall seconds, its peak RSS in bytes as sampled, stdout).

    The peak is the child's own ``VmHWM``, read every 0.2 s (``wait4``'s ``ru_maxrss`` would
    report at least this process's peak: Linux carries it over ``exec``). A child whose RSS
    passes ``MAX_RSS_BYTES`` is killed (exit code -9).
    """
    from flowrvs.runtime.memory import peak_rss_bytes

    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, text=True)
        peak = None
        while proc.poll() is None:
            sample = peak_rss_bytes(proc.pid)
            peak = sample if peak is None or (sample or 0) > peak else peak
            if MAX_RSS_BYTES and (sample or 0) > MAX_RSS_BYTES:
                print(f"stopping {cmd[1:4]}: {sample / 2**30:.1f} GiB resident > --max-rss-gb", file=sys.stderr)
                proc.kill()
            time.sleep(0.2)
        wall = time.perf_counter() - start
        out.seek(0)
        return proc.returncode, wall, peak, out.read()


def part_in_subprocess(part: str, args) -> dict:
    cmd = [sys.executable, __file__, "--run-part", part, "--folder", str(args.folder), "--device", args.device,
           "--dtype", args.dtype, "--frames", str(args.frames), "--size", args.size]
    code, wall, _, out = _wait(cmd)
    if code != 0:
        raise SystemExit(f"part {part} failed with exit code {code}")
    result = json.loads(out.strip().splitlines()[-1])  # its peak RSS as it saw it at the end (VmHWM)
    result.update(wall_s=wall)
    return result


# ---- the whole command ---------------------------------------------------------------------
def write_frames(folder: Path, frames: int, size: tuple[int, int]) -> Path:
    """``frames`` PNG frames at twice ``size`` (so that segment resizes them into ``size``)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = 2 * size[0], 2 * size[1]
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def run_segment(args, work: Path) -> dict:
    video = write_frames(work / "frames", args.frames, parse_size(args.size))
    cmd = [sys.executable, "-m", "flowrvs", "segment", str(video), "-p", SENTENCE, "--model", str(args.folder),
           "--out", str(work / "out"), "--size", args.size, "--device", args.device, "--no-overlay"]
    if args.dtype != "auto":
        cmd += ["--dtype", args.dtype]
    env = {**os.environ, "FLOWRVS_CACHE": str(work / "cache")}  # cold: no embedding seen before
    code, wall, peak, _ = _wait(cmd, env=env)
    result = {"part": "segment", "wall_s": wall, "peak_rss_bytes": peak, "command": " ".join(cmd[1:])}
    if code != 0:
        return {**result, "error": f"exit code {code}"}
    return {**result, "masks": len(sorted((work / "out").rglob("*.png")))}


# ---- report --------------------------------------------------------------------------------
def machine(device: str) -> str:
    from flowrvs.runtime.machine import describe

    return describe(device)


def parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def gib(n: int | None) -> str:
    return "" if n is None else f"{n / 2**30:.2f}"


def report(results: list[dict], header: dict) -> str:
    lines = [f"- machine: {header['machine']}; torch {header['torch']}; {header['date']}",
             f"- command: `{header['command']}`",
             f"- plan ({header['dtype']}): {header['plan']}", "",
             "| part | start-up s | load s | run s | wall s (process) | peak RSS GiB | peak GPU GiB |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['part']} | {r.get('startup_s', float('nan')):.1f} | {r.get('load_s', float('nan')):.1f} | {r.get('run_s', float('nan')):.1f} | "
                     f"{r.get('wall_s', float('nan')):.1f} | {gib(r.get('peak_rss_bytes'))} | {gib(r.get('peak_gpu_bytes'))} |")
    parts = [r for r in results if r["part"] in PARTS]
    segment = next((r for r in results if r["part"] == "segment" and "error" not in r), None)
    lines += [f"\n{r['part']} failed: {r['error']}" for r in results if "error" in r]
    if parts and segment:
        total = sum(r["load_s"] + r["run_s"] for r in parts)
        startup = min(r["startup_s"] for r in parts)
        lines += ["", f"segment / sum of parts (load + run): {segment['wall_s']:.1f} / {total:.1f} s = "
                      f"{segment['wall_s'] / total:.2f}x; with one process start-up ({startup:.1f} s) added to "
                      f"the parts: {segment['wall_s'] / (total + startup):.2f}x"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan2.1-1.3b", help="model shape (wan2.1-1.3b, small, tiny)")
    parser.add_argument("--folder", type=Path, required=True, help="model folder (built when missing)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="240x416", help="HxW the frames are resized into")
    parser.add_argument("--parts", default=",".join(PARTS + ("segment",)), help="comma-separated parts to time")
    parser.add_argument("--in-process", action="store_true", help="time the parts in this process (peak RSS then "
                                                                   "is the running maximum; for quick checks)")
    parser.add_argument("--dvi", action="store_true", help="a DiT with direct video injection (32 input channels)")
    parser.add_argument("--max-rss-gb", type=float, default=None,
                        help="stop a part or segment whose resident memory passes this (protects a shared machine)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--run-part", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    global MAX_RSS_BYTES
    MAX_RSS_BYTES = int(args.max_rss_gb * 2**30) if args.max_rss_gb else None

    if args.run_part:
        print(json.dumps(run_part(args.run_part, args.folder, args.device, args.dtype, args.frames, size)))
        return 0
    if (args.frames - 1) % 4 or size[0] % 16 or size[1] % 16:
        raise SystemExit("--frames must be 4k+1 and --size sides multiples of 16")
    if not (args.folder / "model_index.json").is_file():
        start = time.perf_counter()
        sizes = build_model_folder(args.preset, args.folder, dvi=args.dvi)
        print(f"built {args.folder} in {time.perf_counter() - start:.0f} s: "
              + ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in sizes.items()), flush=True)

    from flowrvs.runtime.precision import choose_precision

    header = {"machine": machine(args.device), "torch": torch.__version__,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python benchmarks/fullsize.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "dtype": args.dtype, "plan": choose_precision(args.device, args.dtype).describe()}
    results = []
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    for part in wanted:
        if part == "segment":
            with tempfile.TemporaryDirectory(prefix="flowrvs-fullsize-") as work:
                results.append(run_segment(args, Path(work)))
        elif args.in_process:
            results.append(run_part(part, args.folder, args.device, args.dtype, args.frames, size))
        else:
            results.append(part_in_subprocess(part, args))
        print(json.dumps(results[-1]), flush=True)
    text = report(results, header)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

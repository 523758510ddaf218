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
   (empty embedding cache), in a subprocess. All run with ``$FLOWRVS_CACHE`` set to ``--cache``
   (default ``FOLDER-cache``), where the bf16 copy of umT5's float32 layers is made first (timed
   and reported once; kept between runs, as a user's cache keeps it). A part's process keeps
   freed memory for reuse as the ``flowrvs`` program does; ``--segment-runs N`` runs ``segment``
   N times on the same frames (min / median / max, later masks compared with the first's).
3. Prints a markdown table headed by the machine (``lscpu`` model name or the GPU), torch
   version, date and command; ``--json`` writes the figures too.

Weights are random: time and memory do not depend on their values.

``--method rem`` (REM, ReferEverything, on the stock Wan2.1-T2V-14B) builds nothing on disk and
runs nothing at full size: it builds the 14B layout on ``meta`` (the DiT with 16 input channels,
the stock 3-channel VAE decoder, umT5), prints its parameters and REM's inference plan for a
``--frames`` video (default one 73-frame clip, frames at 512x512, 77 text tokens, one DiT pass at
timestep 0 per clip), and *estimates* each memory plan's peak for one clip: the bytes of the
weights the plan holds (the meta model in the plan's dtypes) plus the part's activation and input
peak (tracked on ``meta`` by ``benchmarks/cost.py``). Not measured: CUDA context, allocator
fragmentation, kernel workspaces.

    python benchmarks/fullsize.py --method rem                      # the 14B layout on meta, ~1 min
    python benchmarks/fullsize.py --method rem --preset tiny --frames 9 --size 32x32   # seconds
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
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Iterable

import torch

from flowrvs.runtime.cache import CACHE_ENV, cache_root, speed_caches_enabled

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DEFAULT_PRESET = {"flowrvs": "wan2.1-1.3b", "rem": "wan2.1-14b"}
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


def latent_shape(frames: int, size: tuple[int, int]) -> tuple[int, ...]:
    """``(1, 16, T', H/8, W/8)``: the Wan VAE's latent of ``frames`` (4k+1) frames at ``size``."""
    return (1, 16, (frames - 1) // 4 + 1, size[0] // 8, size[1] // 8)


def _load_text(folder: Path, plan, device, streamed: bool, text_len: int):
    """umT5 (streamed from its shards, or loaded whole) and the call that encodes one sentence."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    from flowrvs.models.text import encode_sentences, load_streamed_text_encoder
    from flowrvs.runtime.precision import apply_part_precision

    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
    if streamed:  # the streamed encoder reads its layers as it runs: loading is part of the run
        load = lambda: (tokenizer, load_streamed_text_encoder(folder / "text_encoder", plan.text_encoder.compute, device))  # noqa: E731
    else:
        encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder", dtype=plan.text_encoder.storage)
        apply_part_precision(encoder, plan.text_encoder, device)
        load = lambda: (tokenizer, encoder)  # noqa: E731
    return lambda: encode_sentences([SENTENCE], load, None, text_len, "bench", device=device)


def read_streamed_layers(folder: Path, plan, device) -> dict:
    """Read every layer the streamed umT5 reads in a call, as its offload hooks read them (mapped
    from the safetensors files), each touched once by a sum and nothing else computed:
    ``{"bytes", "seconds", "tensors"}``. Against the part's run seconds this says how much of the
    encode is bringing its weights in (the token table, read by rows, is not counted)."""
    from flowrvs.models.text import load_streamed_text_encoder

    model = load_streamed_text_encoder(folder / "text_encoder", plan.text_encoder.compute, device)
    start = time.perf_counter()
    tensors = nbytes = 0
    for module in model.modules():
        hook = getattr(module, "_hf_hook", None)
        if hook is None or not getattr(hook, "offload", False) or hook.weights_map is None:
            continue
        names = [n for n, _ in (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))]
        for name in (n for n in names if n in hook.weights_map):
            weight = hook.weights_map[name].to(device, plan.text_encoder.compute)
            weight.sum()  # a mapped tensor is read only when touched
            tensors, nbytes = tensors + 1, nbytes + weight.numel() * weight.element_size()
    _sync(torch.device(device))
    return {"bytes": nbytes, "seconds": time.perf_counter() - start, "tensors": tensors}


def _load_vae(folder: Path, plan, device, encode: bool, frames: int, size: tuple[int, int], generator):
    """The VAE as the pipeline's loader prepares it, and the call that encodes a video or decodes mask logits."""
    from diffusers import AutoencoderKLWan

    from flowrvs.models.vae import decode_mask_logits, encode_video, tune_for_machine
    from flowrvs.runtime.precision import apply_part_precision

    vae = AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=plan.vae.storage)
    apply_part_precision(vae, plan.vae, device)
    tune_for_machine(vae, device, plan.vae.compute)  # as the loader does
    if encode:
        x = (torch.rand((1, 3, frames, *size), generator=generator) * 2 - 1).to(device, plan.vae.compute)
        return lambda: encode_video(vae, x)
    x = torch.randn(latent_shape(frames, size), generator=generator).to(device, plan.vae.compute)
    return lambda: decode_mask_logits(vae, x)


def _load_dit(folder: Path, plan, device, frames: int, size: tuple[int, int], text_len: int, generator):
    """The DiT in the plan's precision and the call of one Euler step (one sentence)."""
    from diffusers import WanTransformer3DModel

    from flowrvs.runtime.precision import apply_part_precision

    transformer = WanTransformer3DModel.from_pretrained(folder / "transformer", torch_dtype=plan.transformer.storage)
    apply_part_precision(transformer, plan.transformer, device)
    compute = plan.transformer.compute
    z = torch.randn(latent_shape(frames, size), generator=generator).to(device, compute)
    text = torch.randn((1, text_len, transformer.config.text_dim), generator=generator).to(device, compute)
    hidden = torch.cat([z, z], 1) if transformer.config.in_channels == 2 * z.shape[1] else z
    timestep = torch.full((1,), 1000.0, device=device)
    return lambda: transformer(hidden, timestep=timestep, encoder_hidden_states=text, return_dict=False)[0]


def profile_by_kind(profiler) -> dict[str, float]:
    """Self CPU seconds of a profiled run per kernel kind (``benchmarks/cost.py``'s ``kind_of``)."""
    kind_of = load_cost().kind_of
    seconds: dict[str, float] = {}
    for event in profiler.key_averages():
        kind = kind_of(event.key)
        seconds[kind] = seconds.get(kind, 0.0) + event.self_cpu_time_total / 1e6
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


PART_KINDS = {"text": ("gemm",), "text-loaded": ("gemm",), "vae-encode": ("conv",), "vae-decode": ("conv",),
              "dit": ("gemm", "attention")}  # the kernel kinds a part spends its time in


def run_part(part: str, folder: Path, device: str, dtype: str, frames: int, size: tuple[int, int],
             profile: bool = False, peaks_of: str | None = None) -> dict:
    """Load one part as the plan says, run it once on random inputs; seconds and peak memory.

    ``profile``: run it under ``torch.profiler`` and add the self CPU seconds per kernel kind.
    ``peaks_of`` (a preset): just before and just after the run, measure the sustained peaks
    of the part's kernel kinds (``benchmarks/kernel_peak.py`` at that preset's shapes) in this process, as
    ``peaks_around``: a shared machine's speed drifts, so a part is also set against the machine as
    it was then."""
    import contextlib

    from flowrvs.runtime.memory import peak_rss_bytes
    from flowrvs.runtime.precision import choose_precision

    plan = choose_precision(device, dtype)
    device = plan.device
    text_len = int(json.loads((folder / "model_index.json").read_text()).get("text_len", 256))
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    startup = start - _T0
    with torch.no_grad():
        if part in ("text", "text-loaded"):
            call = _load_text(folder, plan, device, part == "text", text_len)
        elif part in ("vae-encode", "vae-decode"):
            call = _load_vae(folder, plan, device, part == "vae-encode", frames, size, generator)
        elif part == "dit":
            call = _load_dit(folder, plan, device, frames, size, text_len, generator)
        else:
            raise SystemExit(f"unknown part {part!r}; parts: {', '.join(PARTS + EXTRA_PARTS)}")
        _sync(device)
        loaded = time.perf_counter()
        probe = _peak_probe(part, plan, peaks_of, frames, size) if peaks_of else None
        before = probe() if probe else None
        run_start = time.perf_counter()
        profiler = torch.profiler.profile() if profile else contextlib.nullcontext()
        with profiler:
            out = call()
            _sync(device)
    end = time.perf_counter()
    if probe:
        around = {"before": before, "after": probe(), "seconds": run_start - loaded + time.perf_counter() - end}
    result = {"part": part, "startup_s": startup, "load_s": loaded - start, "run_s": end - run_start, "out_shape": list(out.shape),
              "finite": bool(torch.isfinite(out.float()).all()), "peak_rss_bytes": peak_rss_bytes(),
              "plan": plan.describe()}
    if profile:
        result["profile_s"] = profile_by_kind(profiler)
    if device.type == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    if probe:
        result["peaks_around"] = around
        if part == "text":
            result["layers_read"] = read_streamed_layers(folder, plan, device)
    return result


def _peak_probe(part: str, plan, preset: str, frames: int, size: tuple[int, int]):
    """A call measuring the sustained peaks (median of 5 calls) of ``part``'s kernel kinds in its
    compute dtype: ``{dtype: {kind: FLOP/s}}``."""
    compute = str(plan.part(STAGE_PART.get(part, "text_encoder")).compute).removeprefix("torch.")
    kernel_peak = load_benchmark("kernel_peak")
    return lambda: kernel_peak.measure_peaks(preset, frames, size, [compute], repeats=5, kinds=PART_KINDS[part],
                                             device=plan.device)["sustained"]


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
           "--dtype", args.dtype, "--frames", str(args.frames), "--size", args.size, "--preset", args.preset]
    cmd += (["--profile"] if args.profile else []) + (["--peaks-now"] if args.peaks else [])
    code, wall, _, out = _wait(cmd)
    if code != 0:
        raise SystemExit(f"part {part} failed with exit code {code}")
    result = json.loads(out.strip().splitlines()[-1])  # its peak RSS as it saw it at the end (VmHWM)
    result.update(wall_s=wall - result.get("peaks_around", {}).get("seconds", 0.0))  # less the peaks measured around it
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


def prepare_text_copy(args) -> dict:
    """Make the cache's bf16 copy of umT5's layers now (:mod:`flowrvs.models.text_weights`), so
    that the timed parts find it as a user's second run does; the seconds it took (0 when found)."""
    from flowrvs.models.text import load_streamed_text_encoder
    from flowrvs.runtime.precision import choose_precision

    start = time.perf_counter()
    load_streamed_text_encoder(args.folder / "text_encoder", choose_precision(args.device, args.dtype).text_encoder.compute)
    return {"cache": os.environ[CACHE_ENV], "seconds": time.perf_counter() - start}


def run_segment(args, work: Path, run: int = 0) -> dict:
    """``flowrvs segment`` of ``work/frames`` (written by the first run) into ``work/out`` (the first run)
    or ``work/out-RUN``, with no embedding cached; a later run's masks are compared with the first's."""
    out = work / ("out" if run == 0 else f"out-{run}")
    shutil.rmtree(out, ignore_errors=True)  # a kept folder's earlier run: no masks to resume
    if speed_caches_enabled():
        shutil.rmtree(cache_root() / "embeddings", ignore_errors=True)  # cold: no embedding cached
    video = write_frames(work / "frames", args.frames, parse_size(args.size)) if run == 0 else work / "frames"
    cmd = [sys.executable, "-m", "flowrvs", "segment", str(video), "-p", SENTENCE, "--model", str(args.folder),
           "--out", str(out), "--size", args.size, "--device", args.device, "--no-overlay"]
    if args.dtype != "auto":
        cmd += ["--dtype", args.dtype]
    code, wall, peak, _ = _wait(cmd)
    result = {"part": "segment", "run": run, "wall_s": wall, "peak_rss_bytes": peak, "command": " ".join(cmd[1:])}
    if code != 0:
        return {**result, "error": f"exit code {code}"}
    result["masks"] = len(sorted(out.rglob("*.png")))
    other = args.agree_with if run == 0 else work / "out"
    if other:
        result.update(agreement=mask_agreement(out, other), agreement_with=str(other))
    return result


def run_segments(args, work: Path) -> list[dict]:
    """``--segment-runs`` runs of ``flowrvs segment`` on the same frames; each a result."""
    return [run_segment(args, work, run) for run in range(args.segment_runs)]


def mask_agreement(out: Path, other: Path) -> dict:
    """Pixels where two ``flowrvs segment`` outputs of the same frames agree: ``{"pixels", "differ",
    "fraction", "foreground"}`` (``foreground``: this output's foreground fraction)."""
    import numpy as np
    from PIL import Image

    names = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    if not names or sorted(p.relative_to(other) for p in other.rglob("*.png")) != names:
        raise SystemExit(f"{other} does not hold the same mask files as {out}")
    pixels = differ = foreground = 0
    for name in names:
        a, b = (np.asarray(Image.open(root / name)) > 0 for root in (out, other))
        pixels, differ, foreground = pixels + a.size, differ + int((a != b).sum()), foreground + int(a.sum())
    return {"pixels": pixels, "differ": differ, "fraction": 1 - differ / pixels, "foreground": foreground / pixels}


# ---- REM: the 14B layout on meta, its parameters and the memory plans' peaks ---------------
STAGE_PART = {"text": "text_encoder", "vae-encode": "vae", "dit": "transformer", "vae-decode": "vae"}
MEMORY_PLANS = {  # name -> (precision plan, what the device holds)
    "resident": ("cuda-bf16", "every part resident, umT5 whole (keep_text_encoder)"),
    "default": ("cuda-bf16", "DiT and VAE resident, umT5 streamed one layer at a time (flowrvs on CUDA)"),
    "cpu-offload": ("cuda-bf16", "only the running part on the device (--cpu-offload), umT5 streamed"),
    "group-offload": ("cuda-bf16", "DiT: its non-block weights and one block (enable_group_offload, block_level, "
                                   "1 block a group, no stream); VAE whole; umT5 streamed"),
    "layerwise": ("cpu-layerwise", "host memory of a CPU without native bf16: DiT stored bf16 and cast to fp32 "
                                   "one layer at a time, VAE fp32, umT5 streamed in fp32"),
}


def load_benchmark(stem: str) -> ModuleType:
    """``benchmarks/<stem>.py`` as a module (``cost``: REM's meta parts and its activation
    tracker; ``kernel_peak``: the kernel peaks)."""
    import importlib.util

    name = f"flowrvs_bench_{stem}"
    if name not in sys.modules:  # registered before it runs: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{stem}.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def load_cost() -> ModuleType:
    return load_benchmark("cost")


def rem_precisions() -> dict[str, object]:
    """The precision plans the estimates assume: what :func:`~flowrvs.runtime.precision.choose_precision`
    gives on CUDA with bf16 (``cuda-bf16``) and on a CPU without native bf16 (``cpu-layerwise``)."""
    from flowrvs.runtime.precision import PartPrecision, PrecisionPlan

    bf16, fp32 = PartPrecision(torch.bfloat16, torch.bfloat16), PartPrecision(torch.float32, torch.float32)
    big = PartPrecision(torch.bfloat16, torch.float32)
    return {"cuda-bf16": PrecisionPlan(torch.device("cuda"), bf16, bf16, bf16, "auto", "CUDA: bfloat16 everywhere"),
            "cpu-layerwise": PrecisionPlan(torch.device("cpu"), big, fp32, big, "auto",
                                           "CPU without native bf16: float32 compute, large weights stored in bfloat16")}


def _bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of ``tensors``."""
    return sum(t.numel() * t.element_size() for t in tensors)


def rem_weights(cost: ModuleType, preset: str, plan) -> dict[str, int]:
    """Bytes of REM's weights under ``plan`` (a ``PrecisionPlan``), from the meta model in the plan's dtypes.

    ``text``/``vae``/``dit``: each part whole; ``text_layer``: the largest umT5 layer in its compute
    dtype (what the streamed encoder holds); ``dit_outside_blocks``, ``dit_block``: the DiT's weights
    outside ``blocks`` and its largest block; ``dit_cast``: the largest layer's fp32 copy made by
    layerwise casting (0 without it)."""
    from flowrvs.runtime.precision import _has_layerwise_hook, apply_part_precision

    parts = cost.build_rem_parts(preset)
    text, vae, dit = parts["text encoder"], parts["vae"], parts["dit"]
    for module, name in ((text, "text_encoder"), (vae, "vae"), (dit, "transformer")):
        apply_part_precision(module, plan.part(name))
    compute = torch.tensor([], dtype=plan.text_encoder.compute).element_size()
    layers = [m for m in text.modules() if not isinstance(m, torch.nn.Embedding)]  # the streamed table reads rows
    casting = [m for m in dit.modules() if _has_layerwise_hook(m)]
    dit_compute = torch.tensor([], dtype=plan.transformer.compute).element_size()
    return {
        "text": _bytes(text.parameters()) + _bytes(text.buffers()),
        "text_layer": max(sum(p.numel() for p in m.parameters(recurse=False)) for m in layers) * compute,
        "vae": _bytes(vae.parameters()) + _bytes(vae.buffers()),
        "dit": _bytes(dit.parameters()) + _bytes(dit.buffers()),
        "dit_outside_blocks": _bytes(p for n, p in dit.named_parameters() if not n.startswith("blocks."))
                              + _bytes(dit.buffers()),
        "dit_block": max(_bytes(b.parameters()) for b in dit.blocks),
        "dit_cast": max((sum(p.numel() for p in m.parameters(recurse=False)) for m in casting), default=0) * dit_compute,
    }


def rem_activations(cost: ModuleType, preset: str, clip: int, size: tuple[int, int], tokens: int, dtype: torch.dtype) -> dict[str, int]:
    """Per stage, the peak bytes of activations (tracked on meta) plus the stage's inputs, all in ``dtype``.

    Inputs: token ids ``(1, tokens)`` int64; video ``(1, 3, clip, H, W)``; latent ``(1, 16, T', H/8, W/8)``
    and embeddings ``(1, text_len, 4096)`` for the DiT; the latent for the decoder."""
    parts = {p.part: p for p in cost.rem_part_costs(preset, clip, *size, tokens, dtype=dtype)}
    text, encode, dit, decode = parts.values()
    item = torch.tensor([], dtype=dtype).element_size()
    vae = cost.build_vae(preset, device="meta", mask_decoder=False)
    latent = math.prod(cost.latent_shape(vae, clip, *size)) * item
    embeds = cost.rem_settings()["text_len"] * cost.preset_config(preset, "text_encoder")["d_model"] * item
    return {"text": text.activation_bytes + 8 * tokens,
            "vae-encode": encode.activation_bytes + 3 * clip * size[0] * size[1] * item,
            "dit": dit.activation_bytes + latent + embeds, "vae-decode": decode.activation_bytes + latent}


def _held(plan_name: str, stage: str, w: dict[str, int]) -> int:
    """Bytes of weights the memory plan ``plan_name`` holds while ``stage`` runs."""
    text_now = w["text_layer"] if stage == "text" else 0
    if plan_name == "resident":
        return w["text"] + w["vae"] + w["dit"]
    if plan_name in ("default", "layerwise"):
        return w["vae"] + w["dit"] + text_now + (w["dit_cast"] if stage == "dit" else 0)
    dit = w["dit_outside_blocks"] + w["dit_block"] if plan_name == "group-offload" else w["dit"]
    return {"text": w["text_layer"], "vae-encode": w["vae"], "dit": dit + w["dit_cast"], "vae-decode": w["vae"]}[stage]


def rem_memory(cost: ModuleType, preset: str, clip: int, size: tuple[int, int], tokens: int) -> list[dict]:
    """Each of :data:`MEMORY_PLANS`: bytes per stage (weights held + activations and inputs) and the peak."""
    precisions, weights, activations, rows = rem_precisions(), {}, {}, []
    for name, (key, holds) in MEMORY_PLANS.items():
        plan = precisions[key]
        if key not in weights:
            weights[key] = rem_weights(cost, preset, plan)
        stages = {}
        for stage, part in STAGE_PART.items():
            dtype = plan.part(part).compute
            if dtype not in activations:
                activations[dtype] = rem_activations(cost, preset, clip, size, tokens, dtype)
            stages[stage] = _held(name, stage, weights[key]) + activations[dtype][stage]
        peak = max(stages, key=stages.get)
        rows.append({"plan": name, "holds": holds, "precision": plan.describe(), "stages_bytes": stages,
                     "peak_stage": peak, "peak_bytes": stages[peak], "weights_bytes": weights[key]})
    return rows


def rem_parameters(cost: ModuleType, preset: str) -> dict[str, int]:
    """Parameters of REM's parts built on meta (``dit``, ``vae``, ``text encoder``) and their ``total``."""
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in cost.build_rem_parts(preset).items()}
    return {**counts, "total": sum(counts.values())}


def rem_figures(preset: str, frames: int, size: tuple[int, int], tokens: int) -> dict:
    """Everything ``--method rem`` reports: parameters, REM's plan for ``frames`` frames, memory per plan."""
    cost = load_cost()
    settings = cost.rem_settings()
    clip, clips = cost.rem_clips(frames)
    vae = cost.build_vae(preset, device="meta", mask_decoder=False)
    latent = cost.latent_shape(vae, clip, *size)
    patch = cost.preset_config(preset, "transformer")["patch_size"]
    video_tokens = math.prod(n // p for n, p in zip(latent[2:], patch))
    plan = {"frames": frames, "clip_frames": clip, "clips": clips, "size": list(size), "text_len": settings["text_len"],
            "tokens": tokens, "timestep": 0, "dit_passes_per_clip": 1, "latent_shape": list(latent),
            "video_tokens": video_tokens}
    return {"method": "rem", "preset": preset, "parameters": rem_parameters(cost, preset), "plan": plan,
            "memory": rem_memory(cost, preset, clip, size, tokens)}


def _size(n: int) -> str:
    """``12.34 GiB``, or ``5.6 MiB`` below a GiB (tiny presets)."""
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def rem_report(figures: dict, header: dict) -> str:
    """Markdown: the header, parameters per part, REM's plan, and the memory plans' estimated peaks."""
    params, plan = figures["parameters"], figures["plan"]
    lines = [f"- machine: {header['machine']}; torch {header['torch']}; {header['date']}",
             f"- command: `{header['command']}`",
             f"- REM on preset {figures['preset']}, built on meta (no weight allocated)", "",
             "| part | parameters |", "|---|---|",
             f"| DiT (WanTransformer3DModel, 16 input channels) | {params['dit']:,} |",
             f"| VAE (AutoencoderKLWan, stock 3-channel decoder) | {params['vae']:,} |",
             f"| text encoder (umT5) | {params['text encoder']:,} |", f"| **total** | **{params['total']:,}** |", "",
             f"- plan: a video of {plan['frames']} frames in {len(plan['clips'])} clip(s) of {plan['clip_frames']} "
             f"frames (start, stop, context: {plan['clips']}); frames resized to {plan['size'][0]}x{plan['size'][1]}; "
             f"text padded to {plan['text_len']} tokens ({plan['tokens']} real); one DiT pass at timestep "
             f"{plan['timestep']} per clip on latent {tuple(plan['latent_shape'])} ({plan['video_tokens']:,} video tokens)",
             "", f"Peak memory of one {plan['clip_frames']}x{plan['size'][0]}x{plan['size'][1]} clip, one sentence "
                 "(**estimate**: weights held + activations and inputs tracked on meta; CUDA context, "
                 "fragmentation and kernel workspaces not counted):", "",
             "| memory plan | precision | " + " | ".join(STAGE_PART) + " | peak |",
             "|---|---|" + "---|" * len(STAGE_PART) + "---|"]
    for row in figures["memory"]:
        per_stage = " | ".join(_size(row["stages_bytes"][s]) for s in STAGE_PART)
        lines.append(f"| {row['plan']} | {row['precision']} | {per_stage} | **{_size(row['peak_bytes'])}** ({row['peak_stage']}) |")
    lines += [""] + [f"- {row['plan']}: {row['holds']}" for row in figures["memory"]]
    return "\n".join(lines)


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
        lines.append(f"| {r['part']}{' ' + str(r['run'] + 1) if r.get('run') else ''} | {r.get('startup_s', float('nan')):.1f} | {r.get('load_s', float('nan')):.1f} | {r.get('run_s', float('nan')):.1f} | "
                     f"{r.get('wall_s', float('nan')):.1f} | {gib(r.get('peak_rss_bytes'))} | {gib(r.get('peak_gpu_bytes'))} |")
    lines += [f"\nmasks against {r['agreement_with']}: {r['agreement']['differ']:,} of {r['agreement']['pixels']:,} pixels "
              f"differ (agreement {r['agreement']['fraction']:.6f}; foreground {r['agreement']['foreground']:.4f})"
              for r in results if "agreement" in r]
    parts = [r for r in results if r["part"] in PARTS]
    segments = [r["wall_s"] for r in results if r["part"] == "segment" and "error" not in r]
    lines += [f"\n{r['part']} failed: {r['error']}" for r in results if "error" in r]
    if len(segments) > 1:
        lines += ["", f"segment over {len(segments)} runs: {min(segments):.1f} / {statistics.median(segments):.1f} / "
                      f"{max(segments):.1f} s wall (min / median / max)"]
    if parts and segments:
        total = sum(r["load_s"] + r["run_s"] for r in parts)
        startup = min(r["startup_s"] for r in parts)
        wall = statistics.median(segments)
        lines += ["", f"segment{' (median)' if len(segments) > 1 else ''} / sum of parts (load + run): {wall:.1f} / "
                      f"{total:.1f} s = {wall / total:.2f}x; with one process start-up ({startup:.1f} s) added to "
                      f"the parts: {wall / (total + startup):.2f}x"]
    return "\n".join(lines)


COST_PART = {"text": "text encoder", "vae-encode": "VAE encoder", "dit": "DiT step", "vae-decode": "mask decoder"}


def efficiency(results: list[dict], args, size: tuple[int, int], peaks: dict) -> list[dict]:
    """Per timed part: its FLOPs (counted by ``benchmarks/cost.py`` on the same configuration and
    sizes), FLOP/s, and the fraction of this machine's kernel peaks it reached: the seconds the part
    would take if each of its kernel kinds ran at its measured peak (``sum flops_kind / peak_kind``,
    in the part's compute dtype), over the seconds it took."""
    from flowrvs.runtime.precision import choose_precision

    plan = choose_precision(args.device, args.dtype)
    tokens = len(SENTENCE.split()) + 1  # the word tokenizer's tokens and </s>
    counted = {c.part: c for c in load_cost().part_costs(args.preset, args.frames, *size, tokens, dvi=args.dvi)}
    rows = []
    for r in results:
        if r["part"] not in COST_PART or "run_s" not in r:
            continue
        cost = counted[COST_PART[r["part"]]]
        dtype = str(plan.part(STAGE_PART[r["part"]]).compute).split(".")[-1]
        ideal = _seconds_at(cost.flops_by_kind, peaks["peaks"].get(dtype, {}))
        row = {"part": r["part"], "dtype": dtype, "run_s": r["run_s"], "flops": cost.flops,
               "flops_by_kind": cost.flops_by_kind, "flops_per_s": cost.flops / r["run_s"],
               "ideal_s": ideal, "fraction_of_peak": ideal / r["run_s"]}
        if "sustained" in peaks:
            row["fraction_of_sustained"] = _seconds_at(cost.flops_by_kind, peaks["sustained"].get(dtype, {})) / r["run_s"]
        if "peaks_around" in r:  # each kind at the faster of its sustained peaks just before and just after the part
            before, after = (r["peaks_around"][when].get(dtype, {}) for when in ("before", "after"))
            faster = {k: max(before.get(k, 0.0), after.get(k, 0.0)) for k in {*before, *after}}
            row["fraction_of_peak_around"] = _seconds_at(cost.flops_by_kind, faster) / r["run_s"]
            row["peaks_around"] = {"before": before, "after": after}
        if "layers_read" in r:
            row["layers_read"] = r["layers_read"]
        rows.append(row)
    return rows


def _seconds_at(flops_by_kind: dict[str, int], peak: dict[str, float]) -> float:
    """The seconds ``flops_by_kind`` take with each kind at its ``peak`` FLOP/s (kinds without a peak: none)."""
    return sum(f / peak[k] for k, f in flops_by_kind.items() if f and peak.get(k))


def efficiency_report(rows: list[dict]) -> str:
    lines = ["| part | compute | run s | GFLOP (gemm / conv / attention) | GFLOP/s | s at the kernel peaks | of peak "
             "| of sustained peak | of the faster sustained peak just before / after it (GFLOP/s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kinds = " / ".join(f"{r['flops_by_kind'].get(k, 0) / 1e9:,.0f}" for k in ("gemm", "conv", "attention"))
        now = ""
        if "fraction_of_peak_around" in r:
            seen = "; ".join(f"{k} {r['peaks_around']['before'].get(k, 0) / 1e9:,.0f} / {r['peaks_around']['after'].get(k, 0) / 1e9:,.0f}"
                             for k in sorted(r["peaks_around"]["after"]))
            now = f"{100 * r['fraction_of_peak_around']:.0f} % ({seen})"
        sustained = f"{100 * r['fraction_of_sustained']:.0f} %" if "fraction_of_sustained" in r else ""
        lines.append(f"| {r['part']} | {r['dtype']} | {r['run_s']:.1f} | {r['flops'] / 1e9:,.0f} ({kinds}) | "
                     f"{r['flops_per_s'] / 1e9:,.0f} | {r['ideal_s']:.1f} | {100 * r['fraction_of_peak']:.0f} % | {sustained} | {now} |")
    for r in rows:
        if "layers_read" in r:
            read = r["layers_read"]
            lines.append(f"\n{r['part']}: reading its {read['bytes'] / 1e9:.2f} GB of layers alone, as its hooks read them "
                         f"(each touched once by a sum), takes {read['seconds']:.1f} s ({read['bytes'] / read['seconds'] / 1e9:.1f} GB/s), "
                         f"{100 * read['seconds'] / r['run_s']:.0f} % of its run")
    return "\n".join(lines)


def profile_report(results: list[dict]) -> str:
    """Self CPU seconds per kernel kind of each profiled part (where its time went)."""
    kinds = ("gemm", "conv", "attention", "copy", "other")
    lines = ["| part | " + " | ".join(f"{k} s" for k in kinds) + " |", "|---|" + "---|" * len(kinds)]
    for r in results:
        if "profile_s" in r:
            total = sum(r["profile_s"].values()) or 1.0
            lines.append(f"| {r['part']} | " + " | ".join(
                f"{r['profile_s'].get(k, 0):.1f} ({100 * r['profile_s'].get(k, 0) / total:.0f} %)" for k in kinds) + " |")
    return "\n".join(lines)


def _header(args, argv: list[str] | None, plan: str) -> dict:
    """Machine, torch version, date, command and plan of a report."""
    return {"machine": machine(args.device), "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python benchmarks/fullsize.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "dtype": args.dtype, "plan": plan}


def rem_main(args, argv: list[str] | None, parser: argparse.ArgumentParser) -> int:
    """``--method rem``: REM's layout on meta, its plan and the memory plans' estimated peaks (nothing run)."""
    try:
        size = parse_size(args.size) if args.size else None
    except ValueError:
        size = (0, 0)
    if size is not None and not (size[0] > 0 and size[1] > 0 and size[0] % 16 == 0 == size[1] % 16):
        parser.error(f"--size must be HxW in positive multiples of 16, got {args.size!r}")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be at least 1, got {args.frames}")
    if args.dvi or args.run_part:
        parser.error("--method rem runs the stock DiT on meta: no --dvi, no parts to run")
    if args.tokens < 1:
        parser.error(f"--tokens must be at least 1, got {args.tokens}")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()  # meta copies are cast whole on purpose
    transformers_logging.set_verbosity_error()
    cost = load_cost()
    settings = cost.rem_settings()
    frames = args.frames or max(settings["clip_lengths"])
    figures = rem_figures(args.preset, frames, size or settings["size"], args.tokens)
    header = _header(args, argv, "memory plans below (estimated on meta)")
    print(rem_report(figures, header))
    if args.json:
        args.json.write_text(json.dumps({"header": header, **figures}, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    from flowrvs.presets import METHODS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=METHODS, default="flowrvs",
                        help="flowrvs: build a random-weight folder and time each part; rem: REM's 14B layout on "
                             "meta, its parameters and the memory plans' estimated peaks")
    parser.add_argument("--preset", default=None, help="model shape (wan2.1-1.3b, wan2.1-14b, small, tiny); "
                                                       "default wan2.1-1.3b, rem: wan2.1-14b")
    parser.add_argument("--folder", type=Path, default=None, help="model folder (built when missing; flowrvs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--frames", type=int, default=None, help="frames (default 17; rem: the video's length, "
                                                                 "default one clip of REM's longest length)")
    parser.add_argument("--size", default=None, help="HxW the frames are resized into (default 240x416; rem: REM's)")
    parser.add_argument("--tokens", type=int, default=12, help="real tokens of the sentence (rem)")
    parser.add_argument("--parts", default=",".join(PARTS + ("segment",)), help="comma-separated parts to time")
    parser.add_argument("--in-process", action="store_true", help="time the parts in this process (peak RSS then "
                                                                   "is the running maximum; for quick checks)")
    parser.add_argument("--dvi", action="store_true", help="a DiT with direct video injection (32 input channels)")
    parser.add_argument("--max-rss-gb", type=float, default=None,
                        help="stop a part or segment whose resident memory passes this (protects a shared machine)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--profile", action="store_true", help="run each part under torch.profiler and report "
                                                                 "its self CPU seconds per kernel kind")
    parser.add_argument("--peaks", type=Path, default=None, help="kernel peaks (benchmarks/kernel_peak.py --json): "
                                                                 "report each part's FLOP/s as a fraction of them")
    parser.add_argument("--keep", type=Path, default=None, help="segment in this folder and keep it: frames/, "
                                                                "out/ (its masks)")
    parser.add_argument("--cache", default=None, help="$FLOWRVS_CACHE of the runs (default FOLDER-cache: the umT5 "
                                                      "bf16 copy kept between runs, embeddings cleared; off: none)")
    parser.add_argument("--segment-runs", type=int, default=1, help="run segment this many times on the same frames "
                                                                     "(the spread of its wall time; later runs' masks "
                                                                     "compared with the first's)")
    parser.add_argument("--agree-with", type=Path, default=None, help="another `flowrvs segment` output of the same "
                                                                      "frames: report the pixels whose masks agree")
    parser.add_argument("--run-part", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--peaks-now", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.preset = args.preset or DEFAULT_PRESET[args.method]
    if args.method == "rem":
        return rem_main(args, argv, parser)
    if args.folder is None:
        parser.error("--folder is required for --method flowrvs")
    args.frames = 17 if args.frames is None else args.frames
    args.size = args.size or "240x416"
    size = parse_size(args.size)
    global MAX_RSS_BYTES
    MAX_RSS_BYTES = int(args.max_rss_gb * 2**30) if args.max_rss_gb else None

    if args.run_part:  # a part's own process, its allocator set as the `flowrvs` program sets it
        from flowrvs.runtime.memory import keep_freed_memory

        keep_freed_memory()
        print(json.dumps(run_part(args.run_part, args.folder, args.device, args.dtype, args.frames, size, args.profile,
                                  peaks_of=args.preset if args.peaks_now else None)))
        return 0
    if (args.frames - 1) % 4 or size[0] % 16 or size[1] % 16:
        raise SystemExit("--frames must be 4k+1 and --size sides multiples of 16")
    if args.segment_runs < 1:
        raise SystemExit("--segment-runs must be at least 1")
    if not (args.folder / "model_index.json").is_file():
        start = time.perf_counter()
        sizes = build_model_folder(args.preset, args.folder, dvi=args.dvi)
        print(f"built {args.folder} in {time.perf_counter() - start:.0f} s: "
              + ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in sizes.items()), flush=True)

    from flowrvs.runtime.precision import choose_precision

    header = _header(args, argv, choose_precision(args.device, args.dtype).describe())
    os.environ[CACHE_ENV] = args.cache or str(args.folder.with_name(args.folder.name + "-cache"))
    results = []
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    if {"text", "segment"} & set(wanted):
        header["text_copy"] = prepare_text_copy(args)
        print(f"umT5 layers' copy in {header['text_copy']['cache']}: {header['text_copy']['seconds']:.1f} s", flush=True)
    for part in wanted:
        if part == "segment" and args.keep:
            new = run_segments(args, args.keep)
        elif part == "segment":
            with tempfile.TemporaryDirectory(prefix="flowrvs-fullsize-") as work:
                new = run_segments(args, Path(work))
        elif args.in_process:
            new = [run_part(part, args.folder, args.device, args.dtype, args.frames, size, args.profile,
                            peaks_of=args.preset if args.peaks else None)]
        else:
            new = [part_in_subprocess(part, args)]
        results += new
        for result in new:
            print(json.dumps(result), flush=True)
    text = report(results, header)
    rows = efficiency(results, args, size, json.loads(args.peaks.read_text())) if args.peaks else []
    text += ("\n\n" + efficiency_report(rows)) if rows else ""
    text += ("\n\n" + profile_report(results)) if args.profile else ""
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "results": results, "efficiency": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

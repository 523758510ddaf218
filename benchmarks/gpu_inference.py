"""Full-size inference on a GPU: peak memory of one long video, and throughput against the public loop.

    python benchmarks/gpu_inference.py --folder /tmp/flowrvs-gpu --json gpu_inference.json   # H200: ~5 min
    python benchmarks/gpu_inference.py --preset tiny --folder /tmp/tiny --device cpu          # seconds

The one script to run when a GPU is lent (issue 15, point 5). On a random-weight model folder
of the preset (built when missing by ``benchmarks/fullsize.py``'s builder; the umT5 shards in
bfloat16 by default, half the bytes to write, and what CUDA computes in anyway), with
synthetic frames (a disc and a square moving over a gradient), it measures:

1. ``--frames`` frames (81) at ``--size`` (480x832), one sentence: wall time and peak GPU
   memory (``torch.cuda.max_memory_allocated``, reset before each run) of flowrvs over the
   whole video in one pass (``window=0``, the public code's mode) and in its default
   windowed mode; the sentences' embeddings are encoded first (streamed umT5, cold embedding
   cache) and timed on their own.
2. ``--sentences`` sentences (5) of the same video: flowrvs (video encoded once, sentences
   batched, embeddings cached, whole video) against a straightforward re-statement of the public
   inference loop written here (:func:`public_masks`: per sentence, a resident umT5, the video
   encoded again, the DiT stepped at the public integer timesteps by diffusers'
   ``FlowMatchEulerDiscreteScheduler``, clamped VAE decode, bilinear resize, threshold 0; every
   part resident on the device) on the same weights: the speed ratio and whether the masks
   are identical (and how many pixels differ when not).

Prints a markdown block headed by the machine (GPU name, or ``lscpu`` model name), torch
version, date and command; ``--json`` writes the figures too (after each stage, so a run cut
short leaves what it measured). Weights are random: time and memory do not depend on them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SENTENCES = (
    "the person in the red jacket walking to the left",
    "the red circle moving to the right",
    "the blue square at the bottom",
    "a dog running across the grass",
    "the car that turns left at the end",
)
TINY_DEFAULTS = {"frames": 9, "size": "32x48"}
FULL_DEFAULTS = {"frames": 81, "size": "480x832"}
TARGET_PEAK_GB = 12.0  # issue 15: 81 frames at 480x832, one sentence (the public code: about 33 GB)
TARGET_SPEEDUP = 2.0  # issue 15: a 5-sentence video against the public loop


def load_fullsize():
    """``benchmarks/fullsize.py`` as a module (its folder builder and report helpers)."""
    spec = importlib.util.spec_from_file_location("flowrvs_bench_fullsize", REPO / "benchmarks" / "fullsize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- inputs --------------------------------------------------------------------------------
def synthetic_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a red disc moving right and a blue square moving left over a gradient."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1), np.full_like(xx, 0.5)], -1) * 120 + 60
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    radius, half = max(height // 8, 2), max(height // 10, 2)
    for i in range(num_frames):
        phase = i / max(num_frames - 1, 1)
        image = background.copy()
        cy, cx = height * 0.4, width * (0.15 + 0.7 * phase)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = (220, 40, 40)
        sy, sx = height * 0.7, width * (0.85 - 0.7 * phase)
        image[(np.abs(yy - sy) <= half) & (np.abs(xx - sx) <= half)] = (40, 60, 220)
        frames[i] = image.clip(0, 255).astype(np.uint8)
    return frames


# ---- the public loop, re-stated from its documented behaviour ------------------------------
@torch.no_grad()
def public_masks(transformer, vae, text_encoder, tokenizer, frames: np.ndarray, sentence: str, *, box: tuple[int, int],
                 text_len: int, mask_latent_normalized: bool, num_steps: int = 1, shift: float = 3.0,
                 t_end: float = 0.001, device: torch.device) -> np.ndarray:
    """The public FlowRVS inference of one sentence: ``(T, H, W)`` bool masks of ``frames``
    ``(T, H, W, 3)`` uint8. Every part is resident on ``device`` in its own dtype; nothing is
    shared between sentences (the video is encoded again for each).

    PIL bilinear resize into the box by ``s = min(BH / h, BW / w)``, sides floored to multiples
    of 16; pixels ``(x / 255 - 0.5) / 0.5``; padded to 4k+1 frames with the last; the VAE's
    posterior mean normalised by the latent mean and std; umT5 on the sentence padded to
    ``text_len`` with its attention mask, zeroed past the real tokens; the DiT (the video latent
    concatenated on channels when it takes 32) at ``round(1000 * shift(linspace(1, t_end,
    N + 1)))[:N]``, stepped by diffusers' flow-matching Euler scheduler down to sigma 0 from the
    video latent; diffusers' VAE decode (clamped to [-1, 1]); bilinear resize to the frame size;
    foreground where > 0.
    """
    import torch.nn.functional as F
    from diffusers import FlowMatchEulerDiscreteScheduler
    from PIL import Image

    t, h, w = frames.shape[:3]
    s = min(box[0] / h, box[1] / w)
    size = (max(math.floor(h * s) // 16 * 16, 16), max(math.floor(w * s) // 16 * 16, 16))
    images = [Image.fromarray(f).resize((size[1], size[0]), Image.BILINEAR) for f in frames]
    x = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 for im in images])
    x = (x - 0.5) / 0.5
    padded = 4 * math.ceil((t - 1) / 4) + 1
    x = torch.cat([x] + [x[-1:]] * (padded - t)).permute(1, 0, 2, 3)[None].to(device, vae.dtype)

    z = vae.encode(x).latent_dist.mean
    mean = torch.tensor(vae.config.latents_mean, device=device, dtype=z.dtype).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=device, dtype=z.dtype).view(1, -1, 1, 1, 1)
    z_video = (z - mean) / std
    del x, z

    tokens = tokenizer([sentence], padding="max_length", max_length=text_len, truncation=True,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    ids, attention = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    text = text_encoder(ids, attention_mask=attention).last_hidden_state
    text = (text * attention[..., None].to(text.dtype)).to(transformer.dtype)

    grid = torch.linspace(1.0, t_end, num_steps + 1)
    timesteps = torch.round(1000 * (shift * grid / (1 + (shift - 1) * grid)))[:num_steps]
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(sigmas=(timesteps / 1000).tolist(), timesteps=timesteps.tolist(), device=device)
    dvi = transformer.config.in_channels == 2 * transformer.config.out_channels
    latent = z_video
    for step in scheduler.timesteps:
        hidden = torch.cat([latent, z_video], dim=1) if dvi else latent
        v = transformer(hidden_states=hidden.to(transformer.dtype), timestep=step.expand(1),
                        encoder_hidden_states=text, return_dict=False)[0]
        latent = scheduler.step(v, step, latent, return_dict=False)[0]

    if mask_latent_normalized:
        latent = latent * std + mean
    out = vae.decode(latent.to(vae.dtype)).sample[0, 0, :t].float()  # diffusers clamps to [-1, 1]
    if tuple(out.shape[-2:]) != (h, w):
        out = F.interpolate(out[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return (out > 0).cpu().numpy()


# ---- measuring -----------------------------------------------------------------------------
class Meter:
    """Wall seconds and peak device memory of a block (``with Meter(device) as m: ...``)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: float | None = None
        self.peak_gpu_bytes: int | None = None

    def __enter__(self) -> "Meter":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_gpu_bytes = torch.cuda.max_memory_allocated(self.device)
        self.seconds = time.perf_counter() - self._start

    def figures(self) -> dict:
        return {"wall_s": self.seconds, "peak_gpu_bytes": self.peak_gpu_bytes}


def gb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e9:.2f} GB ({n / 2**30:.2f} GiB)"


def report(figures: dict) -> str:
    h = figures["header"]
    lines = [f"- machine: {h['machine']}; torch {h['torch']}, diffusers {h['diffusers']}; {h['date']}",
             f"- command: `{h['command']}`",
             f"- model: {h['model']} (random weights, preset {h['preset']}); {h['frames']} frames at {h['size']}; "
             f"{h['steps']} Euler step(s); dtypes {h['dtypes']}"]
    if "build_s" in h:
        lines.append(f"- model folder built in {h['build_s']:.0f} s; pipeline loaded in {h['load_s']:.1f} s")
    text = figures.get("text_cold")
    if text:
        lines.append(f"- umT5 streamed, {text['sentences']} sentences, cold embedding cache: {text['wall_s']:.2f} s, "
                     f"peak {gb(text['peak_gpu_bytes'])}")
    one = figures.get("one_sentence", {})
    if one:
        lines += ["", f"One sentence, {h['frames']} frames at {h['size']} (embedding cached):", "",
                  "| mode | wall s | peak GPU memory |", "|---|---|---|"]
        for name, r in one.items():
            lines.append(f"| {name} | {r['wall_s']:.2f} | {gb(r['peak_gpu_bytes'])} |")
        whole = one.get("whole video (window=0)", {}).get("peak_gpu_bytes")
        if whole is not None:
            verdict = "meets" if whole <= TARGET_PEAK_GB * 1e9 else "misses"
            lines.append(f"\nWhole-video peak {whole / 1e9:.2f} GB {verdict} the target of ≤ {TARGET_PEAK_GB:.0f} GB.")
    tp = figures.get("throughput")
    if tp:
        lines += ["", f"{tp['sentences']} sentences of the same video (whole video, 1 step):", "",
                  "| loop | wall s | peak GPU memory |", "|---|---|---|",
                  f"| flowrvs (video encoded once, batch {tp['batch_size']}, embeddings cached) | "
                  f"{tp['flowrvs']['wall_s']:.2f} | {gb(tp['flowrvs']['peak_gpu_bytes'])} |",
                  f"| public loop re-stated (per sentence: umT5 resident, video encoded again) | "
                  f"{tp['public']['wall_s']:.2f} | {gb(tp['public']['peak_gpu_bytes'])} |",
                  "",
                  f"Speed-up {tp['speedup']:.2f}x (target ≥ {TARGET_SPEEDUP:.0f}x); counting flowrvs' cold "
                  f"umT5 pass too: {tp['speedup_with_cold_text']:.2f}x. Masks identical: "
                  f"{'yes' if tp['masks_identical'] else 'no'} ({tp['differing_pixels']} of {tp['pixels']} pixels "
                  f"differ; foreground fraction per sentence {', '.join(f'{f:.3f}' for f in tp['foreground'])})."]
    return "\n".join(lines)


def save(figures: dict, path: Path | None) -> None:
    if path is not None:
        from flowrvs.io.atomic import write_json

        write_json(path, figures, indent=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan2.1-1.3b", help="model shape of a folder built here (wan2.1-1.3b, small, tiny)")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "flowrvs-gpu-model",
                        help="random-weight model folder (built when missing)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=None, help="default 81 (tiny: 9)")
    parser.add_argument("--size", default=None, help="HxW of the frames and the box (default 480x832; tiny: 32x48)")
    parser.add_argument("--sentences", type=int, default=len(SENTENCES), choices=range(1, len(SENTENCES) + 1))
    parser.add_argument("--steps", type=int, default=1, help="Euler steps (the public release: 1)")
    parser.add_argument("--text-dtype", default="bfloat16", choices=["bfloat16", "float32"],
                        help="dtype of the umT5 shards of a folder built here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    defaults = TINY_DEFAULTS if args.preset == "tiny" else FULL_DEFAULTS
    frames_n = args.frames or defaults["frames"]
    size_text = args.size or defaults["size"]
    fullsize = load_fullsize()
    height, width = fullsize.parse_size(size_text)
    if height % 16 or width % 16 or frames_n < 1:
        raise SystemExit("--size sides must be multiples of 16 and --frames positive")
    device = torch.device(args.device)

    # a cold embedding cache of this run's own, so the first encode pays the streamed umT5 pass
    os.environ["FLOWRVS_CACHE"] = tempfile.mkdtemp(prefix="flowrvs-gpu-cache-")
    import diffusers

    from flowrvs.pipelines.loader import load_pipeline
    from flowrvs.pipelines.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW

    header = {"machine": fullsize.machine(args.device), "torch": torch.__version__, "diffusers": diffusers.__version__,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python benchmarks/gpu_inference.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "preset": args.preset, "model": str(args.folder), "frames": frames_n, "size": f"{height}x{width}",
              "steps": args.steps, "device": str(device)}
    figures: dict = {"header": header}
    if not (args.folder / "model_index.json").is_file():
        start = time.perf_counter()
        sizes = fullsize.build_model_folder(args.preset, args.folder, text_dtype=args.text_dtype)
        header["build_s"] = time.perf_counter() - start
        header["weights_gb"] = {k: v / 1e9 for k, v in sizes.items()}
        print(f"built {args.folder} in {header['build_s']:.0f} s", flush=True)
    else:
        header["build_s"] = 0.0

    start = time.perf_counter()
    pipe = load_pipeline(args.folder, device=device, dtype="auto")
    pipe.set_progress_bar_config(disable=True)
    header["load_s"] = time.perf_counter() - start
    header["dtypes"] = f"DiT {str(pipe.transformer.dtype)[6:]}, VAE {str(pipe.vae.dtype)[6:]}"
    frames = synthetic_frames(frames_n, height, width)
    sentences = list(SENTENCES[: args.sentences])
    box = (height, width)
    save(figures, args.json)

    with Meter(device) as meter:
        pipe.encode_prompt(sentences)  # streamed umT5, then dropped; embeddings land in the cache
    figures["text_cold"] = {"sentences": len(sentences), **meter.figures()}
    print(json.dumps({"text_cold": figures["text_cold"]}), flush=True)

    one = figures["one_sentence"] = {}
    for name, window in (("whole video (window=0)", 0), (f"windowed ({DEFAULT_WINDOW}:{DEFAULT_OVERLAP}, default)", DEFAULT_WINDOW)):
        with Meter(device) as meter:
            pipe(frames, prompt=sentences[:1], num_inference_steps=args.steps, size=box, window=window)
        one[name] = meter.figures()
        print(json.dumps({name: one[name]}), flush=True)
        save(figures, args.json)

    with Meter(device) as ours_meter:
        ours = pipe(frames, prompt=sentences, num_inference_steps=args.steps, size=box, window=0,
                    batch_size=len(sentences))
    print(json.dumps({"flowrvs": ours_meter.figures()}), flush=True)

    from transformers import UMT5EncoderModel

    text_dtype = pipe.transformer.dtype  # bf16 on CUDA, as the public code runs umT5
    text_encoder = UMT5EncoderModel.from_pretrained(args.folder / "text_encoder", dtype=text_dtype).to(device).eval()
    settings = pipe.config
    if settings.source != "video" or settings.prediction != "velocity":
        raise SystemExit("the public loop re-stated here starts from the video latent and predicts a velocity")
    with Meter(device) as public_meter:
        theirs = [public_masks(pipe.transformer, pipe.vae, text_encoder, pipe.tokenizer, frames, s, box=box,
                               text_len=settings.text_len, mask_latent_normalized=settings.mask_latent_normalized,
                               num_steps=args.steps, shift=settings.flow_shift, device=device) for s in sentences]
    print(json.dumps({"public": public_meter.figures()}), flush=True)
    del text_encoder

    differing = sum(int((a != b).sum()) for a, b in zip(ours.masks, theirs))
    figures["throughput"] = {
        "sentences": len(sentences), "batch_size": len(sentences),
        "flowrvs": ours_meter.figures(), "public": public_meter.figures(),
        "speedup": public_meter.seconds / ours_meter.seconds,
        "speedup_with_cold_text": public_meter.seconds / (ours_meter.seconds + figures["text_cold"]["wall_s"]),
        "masks_identical": differing == 0 and all(a.shape == b.shape for a, b in zip(ours.masks, theirs)),
        "differing_pixels": differing, "pixels": int(sum(m.size for m in theirs)),
        "foreground": [float(m.mean()) for m in theirs],
    }
    save(figures, args.json)
    print(report(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cost of a mask: parameters, FLOPs and activation peak of each part of FlowRVS inference.

Counts work, it does not time it: every part of the real configuration (the preset's configs,
by default the Wan 2.1 T2V 1.3B release) is built on the ``meta`` device, so no weight is
allocated, and run under :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and
convolutions; elementwise work is not counted) with attention counted by formula as a fused
kernel runs it (:class:`FusedAttention`). The activation peak is the most
bytes of tensors the part's own operators hold alive at once (weights excluded), tracked by a
dispatch mode over the same meta run. The numbers are deterministic: the same configuration and
sizes give the same figures on any machine.

Parts: text encoder (umT5, one sentence of ``--tokens`` real tokens), VAE encoder (the video,
once), DiT (one Euler step, one sentence; cross-attending to ``text_len`` padded tokens), mask
decoder (one sentence). A video of S sentences and N steps costs
``S*text + encode + S*(N*dit + decode)``; one more sentence costs ``text + N*dit + decode``, one
more step ``S*dit``.

``--method rem`` counts REM (ReferEverything) on the stock Wan2.1-T2V-14B (preset ``wan2.1-14b``):
the DiT with 16 input channels, one pass at timestep 0 cross-attending to REM's 77 padded
tokens, the stock 3-channel VAE decoder, frames at REM's 512x512. ``--frames`` is then the
video's length: it runs in REM's clips (:func:`flowrvs.pipelines.windows.plan_clips`, each of
the longest clip length that fits; a tail clip is run at full length), so a video of S sentences
in K clips costs ``S*text + K*(encode + S*(dit + decode))``. REM's settings are read from
:class:`flowrvs.pipelines.pipeline_rem.REMPipeline`'s defaults, never restated here.

    python benchmarks/cost.py --frames 17 81 --size 480x832 240x416 --sentences 1 --steps 1
    python benchmarks/cost.py --method rem                    # one 73-frame clip at 512x512
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import weakref
from dataclasses import asdict, dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from flowrvs.io.frames import padded_length
from flowrvs.pipelines.pipeline_rem import REMPipeline
from flowrvs.pipelines.windows import REM_CLIP_LENGTHS, plan_clips
from flowrvs.presets import METHODS, build_text_encoder, build_transformer, build_vae, preset_config
from flowrvs.runtime.precision import PartPrecision, apply_part_precision

DEFAULT_PRESET = {"flowrvs": "wan2.1-1.3b", "rem": "wan2.1-14b"}
KERNEL_OPS = {  # operator names (without ``aten::``/overload) of each kernel kind
    "gemm": ("mm", "addmm", "bmm", "baddbmm", "linear", "matmul", "mkldnn_linear", "_mkl_linear"),
    "conv": ("convolution", "_convolution", "mkldnn_convolution", "conv2d", "conv3d", "slow_conv3d"),
    "copy": ("copy_", "_to_copy", "contiguous", "clone", "cat", "constant_pad_nd", "fill_", "zero_"),
}


def kind_of(op_name: str) -> str:
    """The kernel kind of an operator (``aten::addmm``, ``aten.convolution.default``): ``gemm``,
    ``conv``, ``attention``, ``copy`` (casts, layout copies, concatenation, padding) or ``other``
    (elementwise, norms, reductions). The kinds ``benchmarks/kernel_peak.py`` measures peaks of
    are ``gemm``, ``conv`` and ``attention``."""
    name = op_name.replace("aten::", "").replace("aten.", "").split(".")[0]
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention"
    return next((kind for kind, names in KERNEL_OPS.items() if name in names), "other")


class LiveBytes(TorchDispatchMode):
    """The peak bytes of tensors created by operators and still referenced (views and in-place results not counted twice)."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.is_view or func._schema.is_mutable:
            return out
        inputs = {id(a) for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
        for tensor in torch.utils._pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and id(tensor) not in inputs:
                nbytes = tensor.numel() * tensor.element_size()
                self.live += nbytes
                weakref.finalize(tensor, self._release, nbytes)
        self.peak = max(self.peak, self.live)
        return out


class FusedAttention(TorchFunctionMode):
    """Attention as a fused kernel runs it: ``4 * B * heads * L_q * L_k * head_dim`` FLOPs (the two
    matmuls), and no score matrix held (on ``meta`` PyTorch would otherwise take its math path,
    which materialises ``(B, heads, L_q, L_k)``)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.nn.functional.scaled_dot_product_attention:
            return func(*args, **kwargs)
        names = ("query", "key", "value")
        query, key, value = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
        *batch, l_q, d = query.shape
        self.flops += 2 * query[..., 0].numel() * key.shape[-2] * (d + value.shape[-1])
        return torch.empty(*batch, l_q, value.shape[-1], device=query.device, dtype=query.dtype)


@dataclass
class PartCost:
    """One part: ``params`` (count), ``flops`` (one call), ``activation_bytes`` (peak of one call),
    ``flops_by_kind`` (``flops`` split by :func:`kind_of`)."""

    part: str
    params: int
    flops: int
    activation_bytes: int
    flops_by_kind: dict[str, int]


def measure(part: str, module: torch.nn.Module, call) -> PartCost:
    """Run ``call()`` once under the FLOP counter (attention by :class:`FusedAttention`) and the
    live-bytes tracker."""
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter, LiveBytes() as tracker, FusedAttention() as attention:
            call()
    by_kind: dict[str, int] = {"attention": attention.flops} if attention.flops else {}
    for op, count in counter.get_flop_counts().get("Global", {}).items():
        by_kind[kind_of(str(op))] = by_kind.get(kind_of(str(op)), 0) + count
    flops = counter.get_total_flops() + attention.flops
    return PartCost(part, sum(p.numel() for p in module.parameters()), flops, tracker.peak, by_kind)


def latent_shape(vae, frames: int, height: int, width: int) -> tuple[int, ...]:
    """``(1, C, T', h, w)`` of a ``frames``-frame clip (padded to 4k+1) at ``height x width``."""
    scale_t = 2 ** sum(vae.config.temperal_downsample)
    scale_s = 2 ** len(vae.config.temperal_downsample)
    return (1, vae.config.z_dim, (padded_length(frames) - 1) // scale_t + 1, height // scale_s, width // scale_s)


def part_costs(preset: str, frames: int, height: int, width: int, tokens: int, dvi: bool = False,
               dtype=torch.bfloat16) -> list[PartCost]:
    """The four parts of one clip at ``height x width`` (the working size), ``tokens`` real tokens.

    dvi: a DiT with Direct Video Injection (32 input channels; the 2025 release), else the 2026 one."""
    meta = torch.device("meta")
    text_len = int(preset_config(preset, "pipeline")["text_len"])
    text = build_text_encoder(preset, device=meta).to(dtype)
    vae = build_vae(preset, device=meta).to(dtype)
    dit = build_transformer(preset, dvi=dvi, device=meta).to(dtype)
    video = torch.empty(1, 3, padded_length(frames), height, width, device=meta, dtype=dtype)
    z = torch.empty(latent_shape(vae, frames, height, width), device=meta, dtype=dtype)
    ids = torch.zeros(1, tokens, dtype=torch.long, device=meta)
    embeds = torch.empty(1, text_len, text.config.d_model, device=meta, dtype=dtype)
    timestep = torch.full((1,), 1000.0, device=meta)
    dit_input = torch.cat([z, z], 1) if dvi else z
    return [
        measure("text encoder", text, lambda: text(input_ids=ids).last_hidden_state),
        measure("VAE encoder", vae.encoder, lambda: vae.encode(video).latent_dist.mode()),
        measure("DiT step", dit, lambda: dit(hidden_states=dit_input, timestep=timestep, encoder_hidden_states=embeds,
                                            return_dict=False)[0]),
        measure("mask decoder", vae.decoder, lambda: vae.decode(z).sample),
    ]


# ---- REM ----------------------------------------------------------------------------------
def rem_settings() -> dict:
    """REM's inference plan as flowrvs defines it: ``size`` ``(H, W)`` and ``text_len`` (the
    defaults of :class:`~flowrvs.pipelines.pipeline_rem.REMPipeline`), ``clip_lengths``
    (:data:`~flowrvs.pipelines.windows.REM_CLIP_LENGTHS`, longest first)."""
    defaults = inspect.signature(REMPipeline.__init__).parameters
    return {"size": tuple(int(n) for n in defaults["size"].default), "text_len": int(defaults["text_len"].default),
            "clip_lengths": tuple(int(n) for n in REM_CLIP_LENGTHS)}


def rem_clips(frames: int) -> tuple[int, list[tuple[int, int, int]]]:
    """``(clip length, [(start, stop, context), ...])`` of a ``frames``-frame video in REM's clips.

    A video shorter than the shortest clip length is one clip padded up to it (as the pipeline does)."""
    clips = plan_clips(frames, rem_settings()["clip_lengths"])
    length = max(len(clips[0]), min(rem_settings()["clip_lengths"]))
    return length, [(c.start, c.stop, c.context) for c in clips]


def build_rem_parts(preset: str, precision: PartPrecision | None = None, device="meta") -> dict[str, torch.nn.Module]:
    """REM's model: ``text encoder`` (umT5), ``vae`` (stock, 3-channel decoder) and ``dit`` (stock,
    16 input channels), on ``device`` (``meta``: nothing allocated); ``precision`` applied to each
    as :func:`flowrvs.runtime.precision.apply_part_precision` does (the fp32 modules of the Wan DiT kept)."""
    parts = {"text encoder": build_text_encoder(preset, device=device), "vae": build_vae(preset, device=device, mask_decoder=False),
             "dit": build_transformer(preset, dvi=False, device=device)}
    if precision is not None:
        for module in parts.values():
            apply_part_precision(module, precision)
    return parts


def rem_part_costs(preset: str, frames: int, height: int, width: int, tokens: int,
                   dtype: torch.dtype = torch.bfloat16) -> list[PartCost]:
    """REM's four parts on one clip of ``frames`` frames (a REM clip length) at ``height x width``.

    Inputs: video ``(1, 3, frames, H, W)``, latent ``(1, 16, (frames-1)/4+1, H/8, W/8)``, ``tokens``
    real tokens for umT5, ``(1, text_len, 4096)`` padded embeddings and timestep 0 for the DiT."""
    meta = torch.device("meta")
    parts = build_rem_parts(preset, PartPrecision(dtype, dtype), device=meta)
    text, vae, dit = parts["text encoder"], parts["vae"], parts["dit"]
    video = torch.empty(1, 3, padded_length(frames), height, width, device=meta, dtype=dtype)
    z = torch.empty(latent_shape(vae, frames, height, width), device=meta, dtype=dtype)
    ids = torch.zeros(1, tokens, dtype=torch.long, device=meta)
    embeds = torch.empty(1, rem_settings()["text_len"], text.config.d_model, device=meta, dtype=dtype)
    timestep = torch.zeros(1, device=meta)  # REM: one pass at t = 0, no noise
    return [
        measure("text encoder", text, lambda: text(input_ids=ids).last_hidden_state),
        measure("VAE encoder", vae.encoder, lambda: vae.encode(video).latent_dist.mode()),
        measure("DiT pass (t=0)", dit, lambda: dit(hidden_states=z, timestep=timestep, encoder_hidden_states=embeds,
                                                  return_dict=False)[0]),
        measure("mask decoder (3-channel)", vae.decoder, lambda: vae.decode(z).sample),
    ]


def rem_video_cost(parts: list[PartCost], frames: int, clips: int, sentences: int) -> dict:
    """Totals of a ``frames``-frame video in ``clips`` REM clips with ``sentences`` sentences."""
    text, encode, dit, decode = (p.flops for p in parts)
    per_sentence = text + clips * (dit + decode)
    total = clips * encode + sentences * per_sentence
    return {"total_flops": total, "flops_per_frame": total / frames, "one_more_sentence_flops": per_sentence,
            "one_more_clip_flops": encode + sentences * (dit + decode),
            "peak_activation_bytes": max(p.activation_bytes for p in parts)}


def rem_report(preset: str, frames: int, size: tuple[int, int], sentences: int, tokens: int) -> dict:
    """One row of ``--method rem``: the parts of one clip and the totals of the video."""
    length, clips = rem_clips(frames)
    parts = rem_part_costs(preset, length, *size, tokens)
    return {"method": "rem", "preset": preset, "frames": frames, "clip_frames": length, "clips": clips,
            "size": list(size), "sentences": sentences, "steps": 1, "tokens": tokens,
            "text_len": rem_settings()["text_len"], "parts": [asdict(p) for p in parts],
            **rem_video_cost(parts, frames, len(clips), sentences)}


def video_cost(parts: list[PartCost], frames: int, sentences: int, steps: int) -> dict:
    """Totals for ``sentences`` sentences and ``steps`` Euler steps, and the marginal costs."""
    flops = {p.part: p.flops for p in parts}
    per_sentence = flops["text encoder"] + steps * flops["DiT step"] + flops["mask decoder"]
    total = flops["VAE encoder"] + sentences * per_sentence
    return {
        "total_flops": total,
        "flops_per_frame": total / frames,
        "one_more_sentence_flops": per_sentence,
        "one_more_step_flops": sentences * flops["DiT step"],
        "peak_activation_bytes": max(p.activation_bytes for p in parts),
    }


def parse_size(text: str) -> tuple[int, int]:
    """``HxW``, both multiples of 16 (the working sizes the model takes)."""
    h, sep, w = text.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0 and int(h) % 16 == 0 == int(w) % 16):
        raise argparse.ArgumentTypeError(f"size must be HxW in multiples of 16, got {text!r}")
    return int(h), int(w)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def report(preset: str, frames: int, size: tuple[int, int], sentences: int, steps: int, tokens: int,
           dvi: bool = False) -> dict:
    parts = part_costs(preset, frames, *size, tokens, dvi=dvi)
    return {"preset": preset, "frames": frames, "size": list(size), "sentences": sentences, "steps": steps,
            "tokens": tokens, "dvi": dvi, "parts": [asdict(p) for p in parts],
            **video_cost(parts, frames, sentences, steps)}


def _total_line(row: dict) -> str:
    """The bold totals row of one video: FLOPs in all, per frame, and the marginal costs."""
    per = f"{row['total_flops'] / 1e9:,.1f} ({row['flops_per_frame'] / 1e9:,.1f} per frame; " \
          f"+{row['one_more_sentence_flops'] / 1e9:,.1f} a sentence"
    if row.get("method") == "rem":
        what = f"video of {row['frames']} frames: {len(row['clips'])} clip(s) of {row['clip_frames']}, " \
               f"{row['sentences']} sentence(s), 1 pass"
        return f"| **{what}** | | {per}, +{row['one_more_clip_flops'] / 1e9:,.1f} a clip) | |"
    what = f"video, {row['sentences']} sentence(s), {row['steps']} step(s)"
    return f"| **{what}** | | {per}, +{row['one_more_step_flops'] / 1e9:,.1f} a step) | |"


def markdown(rows: list[dict]) -> str:
    """One table: a line per part of each clip (params, GFLOP, activation peak), then its video's totals."""
    lines = ["| clip | part | params | GFLOP | activation peak (MiB) |", "|---|---|---|---|---|"]
    for row in rows:
        clip = f"{row.get('clip_frames', row['frames'])}x{row['size'][0]}x{row['size'][1]}"
        for p in row["parts"]:
            lines.append(f"| {clip} | {p['part']} | {p['params'] / 1e6:.1f} M | {p['flops'] / 1e9:,.1f} | "
                         f"{p['activation_bytes'] / 2**20:,.0f} |")
        lines.append(f"| {clip} " + _total_line(row))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with each method's defaults filled in; bad input exits 2 with one line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=METHODS, default="flowrvs")
    parser.add_argument("--preset", default=None, help="default: wan2.1-1.3b (flowrvs), wan2.1-14b (rem)")
    parser.add_argument("--frames", type=positive, nargs="+", default=None,
                        help="clip frames (flowrvs; default 17 81) or video frames run in REM's clips (rem; default 73)")
    parser.add_argument("--size", type=parse_size, nargs="+", default=None,
                        help="HxW working sizes (default 480x832 240x416; rem: REM's 512x512)")
    parser.add_argument("--sentences", type=positive, default=1)
    parser.add_argument("--steps", type=positive, default=1, help="Euler steps (flowrvs; REM runs one pass)")
    parser.add_argument("--tokens", type=positive, default=12, help="real tokens of a sentence (umT5)")
    parser.add_argument("--dvi", action="store_true", help="a DiT with Direct Video Injection (the 2025 release)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args(argv)
    args.preset = args.preset or DEFAULT_PRESET[args.method]
    if args.method == "rem":
        if args.steps != 1 or args.dvi:
            parser.error("--method rem runs one DiT pass at timestep 0 on the stock DiT: no --steps, no --dvi")
        settings = rem_settings()
        args.frames = args.frames or [max(settings["clip_lengths"])]
        args.size = args.size or [settings["size"]]
    else:
        args.frames = args.frames or [17, 81]
        args.size = args.size or [(480, 832), (240, 416)]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # the meta copies are cast whole on purpose: FLOPs do not depend on it
    if args.method == "rem":
        rows = [rem_report(args.preset, f, s, args.sentences, args.tokens) for f in args.frames for s in args.size]
        title = (f"REM, preset {args.preset}, bf16, {args.tokens} real tokens a sentence padded to "
                 f"{rem_settings()['text_len']}, stock DiT and 3-channel decoder, one pass at t=0 (counted on meta)")
    else:
        rows = [report(args.preset, f, s, args.sentences, args.steps, args.tokens, args.dvi)
                for f in args.frames for s in args.size]
        title = (f"FlowRVS, preset {args.preset}, bf16, {args.tokens} real tokens a sentence, "
                 f"{'DVI' if args.dvi else 'no DVI'} (counted on meta)")
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(title + "\n")
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import re

from flowrvs.errors import FlowRVSError


def parse_size(text: str) -> tuple[int, int]:
    """``"480x832"`` -> ``(480, 832)``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or min(int(match[1]), int(match[2])) < 16:
        raise FlowRVSError(f"size must look like HxW with both sides >= 16 (e.g. 480x832), got {text!r}")
    return int(match[1]), int(match[2])


DEFAULT_MODEL = "xmz111/FlowRVS"


def hub_options(args) -> dict:
    """``dit_file`` / ``base`` of the parsed arguments, for resolving a hub id."""
    return {"dit_file": getattr(args, "dit_file", None), "base": getattr(args, "base", None)}


def add_model_args(parser: argparse.ArgumentParser, steps: bool = True) -> None:
    """--model, --device, --dtype (and, with ``steps``, --steps and --mask-threshold): how a
    model is loaded and run. A command that takes :func:`add_segment_options` passes ``steps=False``."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="model folder, shipped model name (tiny-synthetic) or hub id (default: %(default)s, "
                             "the public release, converted once)")
    parser.add_argument("--dit-file", default=None,
                        help="with a hub id of a release: the DiT checkpoint's file name (default: FlowRVS_dit_mevis.pth, "
                             "then mevis_dit.pth)")
    parser.add_argument("--base", default=None,
                        help="with a hub id of a release: the Wan diffusers repository (default: Wan-AI/Wan2.1-T2V-1.3B-Diffusers)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto (default): bfloat16 on CUDA and on CPUs with native bf16, else float32 compute "
                             "(large weights stored in bfloat16)")
    parser.add_argument("--keep-text-encoder", action="store_true",
                        help="keep umT5 loaded (default: load it only for sentences not in the embedding cache, then free it)")
    parser.add_argument("--cpu-offload", action="store_true",
                        help="keep parts on the CPU and move each to the GPU only while it runs")
    if steps:
        parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's, 1)")
        parser.add_argument("--mask-threshold", type=float, default=None,
                            help="mask decoder logit above which a pixel is foreground (default: the model's)")


def add_segment_options(parser: argparse.ArgumentParser) -> None:
    """The flags of :class:`flowrvs.options.SegmentOptions`: --steps, --size, --mask-threshold,
    --window, --overlap, --batch-size (read them back with :func:`segment_options`)."""
    parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's, 1)")
    parser.add_argument("--size", default=None, help="HxW box frames are resized into (default: the model's, 480x832)")
    parser.add_argument("--mask-threshold", type=float, default=None,
                        help="mask decoder logit above which a pixel is foreground (default: the model's)")
    parser.add_argument("--window", type=int, default=None,
                        help="frames per window of a long video, 4k+1 (default: the method's plan, 17-frame windows for "
                             "FlowRVS, its clips for REM); 0 = the whole video in one pass, as the public FlowRVS code")
    parser.add_argument("--overlap", type=int, default=None,
                        help="frames neighbouring windows share, their logits cross-faded (default: 4)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per DiT pass")


_FLAGS = {"num_inference_steps": "--steps", "size": "--size", "mask_threshold": "--mask-threshold",
          "window": "--window", "overlap": "--overlap", "batch_size": "--batch-size"}
_OPTION_NAME = re.compile(r"\b(" + "|".join(_FLAGS) + r")\b")


def segment_options(args):
    """The :class:`flowrvs.options.SegmentOptions` of arguments parsed with :func:`add_segment_options`
    (validated here, once; a bad value raises :class:`FlowRVSError`)."""
    from flowrvs.options import SegmentOptions

    values = {"num_inference_steps": args.steps, "size": parse_size(args.size) if args.size else None,
              "mask_threshold": args.mask_threshold, "batch_size": args.batch_size}
    if args.window is not None:
        values["window"] = args.window
    if args.overlap is not None:
        values["overlap"] = args.overlap
    try:
        return SegmentOptions(**values)
    except FlowRVSError as err:  # name the flag the user typed, not the field
        raise FlowRVSError(_OPTION_NAME.sub(lambda m: _FLAGS[m[1]], str(err))) from err


def init_distributed(info, args) -> None:
    """Under torchrun: this rank's GPU (when CUDA is used) and a gloo process group for the barriers."""
    import torch
    import torch.distributed as dist

    if args.device in (None, "cuda") and torch.cuda.is_available():
        args.device = f"cuda:{info.local_rank}"
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("gloo")


def load_pipeline(args):
    """The pipeline the parsed arguments name (--model, --device, --dtype, --cpu-offload, ...)."""
    from flowrvs.pipelines.loader import load_pipeline as load

    return load(args.model, device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload,
                keep_text_encoder=getattr(args, "keep_text_encoder", False), **hub_options(args))

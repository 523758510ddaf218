"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import re

from ..errors import FlowRVSError


def parse_size(text: str) -> tuple[int, int]:
    """``"480x832"`` -> ``(480, 832)``."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or min(int(match[1]), int(match[2])) < 16:
        raise FlowRVSError(f"size must look like HxW with both sides >= 16 (e.g. 480x832), got {text!r}")
    return int(match[1]), int(match[2])


def add_model_args(parser: argparse.ArgumentParser, steps: bool = True) -> None:
    """--model, --device, --dtype (and --steps): how a model is loaded and run."""
    parser.add_argument("--model", required=True, help="model folder, or the name of a shipped model (tiny-synthetic)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="weights dtype (default: float32 on cpu, bfloat16 on cuda)")
    parser.add_argument("--cpu-offload", action="store_true",
                        help="keep parts on the CPU and move each to the GPU only while it runs")
    if steps:
        parser.add_argument("--steps", type=int, default=None, help="Euler steps (default: the model's, 1)")
    parser.add_argument("--mask-threshold", type=float, default=None,
                        help="mask decoder logit above which a pixel is foreground (default: the model's)")


def load_pipeline(args):
    from ..pipeline import FlowRVSPipeline

    return FlowRVSPipeline.from_pretrained(args.model, device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload)

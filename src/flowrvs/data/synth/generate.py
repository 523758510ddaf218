"""Generating one video in memory: its arguments checked, its random generator, its scene
and expressions."""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import numpy as np

from flowrvs.data.synth.grammar import make_expressions
from flowrvs.data.synth.scene import make_scene
from flowrvs.data.synth.video import SynthVideo
from flowrvs.data.synth.vocabulary import EXPRESSION_KINDS, EXPRESSION_MIX
from flowrvs.errors import FlowRVSError

DEFAULT_FRAMES = 9
DEFAULT_SIZE = (96, 160)


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """``"128x224"`` (or ``(128, 224)``) -> ``(H, W)``, validated."""
    if isinstance(text, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if not m:
            raise FlowRVSError(f"size must look like HxW (e.g. 128x224), got {text!r}")
        size = (int(m.group(1)), int(m.group(2)))
    else:
        try:
            h, w = text
            size = (int(h), int(w))
        except (TypeError, ValueError) as err:
            raise FlowRVSError(f"size must be (H, W), got {text!r}") from err
    _check_size(size)
    return size


def _check_size(size: tuple[int, int]) -> None:
    h, w = size
    if h < 16 or w < 16:
        raise FlowRVSError(f"size must be at least 16x16, got {h}x{w}")
    if h > 4096 or w > 4096:
        raise FlowRVSError(f"size must be at most 4096x4096, got {h}x{w}")


def check_frames(frames: int) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)):
        raise FlowRVSError(f"frames must be an integer, got {frames!r}")
    if frames < 1:
        raise FlowRVSError(f"frames must be at least 1, got {frames}")
    if frames > 10000:
        raise FlowRVSError(f"frames must be at most 10000, got {frames}")
    return int(frames)


def parse_mix(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"appearance=0.6,motion=0.25,..."`` or a mapping -> normalised kind fractions."""
    if text is None:
        return dict(EXPRESSION_MIX)
    if isinstance(text, str):
        mix: dict[str, float] = {k: 0.0 for k in EXPRESSION_KINDS}
        for part in text.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in mix:
                raise FlowRVSError(f"mix entries look like kind=fraction with kind in {', '.join(EXPRESSION_KINDS)}; got {part!r}")
            try:
                mix[key] = float(value)
            except ValueError as err:
                raise FlowRVSError(f"mix fraction for {key} is not a number: {value!r}") from err
    else:
        unknown = sorted(set(text) - set(EXPRESSION_KINDS))
        if unknown:
            raise FlowRVSError(f"unknown expression kind(s) in mix: {', '.join(unknown)}")
        mix = {k: float(text.get(k, 0.0)) for k in EXPRESSION_KINDS}
    if any(not math.isfinite(v) or v < 0 for v in mix.values()):
        raise FlowRVSError("mix fractions must be finite and non-negative")
    if mix["appearance"] <= 0:
        raise FlowRVSError("mix needs a positive appearance fraction (it is the fallback for every video)")
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of video ``index`` of a split generated with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def generate_video(
    rng_or_seed: np.random.Generator | int,
    frames: int = DEFAULT_FRAMES,
    size: tuple[int, int] | str = DEFAULT_SIZE,
    mix: Mapping[str, float] | str | None = None,
    name: str = "",
    returns: float = 0.0,
) -> SynthVideo:
    """Generate one video in memory (no disk): frames, visible masks and referring expressions.

    ``returns``: the chance that an object leaves the frame and comes back (absent for a stretch
    in the middle: what long-video benchmarks score with tIoU); 0, the default, draws nothing
    for it, so a seed gives the video it gave before the option existed."""
    frames = check_frames(frames)
    if isinstance(returns, bool) or not isinstance(returns, (int, float)) or not 0.0 <= returns <= 1.0:
        raise FlowRVSError(f"returns must be a probability in [0, 1], got {returns!r}")
    h, w = parse_size(size)
    mix = parse_mix(mix)
    if isinstance(rng_or_seed, np.random.Generator):
        rng = rng_or_seed
    else:
        if isinstance(rng_or_seed, bool) or not isinstance(rng_or_seed, (int, np.integer)) or rng_or_seed < 0:
            raise FlowRVSError(f"seed must be a non-negative integer, got {rng_or_seed!r}")
        rng = np.random.default_rng(int(rng_or_seed))
    objects, video, visible = make_scene(rng, frames, h, w, returns=float(returns))
    expressions, kinds = make_expressions(rng, objects, visible, frames, mix)
    return SynthVideo(frames=video, masks=visible, expressions=expressions, kinds=kinds, objects=objects, name=name)

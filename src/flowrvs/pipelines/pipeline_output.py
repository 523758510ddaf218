"""What :class:`~flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline` returns for one video."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers.utils import BaseOutput


@dataclass
class FlowRVSPipelineOutput(BaseOutput):
    """Masks of one video, one entry per prompt.

    masks[k]: the masks of prompt ``k`` at the input's frame count ``T`` and resolution
    ``(H, W)``, as ``output_type`` asked: ``"np"`` a ``(T, H, W)`` bool array, ``"pt"`` a
    ``(T, H, W)`` bool tensor, ``"pil"`` a list of ``T`` mode-``"L"`` images (0 or 255).
    prompts: the sentences, in order. frame_names: one per frame. fps: of the input.
    logits[k]: ``(T, H, W)`` float32 (the decoder's output at the input's size, in [-1, 1]
    when the model clamps it; foreground where > the threshold), an array or a tensor as
    ``output_type``, when asked for. working_size: ``(h, w)`` the frames were resized to.
    """

    masks: list[Any]
    prompts: list[str]
    frame_names: list[str]
    fps: float = 24.0
    logits: list[Any] | None = None
    working_size: tuple[int, int] = (0, 0)

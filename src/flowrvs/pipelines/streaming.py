"""Masks of a long video, frame by frame, at the memory of one window.

:func:`stream_segmentation` checks its inputs, opens the video as a stream, plans its windows
(:mod:`flowrvs.pipelines.windows`) and embeds the sentences, all before anything is iterated;
iterating the :class:`SegmentationStream` it returns runs each window through the pipeline's
stages (``encode_video`` -> ``sample`` -> ``decode``), cross-fades the logits of neighbouring
windows and yields each frame as soon as no later window touches it. The pipeline's
``__call__`` is this stream collected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from flowrvs.io.frames import fit_size, frames_to_tensor
from flowrvs.io.read import open_video
from flowrvs.options import SegmentOptions
from flowrvs.pipelines.windows import LogitBlender, Window, iter_windows

StepCallback = Callable[[Any, int, torch.Tensor, dict], dict]


@dataclass
class SegmentedFrame:
    """One finished frame of a :class:`SegmentationStream`.

    index: frame number; name: its name; frame: ``(H, W, 3)`` uint8 input frame; masks:
    ``(K, H, W)`` bool, one per prompt; logits: ``(K, H, W)`` float32 when asked for.
    """

    index: int
    name: str
    frame: np.ndarray
    masks: np.ndarray
    logits: np.ndarray | None = None


@dataclass
class _Run:
    """What every window of one stream is run with."""

    text_embeds: torch.Tensor  # (K, L, D)
    num_steps: int
    batch_size: int
    threshold: float
    return_logits: bool
    generator: torch.Generator | None
    callback: StepCallback | None
    callback_inputs: Sequence[str]


class SegmentationStream:
    """Masks of a video, frame by frame, computed window by window (:func:`stream_segmentation`).

    Known before iterating: ``prompts``, ``frame_names``, ``fps``, ``height``, ``width``,
    ``working_size`` ``(h, w)`` and the window ``plan``. Iterating decodes the video, runs each
    window through the model and yields :class:`SegmentedFrame` in order as soon as a frame is
    final, so memory is set by one window, never by the video's length. Iterate once.
    """

    def __init__(self, pipe, video, prompts: list[str], plan: list[Window], working_size: tuple[int, int], run: _Run):
        self.pipe, self._video, self._run = pipe, video, run
        self.prompts = prompts
        self.frame_names = list(video.names)
        self.fps, self.height, self.width = video.fps, video.height, video.width
        self.source = video.source
        self.working_size = working_size
        self.plan = plan

    def __len__(self) -> int:
        return len(self.frame_names)

    def _batches(self) -> list[range]:
        k, size = len(self.prompts), self._run.batch_size
        return [range(i, min(i + size, k)) for i in range(0, k, size)]

    def __iter__(self) -> Iterator[SegmentedFrame]:
        pipe, run, batches = self.pipe, self._run, self._batches()
        bar = pipe.progress_bar(total=len(self.plan) * len(batches) * (run.num_steps + 1))
        blender = LogitBlender(self.plan)
        try:
            for window, frames in iter_windows(self._video, self.plan):
                finished = blender.add(self._window_logits(window, frames, batches, bar))
                if finished:
                    yield from self._finish(finished, frames, window.start)
        finally:
            bar.close()
            pipe.maybe_free_model_hooks()

    def _window_logits(self, window: Window, frames: np.ndarray, batches: list[range], bar) -> torch.Tensor:
        """``(K * C, len(window), h, w)`` float32 decoder outputs of one window at the working
        size (C decoder channels per sentence, sentence-major)."""
        pipe, run = self.pipe, self._run
        tensor = frames_to_tensor(frames, self.working_size, resample="pil", min_frames=pipe.min_frames)
        z_video = pipe.encode_video(tensor.to(pipe.vae.dtype))
        del tensor
        logits = []
        for rows in batches:
            z_mask = pipe.sample(z_video, run.text_embeds[rows.start : rows.stop], run.num_steps, run.generator,
                                 callback_on_step_end=run.callback, callback_on_step_end_tensor_inputs=run.callback_inputs,
                                 on_step=bar.update)
            decoded = pipe.decode(z_mask).float()[:, :, : len(window)]
            logits.append(decoded.flatten(0, 1))
            bar.update()
        return torch.cat(logits)

    def _finish(self, finished, frames: np.ndarray, offset: int) -> Iterator[SegmentedFrame]:
        """Resize the final frames' decoder outputs to the input size (bilinear), average each
        sentence's channels into its logits and threshold them."""
        stacked = torch.stack([logits for _, logits in finished], dim=1)  # (K * C, n, h, w)
        kc, n = stacked.shape[:2]
        if tuple(stacked.shape[-2:]) != (self.height, self.width):
            stacked = F.interpolate(stacked.reshape(kc * n, 1, *stacked.shape[-2:]), size=(self.height, self.width),
                                    mode="bilinear", align_corners=False).reshape(kc, n, self.height, self.width)
        k = len(self.prompts)
        if kc != k:  # several decoder channels (REM's picture of the mask): their mean, after the resize
            stacked = stacked.reshape(k, kc // k, n, self.height, self.width).mean(dim=1)
        masks = (stacked > self._run.threshold).cpu().numpy()
        values = stacked.cpu().numpy() if self._run.return_logits else None
        for j, (index, _) in enumerate(finished):
            yield SegmentedFrame(index, self.frame_names[index], frames[index - offset], masks[:, j],
                                 None if values is None else values[:, j])


@torch.no_grad()
def stream_segmentation(
    pipe,
    video,
    prompt: str | Sequence[str],
    options: SegmentOptions | None = None,
    *,
    return_logits: bool = False,
    generator: torch.Generator | None = None,
    callback_on_step_end: StepCallback | None = None,
    callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
) -> SegmentationStream:
    """Segment ``video`` frame by frame at flat memory with ``pipe`` (a :class:`FlowRVSPipeline`).

    video: what :func:`flowrvs.io.read.open_video` takes (a path, a ``(T, H, W, 3)`` uint8
    array, a list of PIL images, an opened stream). prompt: one sentence or a list. options:
    :class:`SegmentOptions` (default: the model's settings and window plan). Bad input and
    the prompts' embeddings are dealt with here, before anything is iterated. The callback
    is called after every Euler step of every window and sentence batch (see the pipeline).
    """
    options = options or SegmentOptions()
    prompts = pipe.check_inputs(prompt, callback_on_step_end_tensor_inputs)
    frames = open_video(video)
    plan = pipe.plan_windows(frames.num_frames, options.window, options.overlap)
    box = options.size or tuple(pipe.config.size)
    working_size = fit_size(frames.height, frames.width, box, rule=pipe.config.resize_rule)
    run = _Run(
        text_embeds=pipe.encode_prompt(prompts),
        num_steps=options.num_inference_steps or pipe.config.num_steps,
        batch_size=options.batch_size,
        threshold=pipe.config.mask_threshold if options.mask_threshold is None else options.mask_threshold,
        return_logits=return_logits,
        generator=generator,
        callback=callback_on_step_end,
        callback_inputs=tuple(callback_on_step_end_tensor_inputs),
    )
    return SegmentationStream(pipe, frames, prompts, plan, working_size, run)

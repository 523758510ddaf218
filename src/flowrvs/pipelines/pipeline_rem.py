"""REMPipeline: REM (ReferEverything, ICCV 2025) on the loaders, plans and scorers of flowrvs.

REM fine-tunes the stock Wan 2.1 text-to-video DiT (16 input channels, no video injection)
to map the normalised latent of a video, in one pass at timestep 0, to the normalised latent
of its mask video, which the stock 3-channel Wan VAE decoder turns back into a picture of the
mask. Its public inference, which the defaults reproduce:

- frames resized to exactly 512x512 (aspect not kept) by PIL's bilinear filter, then
  ``x / 255 * 2 - 1``;
- clips of the longest of :data:`~flowrvs.pipelines.windows.REM_CLIP_LENGTHS` frames that
  fits the video, a tail clip on the last full length keeping only its new frames
  (:func:`~flowrvs.pipelines.windows.plan_clips`); videos shorter than 9 frames are padded
  with their last frame (the public code stops there);
- the prompt tokenized to at most 512 tokens, its embeddings cut to the real tokens and
  zero-padded to 77 (a longer prompt keeps its first 77, with a warning);
- ``z_mask = DiT(z_video, t=0, text)``, the latent of the mask drawn as a 3-channel 0/1 picture
  (as REM trains it), decoded from ``z_mask * std + mean``, clamped to
  [-1, 1], resized bilinearly to the frame, averaged over the 3 channels, foreground ``> 0.5``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from flowrvs.errors import FlowRVSError
from flowrvs.models.dit import dit_forward
from flowrvs.models.vae import decode_raw, denormalize_latents
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.streaming import StepCallback
from flowrvs.pipelines.windows import REM_CLIP_LENGTHS, Window, plan_clips

REM_TEXT_LEN = 77
REM_TOKENIZER_MAX_LENGTH = 512
REM_SIZE = (512, 512)


class REMPipeline(FlowRVSPipeline):
    """Referring video object segmentation by one DiT pass from the video latent (REM).

    Components as :class:`FlowRVSPipeline`, but the stock ones: ``transformer`` a
    ``WanTransformer3DModel`` with 16 input channels, ``vae`` an ``AutoencoderKLWan`` with its
    3-channel decoder. The settings are :class:`FlowRVSPipeline`'s with REM's defaults;
    ``source="video"`` and ``prediction="mask"`` are what REM is, and ``flow_shift`` and
    ``num_steps`` do not apply (one pass at timestep 0). ``window=None`` (the default of every
    command) runs REM's clips; ``window=N`` runs cross-faded windows as for FlowRVS.
    """

    tokenizer_max_length = REM_TOKENIZER_MAX_LENGTH
    min_frames = min(REM_CLIP_LENGTHS)
    benchmark_window = None  # REM's numbers come from its clips

    def __init__(
        self,
        transformer,
        vae,
        text_encoder,
        tokenizer,
        scheduler: FlowMatchEulerDiscreteScheduler | None = None,
        text_len: int = REM_TEXT_LEN,
        mask_latent_normalized: bool = True,
        flow_shift: float = 3.0,
        num_steps: int = 1,
        size=REM_SIZE,
        source: str = "video",
        prediction: str = "mask",
        mask_threshold: float = 0.5,
        clamp_logits: bool = True,
        resize_rule: str = "exact",
    ):
        """Components, then the settings (see :class:`FlowRVSPipeline`; REM's defaults)."""
        if (source, prediction, num_steps) != ("video", "mask", 1) or not mask_latent_normalized:
            raise FlowRVSError("REM maps the normalised video latent to the normalised mask latent in one pass: "
                               "source='video', prediction='mask', num_steps=1, mask_latent_normalized=True")
        super().__init__(transformer, vae, text_encoder, tokenizer, scheduler, text_len, mask_latent_normalized,
                         flow_shift, num_steps, size, source, prediction, mask_threshold, clamp_logits, resize_rule)

    def plan_windows(self, num_frames: int, window: int | None = None, overlap: int | None = None) -> list[Window]:
        """REM's clips for ``window=None``; otherwise as :meth:`FlowRVSPipeline.plan_windows`."""
        if window is None:
            return plan_clips(num_frames, REM_CLIP_LENGTHS)
        return super().plan_windows(num_frames, window, overlap)

    @torch.no_grad()
    def sample(
        self,
        z_video: torch.Tensor,
        text_embeds: torch.Tensor,
        num_inference_steps: int = 1,
        generator: torch.Generator | None = None,
        callback_on_step_end: StepCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        on_step: Callable[[], object] | None = None,
    ) -> torch.Tensor:
        """Mask latents ``(B, 16, T, h, w)``: the DiT at timestep 0 on the video latent
        ``(1, 16, T, h, w)``, one per prompt of ``text_embeds`` ``(B, L, D)``; no noise."""
        if num_inference_steps != 1:
            raise FlowRVSError(f"REM runs one DiT pass at timestep 0; steps must be 1, got {num_inference_steps}")
        batch = text_embeds.shape[0]
        x = z_video.expand(batch, -1, -1, -1, -1)
        t = torch.zeros(batch, device=x.device)
        x = dit_forward(self.transformer, x, x, t, text_embeds, dtype=self._compute_dtype("transformer"))
        if callback_on_step_end is not None:
            outputs = callback_on_step_end(self, 0, t[0], {"latents": x} if "latents" in callback_on_step_end_tensor_inputs else {})
            x = outputs.get("latents", x)
        if on_step is not None:
            on_step()
        return x

    @torch.no_grad()
    def decode(self, z_mask: torch.Tensor) -> torch.Tensor:
        """Normalised mask latents ``(B, 16, T', h, w)`` -> the decoded mask picture
        ``(B, 3, 4T'-3, 8h, 8w)`` (clamped to [-1, 1] when ``clamp_logits``; its channel mean
        is compared with ``mask_threshold``)."""
        picture = decode_raw(self.vae, denormalize_latents(self.vae, z_mask.to(self.vae.dtype)))
        if picture.shape[1] != 3:
            raise FlowRVSError(f"REM decodes with the stock 3-channel Wan decoder; this VAE has {picture.shape[1]}")
        return picture.clamp(-1.0, 1.0) if self.config.clamp_logits else picture

"""FlowRVSPipeline: video + sentences -> one mask per frame per sentence.

A diffusers :class:`~diffusers.DiffusionPipeline` holding five registered components (the Wan
DiT ``transformer``, the Wan ``vae`` with a 1-channel mask decoder, the umT5 ``text_encoder``
and its ``tokenizer``, and a ``FlowMatchEulerDiscreteScheduler``) plus its settings in the
config (``model_index.json``). Data flows one way: frames -> video latent (encoded once per
video) -> Euler solve of the learned flow, one per sentence (sentences embedded once) -> mask
latent -> mask decoder logits -> masks at the input's resolution and frame count.

By default it follows the public FlowRVS inference exactly (``resize_rule="public"``,
integer timesteps stepped by the scheduler, decoder output clamped to [-1, 1] before the
resize); ``resize_rule="oriented"`` and ``clamp_logits=False`` are flowrvs' own options.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput
from tqdm.auto import tqdm

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.flow import FlowParametrization, public_timesteps
from flowrvs.io.frames import fit_size, frames_to_tensor
from flowrvs.models.dit import dit_forward, uses_dvi
from flowrvs.models.text import PromptEncoder, check_prompts
from flowrvs.loading.model_folder import (  # noqa: F401 - model-folder names re-exported for callers of flowrvs.pipelines.pipeline_flowrvs
    INDEX_FILE,
    LARGE_MODEL_BYTES,
    MODEL_PARTS,
    NUM_TRAIN_TIMESTEPS,
    FlowRVSConfig,
    default_scheduler,
    link_or_copy_tree,
    model_fingerprint,
    weights_bytes,
    write_model_index,
)
from flowrvs.loading.resolve import resolve_model_dir
from flowrvs.models.vae import decode_mask_logits, encode_video
from flowrvs.runtime.precision import DTYPES, resolve_device_dtype  # noqa: F401 - re-exported for callers of flowrvs.pipelines.pipeline_flowrvs
from flowrvs.pipelines.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW

@dataclass
class FlowRVSPipelineOutput(BaseOutput):
    """Masks of one video, one entry per prompt.

    masks[k]: ``(T, H, W)`` bool at the input's frame count and resolution. prompts: the
    sentences, in order. frame_names: one per frame. logits[k]: ``(T, H, W)`` float32 (the
    decoder's output at the input's size, foreground where > the threshold), when asked for.
    working_size: ``(h, w)`` the frames were resized to for the model.
    """

    masks: list[np.ndarray]
    prompts: list[str]
    frame_names: list[str]
    fps: float = 24.0
    logits: list[np.ndarray] | None = None
    working_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:  # the number of prompts, not of fields
        return len(self.masks)


SegmentationResult = FlowRVSPipelineOutput  # the name before the diffusers pipeline


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


class SegmentationStream:
    """Masks of a video, frame by frame, computed window by window (:meth:`FlowRVSPipeline.stream`).

    Known before iterating: ``prompts``, ``frame_names``, ``fps``, ``height``, ``width``,
    ``working_size`` and the window ``plan``. Iterating decodes the video, runs each window
    through the model and yields :class:`SegmentedFrame` in order as soon as a frame is final,
    so memory is set by one window, never by the video's length. Iterate once.
    """

    def __init__(self, pipe: "FlowRVSPipeline", stream, prompts, text_embeds, plan, work_size, num_steps,
                 batch_size, threshold, return_logits, generator, progress):
        self.pipe, self._video = pipe, stream
        self.prompts = prompts
        self.frame_names = list(stream.names)
        self.fps, self.height, self.width = stream.fps, stream.height, stream.width
        self.source = stream.source
        self.working_size = work_size
        self.plan = plan
        self._text_embeds, self._num_steps, self._batch_size = text_embeds, num_steps, batch_size
        self._threshold, self._return_logits = threshold, return_logits
        self._generator, self._progress = generator, progress
        self.frames_held_peak = 0  # most input frames held at once (counts, for the tests)
        self.logits_held_peak = 0  # most frames of blended logits carried between windows

    def __len__(self) -> int:
        return len(self.frame_names)

    def __iter__(self):
        from flowrvs.pipelines.windows import iter_windows
        from flowrvs.pipelines.windows import LogitBlender

        pipe, num_prompts = self.pipe, len(self.prompts)
        batches = [range(i, min(i + self._batch_size, num_prompts)) for i in range(0, num_prompts, self._batch_size)]
        bar = tqdm(total=len(self.plan) * len(batches) * (self._num_steps + 1), desc="segment", unit="step",
                   disable=_no_bar(self._progress))
        blender = LogitBlender(self.plan)
        try:
            for window, frames in iter_windows(self._video, self.plan):
                following = self.plan[window.index + 1] if window.index + 1 < len(self.plan) else None
                carried = max(window.stop - following.start, 0) if following is not None else 0
                self.frames_held_peak = max(self.frames_held_peak, len(frames) + carried)
                tensor = frames_to_tensor(frames, self.working_size, resample="pil")
                z_video = pipe.encode_video(tensor.to(pipe.vae.dtype))
                del tensor
                logits = []
                for rows in batches:
                    z_mask = pipe.sample_mask_latents(z_video, self._text_embeds[rows.start : rows.stop],
                                                      self._num_steps, self._generator, bar.update)
                    logits.append(pipe.decode_masks(z_mask).float()[:, : len(window)])
                    bar.update()
                del z_video
                finished = blender.add(torch.cat(logits))
                self.logits_held_peak = max(self.logits_held_peak, blender.held_frames)
                if finished:
                    yield from self._finish(finished, frames, window.start)
        finally:
            bar.close()
            pipe.maybe_free_model_hooks()

    def _finish(self, finished, frames: np.ndarray, offset: int):
        """Resize the final frames' logits to the input size (bilinear) and threshold them."""
        import torch.nn.functional as F

        stacked = torch.stack([logits for _, logits in finished], dim=1)  # (K, n, h, w)
        k, n = stacked.shape[:2]
        if tuple(stacked.shape[-2:]) != (self.height, self.width):
            stacked = F.interpolate(stacked.reshape(k * n, 1, *stacked.shape[-2:]), size=(self.height, self.width),
                                    mode="bilinear", align_corners=False).reshape(k, n, self.height, self.width)
        masks = (stacked > self._threshold).cpu().numpy()
        values = stacked.cpu().numpy() if self._return_logits else None
        for j, (index, _) in enumerate(finished):
            yield SegmentedFrame(index, self.frame_names[index], frames[index - offset], masks[:, j],
                                 None if values is None else values[:, j])


class FlowRVSPipeline(DiffusionPipeline):
    """Referring video object segmentation by flow matching (FlowRVS).

    Components: ``transformer`` (``WanTransformer3DModel``; 32 input channels with Direct Video
    Injection), ``vae`` (``AutoencoderKLWan`` with a 1-channel mask decoder), ``text_encoder``
    (``UMT5EncoderModel``), ``tokenizer``, ``scheduler`` (``FlowMatchEulerDiscreteScheduler``).
    Settings (:class:`FlowRVSConfig` fields) live in ``pipe.config``; ``pipe.settings`` gives
    them as a :class:`FlowRVSConfig`. Call it as ``pipe(video, prompt=..., num_inference_steps=...)``.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["scheduler"]

    def __init__(
        self,
        transformer,
        vae,
        text_encoder,
        tokenizer,
        scheduler: FlowMatchEulerDiscreteScheduler | None = None,
        text_len: int = 256,
        mask_latent_normalized: bool = False,
        flow_shift: float = 3.0,
        num_steps: int = 1,
        size=(480, 832),  # unannotated: diffusers would warn about the list JSON gives back
        source: str = "video",
        prediction: str = "velocity",
        mask_threshold: float = 0.0,
        clamp_logits: bool = True,
        resize_rule: str = "public",
        config: FlowRVSConfig | None = None,
    ):
        """Components, then the settings (:class:`FlowRVSConfig` fields, or ``config`` whole)."""
        super().__init__()
        settings = config or FlowRVSConfig(
            text_len=text_len, mask_latent_normalized=mask_latent_normalized, flow_shift=flow_shift,
            num_steps=num_steps, size=size, source=source, prediction=prediction,
            mask_threshold=mask_threshold, clamp_logits=clamp_logits, resize_rule=resize_rule,
        )
        self.register_modules(
            transformer=transformer,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler or default_scheduler(),
        )
        self.register_to_config(**{**settings.to_dict(), "size": settings.size})
        self._prompt_encoder = None
        self._text_encoder_source: Path | None = None  # folder to load umT5 from when it is not resident
        self._precision = None  # the flowrvs.runtime.precision.PrecisionPlan the parts were loaded with
        self._text_key: str | None = None  # the text encoder's name in the embedding cache
        for module in (transformer, vae, text_encoder):
            if module is not None:
                module.requires_grad_(False)
                module.eval()

    # ---- settings and placement ------------------------------------------------------
    @property
    def settings(self) -> FlowRVSConfig:
        """The settings as a :class:`FlowRVSConfig` (a copy: change them with :meth:`update_settings`)."""
        return FlowRVSConfig.from_dict(dict(self.config))

    def update_settings(self, **changes) -> "FlowRVSPipeline":
        """Change settings (validated), e.g. ``pipe.update_settings(mask_threshold=-2)``."""
        merged = FlowRVSConfig.from_dict({**self.settings.to_dict(), **changes})
        self.register_to_config(**{**merged.to_dict(), "size": merged.size})
        self._prompt_encoder = None
        return self

    @property
    def parametrization(self) -> FlowParametrization:
        """Where the flow starts and what the DiT predicts (shared with the training objective)."""
        return FlowParametrization(self.config.source, self.config.prediction)

    @property
    def dvi(self) -> bool:
        return uses_dvi(self.transformer)

    @property
    def prompt_encoder(self) -> PromptEncoder:
        """Embeds prompts; each distinct prompt is encoded once per pipeline."""
        if self._prompt_encoder is None or self._prompt_encoder.text_encoder is not self.text_encoder:
            self._prompt_encoder = PromptEncoder(self.tokenizer, self.text_encoder, self.config.text_len)
        return self._prompt_encoder

    def enable_cpu_offload(self, enabled: bool = True) -> "FlowRVSPipeline":
        """Keep each part on the CPU and move it to the GPU only while it runs (diffusers'
        :meth:`enable_model_cpu_offload`); nothing to do on a CPU-only machine."""
        if enabled and torch.cuda.is_available():
            self.enable_model_cpu_offload()
        return self

    # ---- loading and saving ----------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        device=None,
        dtype=None,
        cpu_offload: bool = False,
        torch_dtype=None,
        dit_file: str | None = None,
        base: str | None = None,
        keep_text_encoder: bool = False,
        **kwargs,
    ) -> "FlowRVSPipeline":
        """Load a model folder, a shipped model by name (``tiny-synthetic``) or a hub id.

        ``xmz111/FlowRVS`` (the public release) is downloaded and converted once into a cached
        model folder (:mod:`flowrvs.loading.hub`; ``dit_file`` and ``base`` pick other files); a hub
        repository holding a flowrvs model folder loads directly. ``dtype`` / ``torch_dtype``:
        ``"auto"`` (default; :func:`flowrvs.runtime.precision.choose_precision`: bfloat16 on CUDA and on
        CPUs with native bf16, else float32 compute with large weights stored in bfloat16), or
        one dtype for every part. ``device``: where it runs (default: CUDA when available).
        ``keep_text_encoder``: load umT5 now and keep it resident; by default it is loaded only
        when a sentence is not in the embedding cache (``$FLOWRVS_CACHE/embeddings``), its
        weights read layer by layer from their files, and dropped right after, so it never sits
        beside the DiT and the VAE.
        """
        from flowrvs.runtime.precision import apply_precision, choose_precision

        requested = dtype if dtype is not None else torch_dtype
        path = resolve_model_dir(pretrained_model_name_or_path, dit_file=dit_file, base=base)
        # storing weights in bf16 and computing in fp32 pays off for large models only; small
        # ones (the shipped demo model) keep their exact fp32 weights
        large = weights_bytes(path) > LARGE_MODEL_BYTES
        requested = "auto" if requested is None else requested
        if requested == "auto" and not large and resolve_device_dtype(device)[0].type == "cpu":
            requested = "float32"  # bf16 gains a small model nothing on a CPU and costs it accuracy
        plan = choose_precision(device, requested, bf16_storage=large)  # logs plan.warning (forced slow bf16)
        storage = {part: plan.part(part).storage for part in ("transformer", "vae", "text_encoder")}
        try:
            kwargs.setdefault("low_cpu_mem_usage", True)
            if not keep_text_encoder:
                kwargs["text_encoder"] = None
            pipe = super().from_pretrained(str(path), dtype={**storage, "default": torch.float32}, **kwargs)
        except FlowRVSError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as err:
            raise FlowRVSError(f"cannot load the model in {path}: {first_line(err)}") from None
        pipe._precision = plan
        pipe._text_encoder_source = path / "text_encoder"
        apply_precision(plan, device=torch.device("cpu") if cpu_offload else plan.device,
                        transformer=pipe.transformer, vae=pipe.vae, text_encoder=pipe.text_encoder)
        if cpu_offload and plan.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=plan.device)
        return pipe

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """Write a model folder that :meth:`from_pretrained` reads; atomic (temp folder + rename).

        A text encoder that is not resident is copied from the folder it loads from."""
        from flowrvs.io.atomic import atomic_dir

        with atomic_dir(save_directory) as tmp:
            super().save_pretrained(str(tmp), **kwargs)
            if self.text_encoder is None:
                if self._text_encoder_source is None or not self._text_encoder_source.is_dir():
                    raise FlowRVSError("cannot save: the pipeline has no text encoder and no folder to copy it from")
                link_or_copy_tree(self._text_encoder_source, tmp / "text_encoder")
                index = json.loads((tmp / INDEX_FILE).read_text())
                index["text_encoder"] = ["transformers", "UMT5EncoderModel"]
                (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    # ---- the stages ------------------------------------------------------------------
    def _compute_dtype(self, part: str) -> torch.dtype:
        """The dtype ``part`` computes in (its storage dtype may be lower; see :mod:`flowrvs.runtime.precision`)."""
        if self._precision is not None:
            return self._precision.part(part).compute
        return getattr(self, part).dtype

    def _text_encoder_key(self) -> str:
        """Names the text encoder's weights and compute dtype in the embedding cache (hashed once)."""
        if self._text_key is None:
            self._text_key = f"{model_fingerprint(self._text_encoder_source)}-{str(self._compute_dtype('text_encoder'))[6:]}"
        return self._text_key

    def _load_text_encoder(self):
        """``(tokenizer, umT5)`` for one round of encoding, its weights streamed from its files."""
        from flowrvs.models.text import load_streamed_text_encoder

        encoder = load_streamed_text_encoder(self._text_encoder_source, dtype=self._compute_dtype("text_encoder"),
                                             device=self._execution_device)
        return self.tokenizer, encoder

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(B, text_len, D)`` prompt embeddings on the execution device, in the DiT's compute dtype.

        With a resident text encoder each distinct prompt is encoded once per pipeline; without
        one, sentences come from the on-disk embedding cache and umT5 is loaded (streamed) only
        for those it has not seen, then dropped.
        """
        # one sentence per encoder pass: padding a batch moves umT5's outputs by ~1e-7, and a
        # sentence's masks must not depend on which others came with it
        device, dtype = self._execution_device, self._compute_dtype("transformer")
        prompts = check_prompts(prompts)
        if self.text_encoder is not None:
            return torch.cat([self.prompt_encoder.encode([p], device=device, dtype=dtype) for p in prompts])
        if self._text_encoder_source is None:
            raise FlowRVSError("the pipeline has no text encoder")
        from flowrvs.models.text import EmbeddingCache, encode_sentences

        return encode_sentences(prompts, self._load_text_encoder, EmbeddingCache.default(), self.config.text_len,
                                self._text_encoder_key(), device=device, dtype=dtype, batch_size=1)

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """``(1, 3, T, H, W)`` in [-1, 1] (T = 4k+1) -> normalised latent ``(1, 16, T', H/8, W/8)``."""
        return encode_video(self.vae, video.to(self._execution_device))

    def velocity(self, x: torch.Tensor, timestep: torch.Tensor, z_video: torch.Tensor, text_embeds: torch.Tensor):
        """The flow's velocity at ``x`` and ``timestep`` (``(B,)`` on the scheduler's 0..1000 scale).

        A ``"mask"``-predicting DiT is turned into a velocity by ``v = (x - z_mask_hat) / t``.
        """
        out = dit_forward(self.transformer, x, z_video, timestep, text_embeds, dtype=self._compute_dtype("transformer"))
        if self.config.prediction == "velocity":
            return out  # as the DiT gives it: the scheduler steps in float32 and casts back to its dtype
        return self.parametrization.velocity(out.float(), x.float(), timestep.float() / NUM_TRAIN_TIMESTEPS)

    @torch.no_grad()
    def sample_mask_latents(
        self,
        z_video: torch.Tensor,
        text_embeds: torch.Tensor,
        num_steps: int,
        generator: torch.Generator | None = None,
        progress=None,
    ) -> torch.Tensor:
        """Solve the flow from the video latent to mask latents, one per prompt.

        z_video: ``(1, 16, T, h, w)``; text_embeds: ``(B, L, D)``; returns ``(B, 16, T, h, w)``.
        The model is evaluated at the integer timesteps of :func:`flowrvs.flow.public_timesteps`
        and stepped by the scheduler down to sigma 0, as the public code does.
        """
        batch = text_embeds.shape[0]
        z_video = z_video.expand(batch, -1, -1, -1, -1)
        if self.config.source == "noise":  # drawn on the CPU: the same noise on any device
            x = self.parametrization.start(z_video.cpu(), generator).to(z_video)
        else:
            x = self.parametrization.start(z_video)
        timesteps = public_timesteps(num_steps, self.config.flow_shift)
        sigmas = [t / NUM_TRAIN_TIMESTEPS for t in timesteps]
        self.scheduler.set_timesteps(sigmas=sigmas, timesteps=timesteps, device=x.device)
        for t in self.scheduler.timesteps:
            v = self.velocity(x, t.expand(batch), z_video, text_embeds)
            x = self.scheduler.step(v, t, x, return_dict=False)[0]
            if progress is not None:
                progress()
        return x

    @torch.no_grad()
    def decode_masks(self, z_mask: torch.Tensor) -> torch.Tensor:
        """Mask latents ``(B, 16, T', h, w)`` -> logits ``(B, 4T'-3, 8h, 8w)`` (clamped to
        [-1, 1] when ``clamp_logits``)."""
        logits = decode_mask_logits(self.vae, z_mask, self.config.mask_latent_normalized)
        return logits.clamp(-1.0, 1.0) if self.config.clamp_logits else logits

    # ---- the whole thing -------------------------------------------------------------
    @torch.no_grad()
    def stream(
        self,
        video,
        prompt: str | Sequence[str] | None = None,
        num_inference_steps: int | None = None,
        size: tuple[int, int] | None = None,
        window: int | None = DEFAULT_WINDOW,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int = 1,
        return_logits: bool = False,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
        mask_threshold: float | None = None,
    ) -> SegmentationStream:
        """Segment ``video`` frame by frame at flat memory (see :class:`SegmentationStream`).

        Arguments as for :meth:`__call__`. The video is decoded as a stream and processed in
        windows of ``window`` frames (4k+1) sharing ``overlap`` frames, whose logits are
        cross-faded (:mod:`flowrvs.pipelines.windows`); ``window=None`` (or 0) runs the whole video in one
        pass, as the public code does. Bad input and the prompts' embeddings are dealt with
        here, before anything is iterated.
        """
        from flowrvs.io.read import open_video
        from flowrvs.pipelines.windows import plan_windows

        prompts = check_prompts(prompt)
        num_steps = self.config.num_steps if num_inference_steps is None else int(num_inference_steps)
        threshold = self.config.mask_threshold if mask_threshold is None else float(mask_threshold)
        if not math.isfinite(threshold):
            raise FlowRVSError(f"mask_threshold must be a finite number, got {threshold}")
        if num_steps < 1:
            raise FlowRVSError(f"num_steps must be at least 1, got {num_steps}")
        if batch_size < 1:
            raise FlowRVSError(f"batch_size must be at least 1, got {batch_size}")
        frames = open_video(video)
        plan = plan_windows(frames.num_frames, window or None, overlap if window else 0)
        work_size = fit_size(frames.height, frames.width, tuple(size or self.config.size), rule=self.config.resize_rule)
        text_embeds = self.encode_prompts(prompts)
        return SegmentationStream(self, frames, prompts, text_embeds, plan, work_size, num_steps, batch_size,
                                  threshold, return_logits, generator, progress)

    @torch.no_grad()
    def __call__(
        self,
        video,
        prompt: str | Sequence[str] | None = None,
        num_inference_steps: int | None = None,
        size: tuple[int, int] | None = None,
        batch_size: int = 1,
        return_logits: bool = False,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
        mask_threshold: float | None = None,
        window: int | None = DEFAULT_WINDOW,
        overlap: int = DEFAULT_OVERLAP,
        prompts: str | Sequence[str] | None = None,
        num_steps: int | None = None,
    ) -> FlowRVSPipelineOutput:
        """Segment the objects that ``prompt`` describes in ``video``; all masks in memory.

        video: a path (video file, GIF, image or folder of frames), a ``(T, H, W, 3)`` uint8
        array, or a list of PIL images. prompt: one sentence or a list (``prompts`` is its
        older name). num_inference_steps: Euler steps (default from the config, 1; ``num_steps``
        is its older name). size: ``(h, w)`` box frames are resized into (default from the
        config, 480x832). batch_size: prompts per DiT/decoder pass. progress: a progress bar
        (default: when stderr is a terminal). mask_threshold: decoder output above which a
        pixel is foreground (default from the config, 0). window / overlap: a video longer than
        ``window`` frames runs in overlapping windows (``window=None``: whole video in one pass,
        the public code's mode). For long videos written to disk, :meth:`stream` holds one
        window at a time.
        """
        if prompt is not None and prompts is not None:
            raise FlowRVSError("pass the sentences once, as prompt= (prompts= is its older name)")
        stream = self.stream(
            video, prompt if prompt is not None else prompts,
            num_inference_steps if num_inference_steps is not None else num_steps,
            size=size, window=window, overlap=overlap, batch_size=batch_size, return_logits=return_logits,
            generator=generator, progress=progress, mask_threshold=mask_threshold,
        )
        shape = (len(stream), stream.height, stream.width)
        masks = [np.empty(shape, dtype=bool) for _ in stream.prompts]
        logits = [np.empty(shape, dtype=np.float32) for _ in stream.prompts] if return_logits else None
        for item in stream:
            for k in range(len(masks)):
                masks[k][item.index] = item.masks[k]
                if logits is not None:
                    logits[k][item.index] = item.logits[k]
        return FlowRVSPipelineOutput(
            masks=masks,
            prompts=stream.prompts,
            frame_names=stream.frame_names,
            fps=stream.fps,
            logits=logits,
            working_size=stream.working_size,
        )


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None lets tqdm decide (off when not on a terminal)."""
    return None if progress is None else not progress

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
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.flow import NUM_TRAIN_TIMESTEPS, FlowParametrization, public_timesteps
from flowrvs.io.frames import RESIZE_RULES
from flowrvs.loading.components import load_parts
from flowrvs.loading.model_folder import (
    INDEX_FILE,
    default_scheduler,
    folder_class_name,
    link_or_copy_tree,
    model_fingerprint,
    read_index,
)
from flowrvs.loading.resolve import resolve_model_dir
from flowrvs.models.dit import dit_forward, uses_dvi
from flowrvs.models.text import PromptEncoder, check_prompts
from flowrvs.models.vae import decode_mask_logits, encode_video
from flowrvs.options import SegmentOptions
from flowrvs.pipelines.pipeline_output import FlowRVSPipelineOutput
from flowrvs.pipelines.streaming import StepCallback, stream_segmentation
from flowrvs.pipelines.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW, Window, plan_windows

OUTPUT_TYPES = ("np", "pt", "pil")


def check_settings(text_len, mask_latent_normalized, flow_shift, num_steps, size, source, prediction,
                   mask_threshold, clamp_logits, resize_rule) -> dict:
    """The pipeline's settings checked and normalised (JSON types), as ``register_to_config`` takes them.

    Raises :class:`FlowRVSError` for a ``source``, ``prediction`` or ``resize_rule`` it does not know.
    """
    if source not in ("video", "noise"):
        raise FlowRVSError(f"source must be 'video' or 'noise', got {source!r}")
    if prediction not in ("velocity", "mask"):
        raise FlowRVSError(f"prediction must be 'velocity' or 'mask', got {prediction!r}")
    if resize_rule not in RESIZE_RULES:
        raise FlowRVSError(f"resize_rule must be one of {', '.join(RESIZE_RULES)}, got {resize_rule!r}")
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise FlowRVSError(f"size must be [short, long], got {size!r}")
    return dict(text_len=_number("text_len", text_len, int), mask_latent_normalized=bool(mask_latent_normalized),
                flow_shift=_number("flow_shift", flow_shift, float), num_steps=_number("num_steps", num_steps, int),
                size=tuple(_number("size", s, int) for s in size), source=source, prediction=prediction,
                mask_threshold=_number("mask_threshold", mask_threshold, float), clamp_logits=bool(clamp_logits),
                resize_rule=resize_rule)


def _number(name: str, value, kind: type):
    """``kind(value)`` for a number (a setting read from ``model_index.json``), else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlowRVSError(f"setting {name} must be a number, got {value!r}")
    try:
        return kind(value)
    except (OverflowError, ValueError) as err:  # int(inf), int(nan)
        raise FlowRVSError(f"setting {name} must be a finite number, got {value!r}") from err


class FlowRVSPipeline(DiffusionPipeline):
    """Referring video object segmentation by flow matching (FlowRVS).

    Components: ``transformer`` (``WanTransformer3DModel``; 32 input channels with Direct Video
    Injection), ``vae`` (``AutoencoderKLWan`` with a 1-channel mask decoder), ``text_encoder``
    (``UMT5EncoderModel``), ``tokenizer``, ``scheduler`` (``FlowMatchEulerDiscreteScheduler``).
    The settings are the keyword arguments of ``__init__``, kept in ``pipe.config``; change one
    with ``pipe.register_to_config(mask_threshold=...)``. Load with
    ``FlowRVSPipeline.from_pretrained(folder, torch_dtype=...).to(device)`` (or
    :func:`flowrvs.pipelines.loader.load_pipeline`, which plans the precision per machine) and
    call it as ``pipe(video, prompt=..., num_inference_steps=...)``.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["scheduler"]
    _callback_tensor_inputs = ["latents"]
    # facts of the method, not settings: the tokenizer's max_length (None: text_len), the
    # fewest frames one pass is run on (shorter windows are padded with their last frame),
    # and the window plan its published benchmark numbers come from (0: whole videos)
    tokenizer_max_length: int | None = None
    min_frames: int = 1
    benchmark_window: int | None = 0

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
    ):
        """Components, then the settings.

        text_len: prompt embeddings are zero-padded to this many tokens (256; 64 in older
        checkpoints). mask_latent_normalized: mask latents carry the video normalisation (older
        checkpoints). flow_shift / num_steps: the inference time grid. size: ``(short, long)``
        box frames are resized into. source: the flow's start, ``"video"`` (FlowRVS) or
        ``"noise"`` (an ablation). prediction: what the DiT outputs, ``"velocity"`` (FlowRVS) or
        ``"mask"`` (an ablation). mask_threshold: foreground where the decoder's output exceeds
        it (0 is probability 0.5). clamp_logits: clamp the decoder output to [-1, 1] before the
        resize, as the public code does. resize_rule: ``"public"`` (the box as given, sides
        floored to multiples of 16) or ``"oriented"`` (the box turned to the frame's orientation).
        """
        super().__init__()
        self.register_modules(
            transformer=transformer,
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler or default_scheduler(),
        )
        self.register_to_config(**check_settings(
            text_len, mask_latent_normalized, flow_shift, num_steps, size, source, prediction,
            mask_threshold, clamp_logits, resize_rule,
        ))
        self.set_progress_bar_config(desc="segment", unit="step", disable=None)  # None: a bar on a terminal only
        self._prompt_encoder = None
        self._text_encoder_source: Path | None = None  # folder to load umT5 from when it is not resident
        self._precision = None  # the flowrvs.runtime.precision.PrecisionPlan the parts were loaded with
        self._text_key: str | None = None  # the text encoder's name in the embedding cache
        for module in (transformer, vae, text_encoder):
            if module is not None:
                module.requires_grad_(False)
                module.eval()

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
            self._prompt_encoder = PromptEncoder(self.tokenizer, self.text_encoder, self.config.text_len,
                                                 max_length=self.tokenizer_max_length)
        return self._prompt_encoder

    # ---- loading and saving ----------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        torch_dtype: torch.dtype | dict | None = None,
        keep_text_encoder: bool = False,
        dit_file: str | None = None,
        base: str | None = None,
        **kwargs,
    ) -> "FlowRVSPipeline":
        """Load a model folder, a shipped model by name (``tiny-synthetic``) or a hub id, on the CPU.

        The folder must hold this class (``_class_name`` of its ``model_index.json``): a REM folder
        loads with :class:`~flowrvs.pipelines.pipeline_rem.REMPipeline`, and
        :func:`flowrvs.pipelines.loader.load_pipeline` takes either.

        ``xmz111/FlowRVS`` (the public release) is downloaded and converted once into a cached
        model folder (:func:`flowrvs.loading.resolve.resolve_model_dir`; ``dit_file`` and
        ``base`` pick other files). torch_dtype: as diffusers takes it (one dtype, or one per
        part name with a ``"default"``); None keeps the dtypes the weights were saved in. Move it
        with ``.to(device)``; :func:`flowrvs.pipelines.loader.load_pipeline` chooses the dtypes
        per machine instead. keep_text_encoder: load umT5 now and keep it resident; by default
        it is loaded only when a sentence is not in the embedding cache
        (``$FLOWRVS_CACHE/embeddings``), its weights read layer by layer from their files, and
        dropped right after, so it never sits beside the DiT and the VAE.
        """
        path = resolve_model_dir(pretrained_model_name_or_path, dit_file=dit_file, base=base)
        name = folder_class_name(path)
        if name != cls.__name__:
            raise FlowRVSError(f"model {path} holds a {name}, not a {cls.__name__}: load it with {name}.from_pretrained "
                               "or flowrvs.pipelines.loader.load_pipeline (which takes either)")
        parts = ["transformer", "vae", "tokenizer", "scheduler"] + (["text_encoder"] if keep_text_encoder else [])
        components = {"text_encoder": None, **load_parts(path, read_index(path), parts, torch_dtype)}
        try:
            pipe = super().from_pretrained(str(path), **components, **kwargs)
        except (OSError, ValueError) as err:  # unreadable or damaged weight and config files
            raise FlowRVSError(f"cannot load the model in {path}: {first_line(err)}") from err
        except FlowRVSError as err:  # a setting of the index refused by check_settings
            raise FlowRVSError(f"{path / INDEX_FILE}: {err}") from err
        pipe._text_encoder_source = path / "text_encoder"
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
        """The dtype ``part`` computes in (its storage dtype may be lower; see :mod:`flowrvs.runtime.precision`).

        Without a plan (loaded by ``from_pretrained`` alone) a part computes in its own dtype, and
        a text encoder that is not resident in the DiT's."""
        if self._precision is not None:
            return self._precision.part(part).compute
        module = getattr(self, part)
        return (module if module is not None else self.transformer).dtype

    def _text_encoder_key(self) -> str:
        """Names the text encoder's weights and compute dtype in the embedding cache (hashed once)."""
        if self._text_key is None:
            limit = "" if self.tokenizer_max_length is None else f"-max{self.tokenizer_max_length}"
            self._text_key = (f"{model_fingerprint(self._text_encoder_source)}-"
                              f"{str(self._compute_dtype('text_encoder'))[6:]}{limit}")
        return self._text_key

    def _load_text_encoder(self):
        """``(tokenizer, umT5)`` for one round of encoding, its weights streamed from its files."""
        from flowrvs.models.text import load_streamed_text_encoder

        encoder = load_streamed_text_encoder(self._text_encoder_source, dtype=self._compute_dtype("text_encoder"),
                                             device=self._execution_device)
        return self.tokenizer, encoder

    def check_inputs(self, prompt, callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",)) -> list[str]:
        """The prompts as a list (:func:`flowrvs.models.text.check_prompts`); a callback may ask
        only for tensors in ``_callback_tensor_inputs``. Raises :class:`FlowRVSError`."""
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise FlowRVSError(f"callback_on_step_end_tensor_inputs may name {self._callback_tensor_inputs}, got {unknown}")
        return check_prompts(prompt)

    def encode_prompt(self, prompts: str | Sequence[str]) -> torch.Tensor:
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
                                self._text_encoder_key(), device=device, dtype=dtype, batch_size=1,
                                max_length=self.tokenizer_max_length)

    def plan_windows(self, num_frames: int, window: int | None = None, overlap: int | None = None) -> list[Window]:
        """The windows a video of ``num_frames`` frames runs in (:mod:`flowrvs.pipelines.windows`).

        window: ``None`` is this method's own plan (``DEFAULT_WINDOW`` frames sharing
        ``DEFAULT_OVERLAP``, or ``overlap``), 0 the whole video in one pass, else windows of that
        many frames sharing ``overlap`` (default ``DEFAULT_OVERLAP``).
        """
        overlap = DEFAULT_OVERLAP if overlap is None else overlap
        return plan_windows(num_frames, DEFAULT_WINDOW if window is None else window, overlap)

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

    def prepare_latents(self, z_video: torch.Tensor, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The flow's start ``x_1`` ``(batch, 16, T, h, w)``: the video latent ``(1, 16, T, h, w)``
        repeated, or Gaussian noise (``source="noise"``, drawn on the CPU: the same on any device)."""
        z_video = z_video.expand(batch, -1, -1, -1, -1)
        if self.config.source == "noise":
            return self.parametrization.start(z_video.cpu(), generator).to(z_video)
        return self.parametrization.start(z_video)

    @torch.no_grad()
    def sample(
        self,
        z_video: torch.Tensor,
        text_embeds: torch.Tensor,
        num_inference_steps: int,
        generator: torch.Generator | None = None,
        callback_on_step_end: StepCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        on_step: Callable[[], object] | None = None,
    ) -> torch.Tensor:
        """Solve the flow from the video latent to mask latents, one per prompt.

        z_video: ``(1, 16, T, h, w)``; text_embeds: ``(B, L, D)``; returns ``(B, 16, T, h, w)``.
        The model is evaluated at the integer timesteps of :func:`flowrvs.flow.public_timesteps`
        and stepped by the scheduler down to sigma 0, as the public code does. After each step
        ``callback_on_step_end(pipe, i, t, {"latents": x})`` may return a replacement
        ``latents``; ``on_step()`` is called too (a progress bar's ``update``).
        """
        batch = text_embeds.shape[0]
        x = self.prepare_latents(z_video, batch, generator)
        z_video = z_video.expand(batch, -1, -1, -1, -1)
        timesteps = public_timesteps(num_inference_steps, self.config.flow_shift)
        sigmas = [t / NUM_TRAIN_TIMESTEPS for t in timesteps]
        self.scheduler.set_timesteps(sigmas=sigmas, timesteps=timesteps, device=x.device)
        for i, t in enumerate(self.scheduler.timesteps):
            v = self.velocity(x, t.expand(batch), z_video, text_embeds)
            x = self.scheduler.step(v, t, x, return_dict=False)[0]
            if callback_on_step_end is not None:
                outputs = callback_on_step_end(self, i, t, {"latents": x} if "latents" in callback_on_step_end_tensor_inputs else {})
                x = outputs.get("latents", x)
            if on_step is not None:
                on_step()
        return x

    @torch.no_grad()
    def decode(self, z_mask: torch.Tensor) -> torch.Tensor:
        """Mask latents ``(B, 16, T', h, w)`` -> decoder output ``(B, C, 4T'-3, 8h, 8w)``, whose
        mean over the ``C`` channels is the mask logit (C = 1 here; clamped to [-1, 1] when
        ``clamp_logits``)."""
        logits = decode_mask_logits(self.vae, z_mask, self.config.mask_latent_normalized).unsqueeze(1)
        return logits.clamp(-1.0, 1.0) if self.config.clamp_logits else logits

    # ---- the whole thing -------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        video,
        prompt: str | Sequence[str] | None = None,
        num_inference_steps: int | None = None,
        size: tuple[int, int] | None = None,
        mask_threshold: float | None = None,
        window: int | None = None,
        overlap: int | None = None,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        return_logits: bool = False,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: StepCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> FlowRVSPipelineOutput | tuple:
        """Segment the objects that ``prompt`` describes in ``video``; all masks in memory.

        video: a path (video file, GIF, image or folder of frames), a ``(T, H, W, 3)`` uint8
        array, or a list of PIL images. prompt: one sentence or a list. num_inference_steps,
        size, mask_threshold, window, overlap, batch_size: see
        :class:`flowrvs.options.SegmentOptions` (``None``: the model's settings and window plan;
        ``window=0`` runs the whole video in one pass, as the public FlowRVS code does). return_logits: also return
        the decoder's logits. output_type: ``"np"``, ``"pt"`` or ``"pil"`` (see
        :class:`FlowRVSPipelineOutput`). return_dict: ``False`` returns ``(masks, logits)``.
        callback_on_step_end: called after every Euler step as in diffusers. The progress bar
        follows :meth:`set_progress_bar_config`. For long videos written to disk,
        :func:`flowrvs.pipelines.streaming.stream_segmentation` holds one window at a time.
        """
        # 1. check the inputs
        if output_type not in OUTPUT_TYPES:
            raise FlowRVSError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        options = SegmentOptions(num_inference_steps=num_inference_steps, size=size, mask_threshold=mask_threshold,
                                 window=window, overlap=overlap, batch_size=batch_size)
        # 2. encode the prompts, open the video and plan its windows
        stream = stream_segmentation(self, video, prompt, options, return_logits=return_logits, generator=generator,
                                     callback_on_step_end=callback_on_step_end,
                                     callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs)
        # 3. per window: encode the video, sample the mask latents, decode them; blend the windows
        shape = (len(stream), stream.height, stream.width)
        masks = [np.empty(shape, dtype=bool) for _ in stream.prompts]
        logits = [np.empty(shape, dtype=np.float32) for _ in stream.prompts] if return_logits else None
        for item in stream:
            for k in range(len(masks)):
                masks[k][item.index] = item.masks[k]
                if logits is not None:
                    logits[k][item.index] = item.logits[k]
        # 4. convert to the output type
        masks, logits = _convert(masks, output_type), None if logits is None else _convert(logits, output_type)
        if not return_dict:
            return masks, logits
        return FlowRVSPipelineOutput(masks=masks, prompts=stream.prompts, frame_names=stream.frame_names,
                                     fps=stream.fps, logits=logits, working_size=stream.working_size)


def _convert(tracks: list[np.ndarray], output_type: str) -> list:
    """Per-prompt ``(T, H, W)`` arrays as ``output_type`` asks: arrays, tensors, or lists of
    PIL images (masks as mode ``"L"`` 0/255; logits as mode ``"F"``)."""
    if output_type == "pt":
        return [torch.from_numpy(track) for track in tracks]
    if output_type == "pil":
        from PIL import Image

        return [[Image.fromarray(f.astype(np.uint8) * 255 if f.dtype == bool else f) for f in track] for track in tracks]
    return tracks

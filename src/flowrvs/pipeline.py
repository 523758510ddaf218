"""FlowRVSPipeline: video + sentences -> one mask per frame per sentence.

Data flows one way: frames -> video latent (encoded once per video) -> Euler solve of the
learned flow, one per sentence (sentences embedded once) -> mask latent -> mask decoder
logits -> masks at the input's resolution and frame count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .errors import FlowRVSError, first_line
from .flow import euler_solve, inference_times
from .frames import fit_size, frames_to_tensor, logits_to_input_shape
from .models.dit import predict_velocity, uses_dvi
from .models.text import PromptEncoder, check_prompts
from .models.vae import decode_mask_logits, encode_video

MODEL_PARTS = ("transformer", "vae", "text_encoder", "tokenizer")
INDEX_FILE = "model_index.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class FlowRVSConfig:
    """Settings of a model folder that are not weights (``model_index.json``).

    text_len: prompt embeddings are zero-padded to this many tokens (256 now, 64 in older
    checkpoints). mask_latent_normalized: mask latents carry the video normalisation (older
    checkpoints). flow_shift / num_steps: inference time grid. size: ``(short, long)`` box
    frames are resized into. source: start point of the flow, ``"video"`` (FlowRVS) or
    ``"noise"`` (text-to-video style, an ablation). prediction: what the DiT outputs,
    ``"velocity"`` (FlowRVS) or ``"mask"`` (the mask latent itself, an ablation).
    mask_threshold: a pixel is foreground where the mask decoder's logit exceeds this (0 is
    probability 0.5).
    """

    text_len: int = 256
    mask_latent_normalized: bool = False
    flow_shift: float = 3.0
    num_steps: int = 1
    size: tuple[int, int] = (480, 832)
    source: str = "video"
    prediction: str = "velocity"
    mask_threshold: float = 0.0

    def __post_init__(self):
        self.size = tuple(int(s) for s in self.size)
        self.mask_threshold = float(self.mask_threshold)
        if self.source not in ("video", "noise"):
            raise FlowRVSError(f"source must be 'video' or 'noise', got {self.source!r}")
        if self.prediction not in ("velocity", "mask"):
            raise FlowRVSError(f"prediction must be 'velocity' or 'mask', got {self.prediction!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "FlowRVSConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["size"] = list(self.size)
        return out


@dataclass
class SegmentationResult:
    """Masks of one video, one entry per prompt.

    masks[k]: ``(T, H, W)`` bool at the input's frame count and resolution. logits[k]:
    ``(T, H, W)`` float32 (foreground where > 0), when asked for. frame_names: one per frame.
    """

    prompts: list[str]
    masks: list[np.ndarray]
    frame_names: list[str]
    fps: float = 24.0
    logits: list[np.ndarray] | None = None
    working_size: tuple[int, int] = field(default=(0, 0))

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.masks[k]


def resolve_device_dtype(device=None, dtype=None) -> tuple[torch.device, torch.dtype]:
    """Check a device/dtype pair, defaulting to float32 on CPU and bfloat16 on CUDA."""
    try:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise FlowRVSError(f"unknown device {device!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlowRVSError("device cuda asked for, but CUDA is not available on this machine")
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise FlowRVSError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if device.type == "cpu" and dtype == torch.float16:
        raise FlowRVSError("float16 is not supported on cpu (Conv3d has no half kernels there); use bfloat16 or float32")
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise FlowRVSError("bfloat16 is not supported on this GPU; use float16 or float32")
    return device, dtype


def shipped_model_dir(name: str) -> Path | None:
    """Folder of a model shipped inside the package (e.g. ``tiny-synthetic``), if there is one."""
    from importlib import resources

    path = Path(str(resources.files("flowrvs") / "weights" / name))
    return path if (path / INDEX_FILE).is_file() else None


def resolve_model_dir(model: str | Path) -> Path:
    """A model folder from a path or the name of a shipped model; checks that every part is there."""
    path = Path(model)
    if not path.exists():
        shipped = shipped_model_dir(str(model))
        if shipped is None:
            raise FlowRVSError(f"model folder {model} does not exist (and is not a shipped model name)")
        path = shipped
    if not path.is_dir():
        raise FlowRVSError(f"model {path} is not a folder")
    missing = [p + "/" for p in MODEL_PARTS if not (path / p).is_dir()]
    if not (path / INDEX_FILE).is_file():
        missing.insert(0, INDEX_FILE)
    if missing:
        raise FlowRVSError(f"model folder {path} is missing {', '.join(missing)}")
    return path


def model_fingerprint(folder: str | Path, content_limit: int = 64 << 20) -> str:
    """A short hash that changes when any file of a model folder changes.

    Files up to ``content_limit`` bytes (configs, a small model's weights) are hashed by content;
    larger ones by size and modification time, so a multi-GB model is not read just to name it.
    """
    import hashlib

    folder = Path(folder)
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0".encode())
        if stat.st_size <= content_limit:
            digest.update(path.read_bytes())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


def write_model_index(folder: Path, config: FlowRVSConfig) -> None:
    """Write ``model_index.json``: the class name, our version and the :class:`FlowRVSConfig`."""
    index = {"_class_name": "FlowRVSPipeline", "_flowrvs_version": __version__, **config.to_dict()}
    (Path(folder) / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


class FlowRVSPipeline:
    """Referring video object segmentation by flow matching.

    Holds the four components (Wan DiT, Wan VAE with a mask decoder, umT5 encoder and its
    tokenizer) and a :class:`FlowRVSConfig`. Call it as ``pipe(video, prompts)``.
    """

    def __init__(self, transformer, vae, text_encoder, tokenizer, config: FlowRVSConfig | None = None):
        self.transformer = transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.config = config or FlowRVSConfig()
        self.prompt_encoder = PromptEncoder(tokenizer, text_encoder, self.config.text_len)
        self.cpu_offload = False
        self._execution_device = transformer.device
        for module in (transformer, vae, text_encoder):
            module.requires_grad_(False)
            module.eval()

    # ---- placement -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._execution_device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def dvi(self) -> bool:
        return uses_dvi(self.transformer)

    def to(self, device=None, dtype=None) -> "FlowRVSPipeline":
        device = torch.device(device) if device is not None else self._execution_device
        self._execution_device = device
        target = torch.device("cpu") if self.cpu_offload else device
        for module in (self.transformer, self.vae, self.text_encoder):
            module.to(target) if dtype is None else module.to(device=target, dtype=dtype)
        return self

    def enable_cpu_offload(self, enabled: bool = True) -> "FlowRVSPipeline":
        """Keep components on the CPU and move each to the execution device only while it runs.

        Trades transfer time for memory: the 10.6 GiB umT5-XXL encoder never sits on the GPU
        together with the DiT and VAE.
        """
        self.cpu_offload = enabled
        return self.to(self._execution_device)

    @contextlib.contextmanager
    def _on_device(self, module):
        if not self.cpu_offload or self._execution_device.type == "cpu":
            yield module
            return
        module.to(self._execution_device)
        try:
            yield module
        finally:
            module.to("cpu")

    # ---- loading and saving ----------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, model: str | Path, device=None, dtype=None, cpu_offload: bool = False
    ) -> "FlowRVSPipeline":
        """Load a model folder (``model_index.json``, ``transformer/``, ``vae/``,
        ``text_encoder/``, ``tokenizer/``) or a shipped model by name (``tiny-synthetic``)."""
        from diffusers import AutoencoderKLWan, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        device, dtype = resolve_device_dtype(device, dtype)
        path = resolve_model_dir(model)
        try:
            index = json.loads((path / INDEX_FILE).read_text())
        except (OSError, ValueError) as err:
            raise FlowRVSError(f"cannot read {path / INDEX_FILE}: {first_line(err)}") from None
        config = FlowRVSConfig.from_dict(index)
        loaders = {
            "transformer": lambda p: WanTransformer3DModel.from_pretrained(p, torch_dtype=dtype),
            "vae": lambda p: AutoencoderKLWan.from_pretrained(p, torch_dtype=dtype),
            "text_encoder": lambda p: UMT5EncoderModel.from_pretrained(p, dtype=dtype),
            "tokenizer": lambda p: AutoTokenizer.from_pretrained(p),
        }
        parts = {}
        for name, load in loaders.items():
            try:
                parts[name] = load(str(path / name))
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
                raise FlowRVSError(f"cannot load {name} from {path / name}: {first_line(err)}") from None
        pipe = cls(**parts, config=config)
        pipe.cpu_offload = cpu_offload
        return pipe.to(device)

    def save_pretrained(self, path: str | Path) -> None:
        """Write a model folder that :meth:`from_pretrained` reads; atomic (temp folder + rename)."""
        from .fileio import atomic_dir

        with atomic_dir(path) as tmp:
            self.transformer.save_pretrained(tmp / "transformer")
            self.vae.save_pretrained(tmp / "vae")
            self.text_encoder.save_pretrained(tmp / "text_encoder")
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            write_model_index(tmp, self.config)

    # ---- the stages ------------------------------------------------------------------
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(B, text_len, D)`` prompt embeddings on the execution device (cached per prompt)."""
        with self._on_device(self.text_encoder):
            return self.prompt_encoder.encode(list(prompts), device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """``(1, 3, T, H, W)`` in [-1, 1] (T = 4k+1) -> normalised latent ``(1, 16, T', H/8, W/8)``."""
        with self._on_device(self.vae):
            return encode_video(self.vae, video.to(self.device))

    def velocity(self, x: torch.Tensor, t: torch.Tensor, z_video: torch.Tensor, text_embeds: torch.Tensor):
        """The flow's velocity at ``(x, t)``; a ``"mask"``-predicting DiT is turned into one by
        ``v = (x - z_mask_hat) / t``."""
        out = predict_velocity(self.transformer, x, z_video, t, text_embeds).to(x.dtype)
        if self.config.prediction == "mask":
            return (x - out) / t.clamp_min(1e-3).view(-1, 1, 1, 1, 1).to(x.dtype)
        return out

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
        """
        batch = text_embeds.shape[0]
        z_video = z_video.expand(batch, -1, -1, -1, -1)
        if self.config.source == "noise":
            x = torch.randn(z_video.shape, generator=generator, device="cpu").to(z_video)
        else:
            x = z_video
        times = inference_times(num_steps, self.config.flow_shift)
        with self._on_device(self.transformer):
            return euler_solve(lambda x_t, t: self.velocity(x_t, t, z_video, text_embeds), x, times, progress)

    @torch.no_grad()
    def decode_masks(self, z_mask: torch.Tensor) -> torch.Tensor:
        """Mask latents ``(B, 16, T', h, w)`` -> logits ``(B, 4T'-3, 8h, 8w)``."""
        with self._on_device(self.vae):
            return decode_mask_logits(self.vae, z_mask, self.config.mask_latent_normalized)

    # ---- the whole thing -------------------------------------------------------------
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
        prompts: str | Sequence[str] | None = None,
        num_steps: int | None = None,
    ) -> SegmentationResult:
        """Segment the objects that ``prompts`` describe in ``video``.

        video: a path (video file, GIF, image or folder of frames), a ``(T, H, W, 3)`` uint8
        array, or a list of PIL images. prompt: one sentence or a list (``prompts`` is its
        older name). num_inference_steps: Euler steps (default from the config, 1; ``num_steps``
        is its older name). size: ``(short, long)`` box frames are resized
        into (default from the config, 480x832). batch_size: prompts per DiT/decoder pass.
        progress: a progress bar (default: when stderr is a terminal). mask_threshold: logit
        above which a pixel is foreground (default from the config, 0).
        """
        from .video import read_video

        if prompt is not None and prompts is not None:
            raise FlowRVSError("pass the sentences once, as prompt= (prompts= is its older name)")
        prompts = check_prompts(prompt if prompt is not None else prompts)
        if num_inference_steps is None:
            num_inference_steps = num_steps
        num_steps = self.config.num_steps if num_inference_steps is None else int(num_inference_steps)
        threshold = self.config.mask_threshold if mask_threshold is None else float(mask_threshold)
        if not math.isfinite(threshold):
            raise FlowRVSError(f"mask_threshold must be a finite number, got {threshold}")
        if num_steps < 1:
            raise FlowRVSError(f"num_steps must be at least 1, got {num_steps}")
        if batch_size < 1:
            raise FlowRVSError(f"batch_size must be at least 1, got {batch_size}")
        clip = read_video(video)
        num_frames, height, width = clip.frames.shape[:3]
        work_size = fit_size(height, width, tuple(size or self.config.size))

        text_embeds = self.encode_prompts(prompts)
        z_video = self.encode_video(frames_to_tensor(clip.frames, work_size).to(self.dtype))

        batches = [range(i, min(i + batch_size, len(prompts))) for i in range(0, len(prompts), batch_size)]
        bar = tqdm(total=len(batches) * (num_steps + 1), desc="segment", unit="step", disable=_no_bar(progress))
        masks, logits_out = [], []
        for rows in batches:
            z_mask = self.sample_mask_latents(z_video, text_embeds[rows.start : rows.stop], num_steps, generator, bar.update)
            logits = self.decode_masks(z_mask)
            bar.update()
            for row in logits:
                full = logits_to_input_shape(row, num_frames, height, width)
                masks.append((full > threshold).cpu().numpy())
                if return_logits:
                    logits_out.append(full.cpu().numpy())
        bar.close()
        return SegmentationResult(
            prompts=prompts,
            masks=masks,
            frame_names=list(clip.names),
            fps=clip.fps,
            logits=logits_out if return_logits else None,
            working_size=work_size,
        )

    def training_loss(self, batch: dict, generator: torch.Generator | None = None, **objective) -> torch.Tensor:
        """Flow-matching loss of one batch; see :func:`flowrvs.objective.training_loss`.

        ``objective``: :class:`~flowrvs.objective.FlowObjective` fields (``bbs_p``, ``spa_strength``).
        """
        from .objective import FlowObjective, training_loss

        return training_loss(self, batch, FlowObjective(**objective), generator)


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None lets tqdm decide (off when not on a terminal)."""
    return None if progress is None else not progress

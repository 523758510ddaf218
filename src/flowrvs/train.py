"""Training: the three stages of FlowRVS, one loop, exact resume.

Stages (each reads ``model.init``, the previous stage's ``output_dir/model``, and writes a
whole model folder ``output_dir/model`` at the end, so they chain):

``autoencoder`` (small random models only, never the real Wan preset)
    Stands in for Wan's pretrained VAE, which cannot be downloaded here: an RGB
    ``AutoencoderKLWan`` with the model's VAE config (``out_channels=3``) is trained as a video
    auto-encoder (L1 or MSE reconstruction of the video; when ``losses.ae_masks`` also of the
    mask drawn as a {-1, 1} image, scored by the mask loss on the mean output channel; plus
    ``losses.kl_weight`` times the KL to N(0, I)). Its
    weights then initialise the 1-channel mask VAE (:func:`to_mask_vae`).
``mask_decoder``
    VAE encoder frozen; the decoder (``post_quant_conv`` + ``decoder`` with its 1-channel
    head) learns to decode ``encode_mask(mask)`` back to the mask: BCE-with-logits + soft Dice
    on :func:`flowrvs.models.vae.decode_mask_logits`.
``flow``
    Only the DiT trains, on :func:`flowrvs.objective.training_loss` (BBS ``flow.bbs_p``, SPA
    ``flow.spa_strength``, DVI as the model has it).

Determinism: the clips of step ``s`` and every random draw of that step (BBS times, SPA
noise, VAE posterior samples) are functions of ``(seed, s, rank)`` only, so a run
interrupted after a checkpoint and resumed reproduces the uninterrupted run step for step.

Checkpoints (``output_dir/checkpoints/step-XXXXXXXX.safetensors``, written atomically): the
trainable weights ``model.<name>``, the EMA shadow ``ema.<name>``, the AdamW state tensors
``optim.<name>.<exp_avg|exp_avg_sq>``, the torch CPU RNG state ``rng.torch_cpu`` (uint8), and
in the safetensors metadata (JSON strings): ``step``, ``stage``, ``config``, ``optimizer``
(per-parameter step counts and the param-group hyper-parameters), ``rng.numpy``,
``rng.python``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import FlowRVSError, first_line

STAGES = ("autoencoder", "mask_decoder", "flow")
DATASET_TYPES = ("mevis", "ytvos", "davis", "refcoco")
SAMPLING_MODES = ("local", "global", "mixed")
VOCABULARIES = ("preset", "synth")
SCHEDULES = ("constant", "cosine")
CHECKPOINT_FORMAT = "flowrvs-train-checkpoint/1"
CHECKPOINT_RE = re.compile(r"^step-(\d{8})\.safetensors$")
MODEL_DIR = "model"
LOG_FILE = "train.log"
CONFIG_FILE = "config.yaml"


# =========================================================================== configuration
@dataclass
class ModelConfig:
    """What model trains. ``init``: null = random weights of ``preset`` (seeded by ``seed``), else a
    model folder (a previous stage's ``output_dir/model``, a shipped model name, or a Wan 2.1
    diffusers folder: its RGB VAE becomes a mask VAE, its DiT is widened for DVI).
    ``text_len``/``mask_latent_normalized``/``source``/``prediction``: null keeps the init's
    (or preset's) value. ``vocabulary`` (random tiny models only): ``preset`` word list or
    ``synth`` (the synthetic benchmark's words). ``train_text_encoder``: the flow stage trains
    the text encoder with the DiT (for small models whose text side starts random; the paper
    keeps umT5 frozen)."""

    preset: str = "tiny"
    init: str | None = None
    dvi: bool = True
    vocabulary: str = "preset"
    text_len: int | None = None
    mask_latent_normalized: bool | None = None
    source: str | None = None
    prediction: str | None = None
    gradient_checkpointing: bool = False
    train_text_encoder: bool = False


@dataclass
class DatasetConfig:
    """One training dataset. ``name``: the RefCOCO variant (refcoco, refcoco+, refcocog)."""

    type: str = "mevis"
    root: str = ""
    split: str = "train"
    weight: float = 1.0
    name: str | None = None


@dataclass
class DataConfig:
    """Clips: ``num_frames`` frames (padded to 4k+1), resized into the ``size`` box (short, long),
    flipped with ``hflip_p``; frame indices by ``sampling`` (local | global | mixed).
    ``crop``: the VAE stages train on random ``(h, w)`` pixel windows (multiples of 8).
    ``cache_latents`` (flow stage): encode one fixed clip per video once, before training,
    and train on those latents (SPA still draws a fresh start point each step; no flips),
    stored under ``cache_dir`` (default ``output_dir/cache``) and reused by any run with the
    same data settings and VAE weights; ``cache_seed`` (default ``seed``) draws the cached clips,
    so runs of different seeds can share one cache; ``cache_dtype`` is the precision the cached
    latents are kept in, in memory and on disk (a float32 cache also serves bfloat16 runs).
    ``sentences_per_video`` (cached latents only): each batch holds ``batch_size / k`` videos with
    ``k`` of their expressions each, so the sentence is all that tells a video's samples apart
    (the anchor expression is drawn as usual; the others uniformly among its video's other ones)."""

    datasets: list[DatasetConfig] = field(default_factory=list)
    num_frames: int = 17
    size: tuple[int, int] = (480, 832)
    hflip_p: float = 0.5
    sampling: str = "mixed"
    workers: int = 0
    crop: tuple[int, int] | None = None
    cache_latents: bool = False
    cache_dir: str | None = None
    cache_seed: int | None = None
    cache_dtype: str = "bfloat16"
    sentences_per_video: int = 1


@dataclass
class FlowConfig:
    """Flow objective: Boundary-Biased Sampling probability and Start-Point Augmentation strength."""

    bbs_p: float = 0.5
    spa_strength: float = 1.0


@dataclass
class LossConfig:
    """Losses of the VAE stages. autoencoder: ``recon`` (l1 | mse), ``kl_weight``, ``ae_masks``
    (also reconstruct the mask image); mask_decoder: ``bce_weight``, ``dice_weight``."""

    recon: str = "l1"
    kl_weight: float = 1e-4
    ae_masks: bool = True
    bce_weight: float = 1.0
    dice_weight: float = 1.0


@dataclass
class OptimConfig:
    """AdamW; lr warms up linearly over ``warmup_steps`` then stays (constant) or decays (cosine).

    ``decay_start``: the cosine holds ``lr`` until this step, then decays to zero at ``steps``
    (null: it decays from the end of warmup). It lets a resumed run anneal a constant-lr run.
    """

    steps: int = 1000
    lr: float = 5e-5
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0
    batch_size: int = 1
    warmup_steps: int = 0
    schedule: str = "constant"
    decay_start: int | None = None


@dataclass
class EmaConfig:
    """Shadow weights ``ema = d * ema + (1 - d) * w`` each step; ``warmup`` uses
    ``d = min(decay, (1 + step) / (10 + step))``; ``use_at_save`` writes them as the model."""

    enabled: bool = True
    decay: float = 0.9999
    warmup: bool = True
    use_at_save: bool = True


@dataclass
class TrainConfig:
    """Everything a training run reads (``flowrvs train CONFIG.yaml key=value ...``).

    device: null = cuda when available. dtype: weights (float32 | bfloat16). amp: null or
    bfloat16 (autocast). progress: null = a bar only on a terminal. stop_at: end this
    invocation after that step, with a checkpoint and the model folder written there, while
    the lr schedule still runs to ``optim.steps`` (a job with a time limit, or a run resumed
    later on more data, keeps its schedule).
    """

    output_dir: str = "runs/train"
    seed: int = 0
    stage: str = "flow"
    device: str | None = None
    dtype: str = "float32"
    amp: str | None = None
    resume: bool = False
    checkpoint_every: int = 500
    log_every: int = 10
    keep_last: int = 3
    progress: bool | None = None
    stop_at: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, key: str):
    """``value`` (parsed YAML) as type ``tp``, or a FlowRVSError naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise FlowRVSError(f"config key {key} must be a mapping, got {value!r}")
        return _build(tp, value, key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise FlowRVSError(f"config key {key} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise FlowRVSError(f"config key {key} must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}.{i}") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        return origin(_coerce(v, item, f"{key}.{i}") for i, v in enumerate(value))
    if tp is Any:
        return value
    if value is None:
        raise FlowRVSError(f"config key {key} must be a {_type_name(tp)}, got null")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise FlowRVSError(f"config key {key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise FlowRVSError(f"config key {key} must be an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise FlowRVSError(f"config key {key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise FlowRVSError(f"config key {key} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise FlowRVSError(f"config key {key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise FlowRVSError(f"config key {key} must be a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp} for {key}")


def _build(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise FlowRVSError(f"unknown config key {prefix}{key!s} (known in this section: {', '.join(names)})")
    values = {name: _coerce(data[name], hints[name], prefix + name) for name in names if name in data}
    return cls(**values)


def _choice(value, choices, key: str):
    if value not in choices:
        raise FlowRVSError(f"config key {key} must be one of {', '.join(choices)}, got {value!r}")


def validate_config(config: TrainConfig) -> TrainConfig:
    """Range and choice checks; a FlowRVSError names the offending key."""
    _choice(config.stage, STAGES, "stage")
    _choice(config.dtype, ("float32", "bfloat16", "float16"), "dtype")
    _choice(config.data.cache_dtype, ("float32", "bfloat16", "float16"), "data.cache_dtype")
    if config.amp is not None:
        _choice(config.amp, ("bfloat16",), "amp")
    _choice(config.model.vocabulary, VOCABULARIES, "model.vocabulary")
    if config.stage == "autoencoder" and config.model.preset == "wan2.1-1.3b":
        raise FlowRVSError(
            "stage autoencoder stands in for Wan's pretrained VAE and is for small random models only "
            f"(model.preset is {config.model.preset}); start real models from the Wan 2.1 VAE"
        )
    if config.model.source is not None:
        _choice(config.model.source, ("video", "noise"), "model.source")
    if config.model.prediction is not None:
        _choice(config.model.prediction, ("velocity", "mask"), "model.prediction")
    if config.model.text_len is not None and config.model.text_len < 1:
        raise FlowRVSError(f"config key model.text_len must be >= 1, got {config.model.text_len}")
    for i, ds in enumerate(config.data.datasets):
        _choice(ds.type, DATASET_TYPES, f"data.datasets.{i}.type")
        if ds.weight < 0:
            raise FlowRVSError(f"config key data.datasets.{i}.weight must be >= 0, got {ds.weight}")
    _choice(config.data.sampling, SAMPLING_MODES, "data.sampling")
    _choice(config.optim.schedule, SCHEDULES, "optim.schedule")
    _choice(config.losses.recon, ("l1", "mse"), "losses.recon")
    checks = [
        ("data.num_frames", config.data.num_frames >= 1),
        ("data.size", min(config.data.size) >= 16),
        ("data.hflip_p", 0.0 <= config.data.hflip_p <= 1.0),
        ("data.workers", config.data.workers >= 0),
        ("data.sentences_per_video", config.data.sentences_per_video >= 1),
        ("flow.bbs_p", 0.0 <= config.flow.bbs_p <= 1.0),
        ("flow.spa_strength", config.flow.spa_strength >= 0.0),
        ("optim.steps", config.optim.steps >= 1),
        ("optim.lr", config.optim.lr > 0),
        ("optim.weight_decay", config.optim.weight_decay >= 0),
        ("optim.grad_clip", config.optim.grad_clip >= 0),
        ("optim.batch_size", config.optim.batch_size >= 1),
        ("optim.warmup_steps", config.optim.warmup_steps >= 0),
        ("optim.decay_start", config.optim.decay_start is None or 0 <= config.optim.decay_start < config.optim.steps),
        ("optim.eps", config.optim.eps > 0),
        ("optim.betas", all(0.0 <= b < 1.0 for b in config.optim.betas)),
        ("ema.decay", 0.0 <= config.ema.decay < 1.0),
        ("checkpoint_every", config.checkpoint_every >= 1),
        ("log_every", config.log_every >= 1),
        ("keep_last", config.keep_last >= 0),
        ("stop_at", config.stop_at is None or 1 <= config.stop_at <= config.optim.steps),
        ("losses.kl_weight", config.losses.kl_weight >= 0),
        ("losses.bce_weight", config.losses.bce_weight >= 0),
        ("losses.dice_weight", config.losses.dice_weight >= 0),
    ]
    for key, ok in checks:
        if not ok:
            value = config
            for part in key.split("."):
                value = getattr(value, part)
            raise FlowRVSError(f"config key {key} is out of range: {value!r}")
    k = config.data.sentences_per_video
    if k > 1 and not config.data.cache_latents:
        raise FlowRVSError(f"config key data.sentences_per_video={k} needs data.cache_latents=true")
    if config.optim.batch_size % k:
        raise FlowRVSError(f"config key optim.batch_size ({config.optim.batch_size}) must be a multiple of "
                           f"data.sentences_per_video ({k})")
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.steps=200"`` -> ``(["optim", "steps"], 200)``; the value is read as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise FlowRVSError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_override(raw: dict, path: list[str], value) -> None:
    """Set ``raw[path[0]][path[1]]... = value``, creating sections; list items by index."""
    node = raw
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        dotted = ".".join(path[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise FlowRVSError(f"override {'.'.join(path)}: {'.'.join(path[:depth])} has no item {part}")
            key = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise FlowRVSError(f"override {'.'.join(path)}: {'.'.join(path[:depth])} is not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]
            if not isinstance(node, (dict, list)):
                raise FlowRVSError(f"override {'.'.join(path)}: {dotted} is not a section")


def config_from_dict(raw: dict, overrides: list[str] = ()) -> TrainConfig:
    """A checked :class:`TrainConfig` from a mapping (parsed YAML) and dotted ``key=value`` overrides."""
    import copy

    raw = copy.deepcopy(raw or {})
    if not isinstance(raw, dict):
        raise FlowRVSError("a training config must be a mapping of sections")
    for text in overrides:
        path, value = parse_override(text)
        apply_override(raw, path, value)
    return validate_config(_build(TrainConfig, raw))


def load_config(path: str | Path | None, overrides: list[str] = (), resume: bool | None = None) -> TrainConfig:
    """Read a YAML config file (or only defaults when ``path`` is None) and apply overrides."""
    import yaml

    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise FlowRVSError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise FlowRVSError(f"cannot read config file {path}: {err}") from None
        except yaml.YAMLError as err:
            raise FlowRVSError(f"config file {path} is not valid YAML: {first_line(err, 'bad YAML')}") from None
        if not isinstance(raw, dict):
            raise FlowRVSError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    config = config_from_dict(raw, list(overrides))
    if resume:
        config.resume = True
    return config


def dump_config(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# =========================================================================== model
HEAD = "decoder.conv_out."


def _with_head(vae, out_channels: int, head: dict | None = None):
    """A copy of ``vae`` with ``out_channels`` decoder outputs: every weight but the head copied;
    the head from ``head`` (``weight``/``bias``), else freshly initialised (seed it first)."""
    from diffusers import AutoencoderKLWan

    config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    config["out_channels"] = out_channels
    with torch.device(vae.device):
        copy = AutoencoderKLWan.from_config(config)
    if copy.dtype != vae.dtype:
        copy.to(dtype=vae.dtype)
    state = copy.state_dict()
    state.update({k: v for k, v in vae.state_dict().items() if not k.startswith(HEAD)})
    state.update({HEAD + k: v for k, v in (head or {}).items()})
    copy.load_state_dict(state)
    return copy


def to_mask_vae(vae):
    """A 1-channel (mask) copy of an RGB ``AutoencoderKLWan``: every weight copied except
    ``decoder.conv_out``, whose single output channel is the mean of the RGB ones (a mask is
    encoded as a grey {-1, 1} image, so the mean channel of its reconstruction is already a
    logit of the right sign)."""
    conv = vae.decoder.conv_out
    with torch.no_grad():
        head = {"weight": conv.weight.mean(0, keepdim=True), "bias": conv.bias.mean(0, keepdim=True)}
    return _with_head(vae, 1, head)


def to_rgb_vae(vae, seed: int = 0):
    """An RGB (3-channel) ``AutoencoderKLWan`` with the config of ``vae``, every weight but
    ``decoder.conv_out`` copied from it (the RGB head is random, seeded)."""
    torch.manual_seed(seed)
    return _with_head(vae, 3)


def synth_vocabulary() -> list[str]:
    from .synth import VOCABULARY

    return ["<pad>", "</s>", "<unk>"] + list(VOCABULARY)


def load_model(model: ModelConfig, seed: int, device, dtype):
    """The pipeline a stage starts from (see :class:`ModelConfig`)."""
    from .models.dit import add_video_injection, remove_video_injection
    from .pipeline import FlowRVSConfig, FlowRVSPipeline
    from .presets import PRESETS, build_pipeline, preset_dir

    overrides = {
        k: getattr(model, k)
        for k in ("text_len", "mask_latent_normalized", "source", "prediction")
        if getattr(model, k) is not None
    }
    if model.init is None:
        if model.preset not in PRESETS:
            raise FlowRVSError(f"config key model.preset must be one of {', '.join(PRESETS)}, got {model.preset!r}")
        words = synth_vocabulary() if model.vocabulary == "synth" else None
        if words is None and not (preset_dir(model.preset) / "vocab.txt").is_file():
            raise FlowRVSError(
                f"preset {model.preset} has no offline tokenizer: set model.init to a model folder "
                "(or model.vocabulary=synth for a random word-level one)"
            )
        pipe = build_pipeline(model.preset, dvi=model.dvi, seed=seed, words=words, **overrides)
        return pipe.to(device) if dtype == pipe.dtype else pipe.to(device, dtype)
    pipe = FlowRVSPipeline.from_pretrained(model.init, device=device, dtype=dtype)
    transformer, vae = pipe.transformer, pipe.vae
    if vae.config.out_channels != 1:
        vae = to_mask_vae(vae)
    if model.dvi and not pipe.dvi:
        transformer = add_video_injection(transformer)
    elif not model.dvi and pipe.dvi:
        transformer = remove_video_injection(transformer)
    config = FlowRVSConfig(**{**pipe.config.to_dict(), **overrides})
    return FlowRVSPipeline(transformer, vae, pipe.text_encoder, pipe.tokenizer, config).to(device)


# =========================================================================== data
def build_datasets(config: TrainConfig) -> list:
    """``[(ReferringVideoDataset, weight), ...]`` of ``data.datasets``."""
    if not config.data.datasets:
        raise FlowRVSError("data.datasets is empty: name at least one dataset (type, root, split)")
    out = []
    for i, ds in enumerate(config.data.datasets):
        if not ds.root:
            raise FlowRVSError(f"config key data.datasets.{i}.root is empty")
        if not Path(ds.root).exists():
            raise FlowRVSError(f"data.datasets.{i}.root {ds.root} does not exist")
        if ds.type == "mevis":
            from .data.mevis import MeViSDataset

            reader = MeViSDataset(ds.root, ds.split)
        elif ds.type == "ytvos":
            from .data.ytvos import RefYouTubeVOSDataset

            reader = RefYouTubeVOSDataset(ds.root, ds.split)
        elif ds.type == "davis":
            from .data.davis import RefDAVISDataset

            reader = RefDAVISDataset(ds.root, ds.split)
        else:
            from .data.refcoco import RefCOCODataset

            reader = RefCOCODataset(
                ds.root, dataset=ds.name or "refcoco", split=ds.split, num_frames=config.data.num_frames, seed=config.seed
            )
        out.append((reader, ds.weight))
    return out


class StepClips(torch.utils.data.Dataset):
    """Item ``g`` is clip ``g % per_step`` of step ``g // per_step`` (0-based) of a ClipDataset:
    the clips of a step depend on ``(seed, step)`` only, whatever ran before."""

    def __init__(self, clips, per_step: int):
        self.clips = clips
        self.per_step = per_step

    def __len__(self) -> int:  # unbounded in principle; the batch sampler decides
        return 2**62

    def __getitem__(self, g: int):
        step, j = divmod(int(g), self.per_step)
        self.clips.set_epoch(step)
        return self.clips[j]


def collate_clips(clips) -> dict:
    """A batch dict for the losses: ``video`` ``(B, 3, T', h, w)`` in [-1, 1], ``mask``
    ``(B, T', h, w)`` in {0, 1} (T' = 4k+1), ``prompts``. Clips are brought to the first clip's size."""
    from .frames import frames_to_tensor, masks_to_tensor

    size = tuple(clips[0].frames.shape[1:3])
    return {
        "video": torch.cat([frames_to_tensor(c.frames, size) for c in clips]),
        "mask": torch.cat([masks_to_tensor(c.mask, size) for c in clips]),
        "prompts": [c.sentence for c in clips],
    }


def make_batches(config: TrainConfig, start_step: int, rank: int = 0, world_size: int = 1):
    """Iterator over the batches of steps ``start_step + 1 .. optim.steps`` of this rank."""
    from .data.sampling import ClipDataset

    bs = config.optim.batch_size
    per_step = bs * world_size
    clips = ClipDataset(
        build_datasets(config),
        num_frames=config.data.num_frames,
        size_box=tuple(config.data.size),
        hflip_p=config.data.hflip_p,
        seed=config.seed,
        mode=config.data.sampling,
        length=per_step,
    )
    sampler = [
        [(step - 1) * per_step + rank * bs + b for b in range(bs)]
        for step in range(start_step + 1, config.optim.steps + 1)
    ]
    loader = torch.utils.data.DataLoader(
        StepClips(clips, per_step),
        batch_sampler=sampler,
        collate_fn=collate_clips,
        num_workers=config.data.workers,
    )
    return iter(loader)


# =========================================================================== stages
def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - (2 |P∩G| + eps) / (|P| + |G| + eps)`` per sample on sigmoid probabilities, averaged."""
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def random_crop(batch: dict, crop, generator: torch.Generator) -> dict:
    """The same random ``crop = (h, w)`` pixel window of ``video`` and ``mask`` (multiples of 8:
    the VAE is fully convolutional, so its stages can train on windows). ``None``: no crop."""
    if not crop:
        return batch
    height, width = batch["mask"].shape[-2:]
    ch, cw = min(int(crop[0]), height), min(int(crop[1]), width)
    top = int(torch.randint(0, (height - ch) // 8 + 1, (1,), generator=generator)) * 8
    left = int(torch.randint(0, (width - cw) // 8 + 1, (1,), generator=generator)) * 8
    out = dict(batch)
    out["video"] = batch["video"][..., top : top + ch, left : left + cw]
    out["mask"] = batch["mask"][..., top : top + ch, left : left + cw]
    return out


class RunningChannelStats:
    """Exponential moving per-channel mean and variance of latents ``(B, C, T, H, W)``."""

    def __init__(self, decay: float = 0.99):
        self.decay = decay
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.square: torch.Tensor | None = None

    def update(self, z: torch.Tensor) -> None:
        z = z.float().transpose(0, 1).flatten(1)
        mean, square = z.mean(1), z.pow(2).mean(1)
        d = min(self.decay, self.count / (self.count + 1))
        self.mean = mean if self.mean is None else d * self.mean + (1 - d) * mean
        self.square = square if self.square is None else d * self.square + (1 - d) * square
        self.count += 1

    def mean_std(self) -> tuple[list[float], list[float]]:
        std = (self.square - self.mean.pow(2)).clamp_min(1e-8).sqrt()
        return [round(float(v), 4) for v in self.mean], [round(float(v), 4) for v in std]


def mask_loss(logits: torch.Tensor, mask: torch.Tensor, losses: "LossConfig") -> torch.Tensor:
    """``bce_weight * BCE-with-logits + dice_weight * soft Dice`` of mask logits ``(B, T, H, W)``."""
    total = logits.new_zeros(())
    if losses.bce_weight:
        total = total + losses.bce_weight * F.binary_cross_entropy_with_logits(logits, mask)
    if losses.dice_weight:
        total = total + losses.dice_weight * soft_dice_loss(logits, mask)
    return total


class Stage:
    """A training stage: which weights train (``root`` and its parameters with grad), the loss
    of a batch, and how the trained weights become a model folder."""

    name = ""

    def __init__(self, config: TrainConfig, pipe):
        self.config = config
        self.pipe = pipe
        self.root: torch.nn.Module

    def named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.root.named_parameters() if p.requires_grad]

    def loss(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def batches(self, start_step: int, rank: int = 0, world_size: int = 1):
        """Iterator over the batches of steps ``start_step + 1 .. optim.steps``."""
        return make_batches(self.config, start_step, rank, world_size)

    def export(self, folder: Path) -> None:
        """Write the model folder (the trainable weights are whatever ``root`` holds now)."""
        self.pipe.config.size = tuple(self.config.data.size)
        self.pipe.save_pretrained(folder)


class FlowStage(Stage):
    name = "flow"

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
        from .objective import FlowObjective

        self.train_text = config.model.train_text_encoder
        if self.train_text:  # parameter names gain a "transformer." / "text_encoder." prefix
            self.root = torch.nn.ModuleDict({"transformer": pipe.transformer, "text_encoder": pipe.text_encoder})
        else:
            self.root = pipe.transformer
        self.root.requires_grad_(True)
        self.root.train()
        if config.model.gradient_checkpointing:
            pipe.transformer.enable_gradient_checkpointing()
        self.objective = FlowObjective(bbs_p=config.flow.bbs_p, spa_strength=config.flow.spa_strength)

    def loss(self, batch, generator):
        from .objective import training_loss

        if self.train_text:
            batch = {**batch, "text_embeds": self.pipe.prompt_encoder.encode_with_grad(batch["prompts"])}
        return training_loss(self.pipe, batch, self.objective, generator)

    def export(self, folder: Path) -> None:
        self.pipe.prompt_encoder.clear_cache()  # embeddings of a text encoder that has changed since
        super().export(folder)

    def batches(self, start_step, rank=0, world_size=1):
        if not self.config.data.cache_latents:
            return super().batches(start_step, rank, world_size)
        from .latent_cache import LatentCache, build_latent_cache

        data = self.config.data
        dtype = getattr(torch, data.cache_dtype)
        caches = []
        for spec, (dataset, _) in zip(data.datasets, build_datasets(self.config)):
            paths = self.cache_paths(spec)
            path = next((p for p in paths if p.is_file()), None)
            if path is not None:
                caches.append(LatentCache.load(path, dtype))
            else:
                caches.append(build_latent_cache(self.pipe, dataset, data.num_frames, data.size,
                                                 data.sampling, self.cache_seed, self.config.progress, dtype))
                caches[-1].save(paths[0])
        cache = LatentCache.concat(caches)
        return self._cached_batches(cache, start_step, rank, world_size)

    @property
    def cache_seed(self) -> int:
        return self.config.seed if self.config.data.cache_seed is None else self.config.data.cache_seed

    def cache_paths(self, spec: DatasetConfig) -> list[Path]:
        """The latent cache file of one dataset, then any file of higher precision that may
        stand in for it: one file per dataset, named by everything that changes its content
        (not its weight), so adding a dataset re-encodes nothing else."""
        from .latent_cache import cache_key

        data = self.config.data
        settings = {
            "dataset": {k: v for k, v in dataclasses.asdict(spec).items() if k != "weight"},
            "frames": data.num_frames, "size": list(data.size), "sampling": data.sampling,
            "seed": self.cache_seed, "normalized": self.pipe.config.mask_latent_normalized,
        }
        folder = Path(data.cache_dir or Path(self.config.output_dir) / "cache")
        stem = f"latents-{cache_key(self.pipe.vae, settings)}"
        float32 = folder / f"{stem}.safetensors"  # the name caches had before cache_dtype existed
        return [float32] if data.cache_dtype == "float32" else [folder / f"{stem}-{data.cache_dtype}.safetensors", float32]

    def _cached_batches(self, cache, start_step, rank, world_size):
        weights = np.array([ds.weight for ds in self.config.data.datasets], dtype=float)[cache.group]
        weights /= weights.sum()
        for step in range(start_step + 1, self.config.optim.steps + 1):
            rng = np.random.default_rng([self.config.seed, step, rank])  # a function of the step: exact resume
            k = self.config.data.sentences_per_video
            anchors = rng.choice(len(cache), size=self.config.optim.batch_size // k, p=weights)
            yield cache.batch(anchors if k == 1 else [i for a in anchors for i in cache.with_video_mates(a, k, rng)])


class MaskDecoderStage(Stage):
    name = "mask_decoder"

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
        self.root = pipe.vae
        for part in (pipe.vae.post_quant_conv, pipe.vae.decoder):
            part.requires_grad_(True)
            part.train()

    def loss(self, batch, generator):
        from .models.vae import decode_mask_logits, encode_mask

        vae, normalized = self.pipe.vae, self.pipe.config.mask_latent_normalized
        mask = random_crop(batch, self.config.data.crop, generator)["mask"].to(self.pipe.device)
        with torch.no_grad():
            z = encode_mask(vae, mask.to(vae.dtype), normalized)
        logits = decode_mask_logits(vae, z, normalized).float()
        return mask_loss(logits, mask.float(), self.config.losses)


class AutoencoderStage(Stage):
    name = "autoencoder"

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
        self.root = to_rgb_vae(pipe.vae, seed=config.seed)
        self.root.requires_grad_(True)
        self.root.train()
        self.latent_stats = RunningChannelStats()

    def loss(self, batch, generator):
        from .models.vae import decode_raw

        vae = self.root
        batch = random_crop(batch, self.config.data.crop, generator)
        video = batch["video"].to(self.pipe.device, vae.dtype)
        if self.config.losses.ae_masks:
            image = (batch["mask"].to(video) * 2 - 1).unsqueeze(1).expand(-1, 3, -1, -1, -1)
            video = torch.cat([video, image])
        posterior = vae.encode(video).latent_dist
        self.latent_stats.update(posterior.mean[: batch["video"].shape[0]].detach())
        eps = torch.randn(posterior.mean.shape, generator=generator, device=video.device, dtype=posterior.mean.dtype)
        z = posterior.mean + posterior.std * eps
        recon = decode_raw(vae, z).float()
        frames = batch["video"].shape[0]
        err = recon[:frames] - video[:frames].float()
        loss = err.abs().mean() if self.config.losses.recon == "l1" else err.pow(2).mean()
        if self.config.losses.ae_masks:
            # masks are mostly background: a pixel loss would let small objects vanish, so the
            # mean channel (the future mask head, see to_mask_vae) gets the mask decoder's loss
            loss = loss + mask_loss(recon[frames:].mean(1), batch["mask"].to(recon), self.config.losses)
        if self.config.losses.kl_weight:
            mean, logvar = posterior.mean.float(), posterior.logvar.float()
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
            loss = loss + self.config.losses.kl_weight * kl
        return loss

    def export(self, folder: Path) -> None:
        # a VAE trained here has its own latent statistics (Wan's do not apply): record them
        # in the config, where the video normalisation reads them
        if self.latent_stats.count:
            mean, std = self.latent_stats.mean_std()
            self.root.register_to_config(latents_mean=mean, latents_std=std)
        self.pipe.vae = to_mask_vae(self.root)
        self.pipe.vae.requires_grad_(False)
        self.pipe.vae.eval()
        super().export(folder)


STAGE_CLASSES = {cls.name: cls for cls in (AutoencoderStage, MaskDecoderStage, FlowStage)}


# =========================================================================== EMA
class EMA:
    """Float32 shadow copies of the trainable parameters."""

    def __init__(self, named: list[tuple[str, torch.nn.Parameter]], decay: float, warmup: bool = True):
        self.decay = decay
        self.warmup = warmup
        self.params = dict(named)
        self.shadow = {n: p.detach().float().clone() for n, p in named}

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, step: int) -> None:
        weight = 1.0 - self.decay_at(step)
        for name, p in self.params.items():
            self.shadow[name].lerp_(p.detach().float(), weight)

    @contextlib.contextmanager
    @torch.no_grad()
    def applied(self):
        """Swap the shadow weights into the parameters for the duration of the block."""
        backup = {n: p.detach().clone() for n, p in self.params.items()}
        for n, p in self.params.items():
            p.copy_(self.shadow[n].to(p.dtype))
        try:
            yield
        finally:
            for n, p in self.params.items():
                p.copy_(backup[n])


# =========================================================================== checkpoints
def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(step, path), ...]`` of ``output_dir/checkpoints``, oldest first."""
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = CHECKPOINT_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def _rng_metadata() -> dict[str, str]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "rng.numpy": json.dumps([np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]),
        "rng.python": json.dumps([py_state[0], list(py_state[1]), py_state[2]]),
    }


def _restore_rng(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    if "rng.torch_cpu" in tensors:
        torch.set_rng_state(tensors["rng.torch_cpu"])
    if "rng.torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.torch_cuda"])
    if "rng.numpy" in meta:
        name, keys, pos, has_gauss, cached = json.loads(meta["rng.numpy"])
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "rng.python" in meta:
        version, state, gauss = json.loads(meta["rng.python"])
        random.setstate((version, tuple(state), gauss))


def save_checkpoint(
    path: Path, step: int, config: TrainConfig, named, optimizer: torch.optim.Optimizer, ema: EMA | None
) -> None:
    """Write one training checkpoint as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save_file

    from .fileio import atomic_path

    names = [n for n, _ in named]
    tensors: dict[str, torch.Tensor] = {}
    for name, p in named:
        tensors[f"model.{name}"] = p.detach().cpu().contiguous().clone()
    if ema is not None:
        for name, s in ema.shadow.items():
            tensors[f"ema.{name}"] = s.detach().cpu().contiguous().clone()
    state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, entry in state["state"].items():
        name = names[index]
        for key, value in entry.items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"optim.{name}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(name, {})[key] = float(value.item() if torch.is_tensor(value) else value)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.torch_cuda"] = torch.cuda.get_rng_state()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "step": str(step),
        "stage": config.stage,
        "config": json.dumps(config.to_dict()),
        "optimizer": json.dumps({"param_names": names, "state": scalars, "param_groups": groups}),
        **_rng_metadata(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_checkpoint(path: Path, prefixes: tuple[str, ...] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a flowrvs training checkpoint (only keys with ``prefixes``, if given)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys() if prefixes is None or k.startswith(prefixes)}
    except Exception as err:  # safetensors raises its own error types
        raise FlowRVSError(f"cannot read checkpoint {path}: {first_line(err)}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FlowRVSError(f"{path} is not a flowrvs training checkpoint")
    return tensors, meta


@torch.no_grad()
def copy_weights(path: Path, tensors: dict[str, torch.Tensor], named, use_ema: bool) -> None:
    """Copy a checkpoint's ``model.`` (or, where present, ``ema.``) weights into ``named`` parameters."""
    for name, p in named:
        src = tensors.get(f"ema.{name}") if use_ema else None
        src = tensors.get(f"model.{name}") if src is None else src
        if src is None:
            raise FlowRVSError(f"checkpoint {path} lacks {name} (another model or stage?)")
        if src.shape != p.shape:
            raise FlowRVSError(f"checkpoint {path}: {name} has shape {tuple(src.shape)}, the model {tuple(p.shape)}")
        p.copy_(src)


def load_checkpoint(path: Path, config: TrainConfig, named, optimizer: torch.optim.Optimizer, ema: EMA | None) -> int:
    """Restore weights, optimizer, EMA and RNG states from ``path``; returns its step."""
    tensors, meta = read_checkpoint(path)
    if meta.get("stage") != config.stage:
        raise FlowRVSError(f"checkpoint {path} is of stage {meta.get('stage')}, this run is stage {config.stage}")
    opt_meta = json.loads(meta["optimizer"])
    names = [n for n, _ in named]
    if opt_meta["param_names"] != names:
        raise FlowRVSError(f"checkpoint {path} trains other parameters than this run (another model or stage?)")
    copy_weights(path, tensors, named, use_ema=False)
    with torch.no_grad():
        if ema is not None:
            for name in names:
                if f"ema.{name}" in tensors:
                    ema.shadow[name].copy_(tensors[f"ema.{name}"])
                else:
                    ema.shadow[name].copy_(tensors[f"model.{name}"])
    device_of = {n: p.device for n, p in named}
    state: dict[int, dict] = {}
    for index, name in enumerate(names):
        entry = {}
        prefix = f"optim.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                entry[key[len(prefix) :]] = value.to(device_of[name])
        for key, value in opt_meta["state"].get(name, {}).items():
            entry[key] = torch.tensor(value, dtype=torch.float32)
        if entry:
            state[index] = entry
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in opt_meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    _restore_rng(meta, tensors)
    return int(meta["step"])


def export_checkpoint(checkpoint: str | Path, out: str | Path, use_ema: bool = True) -> Path:
    """Turn one training checkpoint into a model folder, as the run would have written at that step.

    The run's config travels in the checkpoint; its ``model.init`` folder must still exist
    (the weights a stage does not train come from there). ``use_ema`` picks the EMA weights
    when the checkpoint holds them. Returns the folder, written atomically.
    """
    from .pipeline import DTYPES

    path = Path(checkpoint)
    if not path.is_file():
        raise FlowRVSError(f"no such checkpoint: {path}")
    tensors, meta = read_checkpoint(path, ("ema.", "model.") if use_ema else ("model.",))
    config = config_from_dict(json.loads(meta["config"]))
    pipe = load_model(config.model, config.seed, torch.device("cpu"), DTYPES[config.dtype])
    stage = STAGE_CLASSES[config.stage](config, pipe)
    copy_weights(path, tensors, stage.named_parameters(), use_ema)
    stage.export(Path(out))
    return Path(out)


# =========================================================================== the loop
@dataclass
class TrainResult:
    """What a run did: ``losses`` maps each step run in this call to its loss."""

    stage: str
    step: int
    losses: dict[int, float]
    model_dir: Path
    checkpoint: Path | None
    seconds: float


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of every random draw of one step."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1, np.uint64)[0] >> 1)


def lr_at(optim: OptimConfig, step: int) -> float:
    """Learning rate of (1-based) ``step``: linear warmup, then constant or cosine to zero."""
    if optim.warmup_steps and step <= optim.warmup_steps:
        return optim.lr * step / optim.warmup_steps
    if optim.schedule == "cosine":
        start = max(optim.warmup_steps, optim.decay_start or 0)
        progress = min(1.0, max(0, step - start) / max(1, optim.steps - start))
        return optim.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return optim.lr


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _log(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text + "\n")


def train(
    config: TrainConfig,
    rank: int = 0,
    world_size: int = 1,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Run (or resume) one stage as ``config`` says; returns a :class:`TrainResult`.

    ``rank``/``world_size`` pick this process's clips of each step (single process for now:
    no gradient all-reduce yet); only rank 0 writes. ``callback(step, loss)`` runs after
    every step (tests use it to interrupt a run).
    """
    from tqdm.auto import tqdm

    from .pipeline import resolve_device_dtype

    validate_config(config)
    if world_size != 1:
        raise FlowRVSError("multi-process training is not supported yet (world_size must be 1)")
    started = time.perf_counter()
    device, dtype = resolve_device_dtype(config.device, config.dtype)
    out = Path(config.output_dir)
    checkpoints = list_checkpoints(out)
    if checkpoints and not config.resume:
        raise FlowRVSError(
            f"{out} already holds checkpoints (last: step {checkpoints[-1][0]}); "
            "pass --resume (resume=true) to continue, or choose another output_dir"
        )
    main_process = rank == 0

    _seed_everything(config.seed)
    pipe = load_model(config.model, config.seed, device, dtype)
    stage = STAGE_CLASSES[config.stage](config, pipe)
    named = stage.named_parameters()
    if not named:
        raise FlowRVSError(f"stage {config.stage} has nothing to train")
    optimizer = torch.optim.AdamW(
        [p for _, p in named],
        lr=config.optim.lr,
        betas=tuple(config.optim.betas),
        eps=config.optim.eps,
        weight_decay=config.optim.weight_decay,
    )
    ema = EMA(named, config.ema.decay, config.ema.warmup) if config.ema.enabled else None

    start = 0
    last_checkpoint = None
    if config.resume and checkpoints:
        start = load_checkpoint(checkpoints[-1][1], config, named, optimizer, ema)
        last_checkpoint = checkpoints[-1][1]
        if start > config.optim.steps:
            raise FlowRVSError(f"checkpoint is at step {start}, past optim.steps={config.optim.steps}")
        if config.stop_at is not None and start > config.stop_at:
            raise FlowRVSError(f"checkpoint is at step {start}, past stop_at={config.stop_at}")
    for group in optimizer.param_groups:  # the config's hyper-parameters win over a checkpoint's
        group.update(weight_decay=config.optim.weight_decay, betas=tuple(config.optim.betas), eps=config.optim.eps)

    log_path = out / LOG_FILE
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        from .fileio import atomic_path

        with atomic_path(out / CONFIG_FILE) as tmp:
            tmp.write_text(dump_config(config))
            tmp.chmod(0o644)
        _log(log_path, f"# stage={config.stage} start_step={start} steps={config.optim.steps} "
                       f"device={device.type} dtype={str(dtype).replace('torch.', '')} trainable={sum(p.numel() for _, p in named)}")

    end = config.optim.steps if config.stop_at is None else config.stop_at
    batches = stage.batches(start, rank, world_size) if start < end else iter(())
    amp = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.amp == "bfloat16"
        else contextlib.nullcontext()
    )
    params = [p for _, p in named]
    losses: dict[int, float] = {}
    window: list[float] = []
    bar = tqdm(
        total=end,
        initial=start,
        desc=f"train {config.stage}",
        unit="step",
        disable=(not main_process) or (None if config.progress is None else not config.progress),
    )
    try:
        for step in range(start + 1, end + 1):
            batch = next(batches)
            seed = step_seed(config.seed, step, rank)
            _seed_everything(seed)
            generator = torch.Generator(device=device).manual_seed(seed)
            lr = lr_at(config.optim, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with amp:
                loss = stage.loss(batch, generator)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FlowRVSError(
                    f"loss is {value} at step {step}; lower optim.lr (now {config.optim.lr:g}) "
                    "or check the data and optim.grad_clip"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(step)
            losses[step] = value
            window.append(value)
            bar.update()
            bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.2g}")
            if main_process and (step % config.log_every == 0 or step == end):
                _log(log_path, f"step={step} loss={sum(window) / len(window):.6g} lr={lr:.3e} "
                               f"seconds={time.perf_counter() - started:.2f}")
                window = []
            if main_process and (step % config.checkpoint_every == 0 or step == end):
                last_checkpoint = out / "checkpoints" / f"step-{step:08d}.safetensors"
                save_checkpoint(last_checkpoint, step, config, named, optimizer, ema)
                if config.keep_last:
                    for _, old in list_checkpoints(out)[: -config.keep_last]:
                        old.unlink(missing_ok=True)
            if callback is not None:
                callback(step, value)
    finally:
        bar.close()

    model_dir = out / MODEL_DIR
    if main_process:
        with (ema.applied() if ema is not None and config.ema.use_at_save else contextlib.nullcontext()):
            stage.export(model_dir)
        _log(log_path, f"# wrote {model_dir} (ema={ema is not None and config.ema.use_at_save}) "
                       f"seconds={time.perf_counter() - started:.2f}")
    return TrainResult(
        stage=config.stage,
        step=end,
        losses=losses,
        model_dir=model_dir,
        checkpoint=last_checkpoint,
        seconds=time.perf_counter() - started,
    )

"""The training config: dataclasses as the schema, OmegaConf for YAML, merging and overrides.

``flowrvs train CONFIG.yaml key=value ...`` reads the YAML into the structured schema of
:class:`TrainConfig` (unknown keys and values of the wrong type are refused by OmegaConf, with
the key named), applies dotted overrides (values are YAML: ``data.size=[64,112]``,
``data.datasets.0.weight=2``), then :func:`validate_config` checks ranges and choices. Every
problem is one :class:`~flowrvs.errors.FlowRVSError` line naming the key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.io.frames import RESIZE_RULES, WORKING_BOX

STAGES = ("autoencoder", "mask_decoder", "flow")
SAMPLING_MODES = ("local", "global", "mixed")
MIXINGS = ("weighted", "alternate")
VOCABULARIES = ("preset", "synth")
SCHEDULES = ("constant", "cosine", "step")
METHODS = ("flowrvs", "rem")
STRATEGIES = ("ddp", "fsdp")
DTYPE_NAMES = ("float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    """What model trains. ``init``: null = random weights of ``preset`` (seeded by ``seed``), else a
    model folder (a previous stage's ``output_dir/model``, a shipped model name, or a Wan 2.1
    diffusers folder: its RGB VAE becomes a mask VAE, its DiT is widened for DVI).
    ``text_len``/``mask_latent_normalized``/``source``/``prediction``: null keeps the init's
    (or preset's) value. ``vocabulary`` (random tiny models only): ``preset`` word list or
    ``synth`` (the synthetic benchmark's words). ``gradient_checkpointing``: recompute the DiT's
    blocks in the backward pass (``transformer.enable_gradient_checkpointing()``).
    ``train_text_encoder``: the flow stage trains the text encoder with the DiT (for small models
    whose text side starts random; the paper keeps umT5 frozen).

    ``method``: ``flowrvs`` (the flow-matching objective, a mask VAE, DVI) or ``rem`` (REM,
    ReferEverything: the flow stage trains the stock 16-channel DiT as a
    :class:`~flowrvs.pipelines.pipeline_rem.REMPipeline`, one pass at timestep 0 from the
    normalised video latent to the normalised latent of the mask picture, MSE; VAE, text
    encoder, ``patch_embedding`` and ``condition_embedder`` frozen; ``init`` a REM model folder or
    a Wan 2.1 T2V diffusers folder, null a random ``preset``; ``dvi`` and ``flow.*`` do not apply)."""

    preset: str = "tiny"
    method: str = "flowrvs"
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
    """One training dataset of :data:`flowrvs.data.REGISTRY` (``type``). ``name``: the RefCOCO
    variant (refcoco, refcoco+, refcocog). ``num_frames``: its clips' length (null:
    ``data.num_frames``; RefCOCO's pseudo-videos are that long). ``group``: with
    ``data.mixing: alternate``, the group of datasets it is drawn with (see :class:`DataConfig`)."""

    type: str = "mevis"
    root: str = ""
    split: str = "train"
    weight: float = 1.0
    name: str | None = None
    num_frames: int | None = None
    group: int = 0


@dataclass
class DataConfig:
    """Clips: ``num_frames`` frames (padded to 4k+1), resized into the ``size`` box by
    ``resize_rule`` (one of :data:`flowrvs.io.frames.RESIZE_RULES`, as a model folder's:
    ``oriented`` keeps the aspect in the box turned to the frame, ``exact`` stretches to the box
    itself, REM's 512x512), flipped with ``hflip_p``; frame indices by ``sampling`` (local |
    global | mixed).
    ``crop``: the VAE stages train on random ``(h, w)`` pixel windows (multiples of 8).
    ``cache_latents`` (flow stage): train on pre-encoded latents (``flowrvs cache``: one fixed clip
    per video, the VAE posterior's mean and std, so SPA still draws a fresh start point each
    step, and the text embeddings; no flips), stored under ``cache_dir`` (default
    ``output_dir/cache``) and built on first use when missing; ``cache_seed`` (default ``seed``)
    draws the cached clips, so runs of different seeds can share one cache; ``cache_dtype`` is the
    precision the cached latents are kept in, in memory and on disk (a float32 cache also serves
    bfloat16 runs). ``cache_text`` (with ``cache_latents``, unless the text encoder trains): the
    sentences' embeddings are pre-encoded too, and umT5 and the VAE encoder are freed before the
    first step. ``sentences_per_video`` (cached latents only): each batch holds
    ``batch_size / k`` videos with ``k`` of their expressions each.

    ``mixing``: how the datasets share the steps. ``weighted``: every sample of every step draws
    its dataset by weight (all datasets make clips of one length). ``alternate``: the datasets'
    ``group`` numbers ``0 .. G-1`` take the steps in turn, step ``s`` (1-based) drawing its whole
    batch from group ``(s - 1) % G``, by weight within it; each group has its own clip length (REM:
    a step of 1-frame RefCOCO images, then a step of 17-frame Ref-YouTube-VOS clips). Video only
    (not with ``cache_latents``)."""

    datasets: list[DatasetConfig] = field(default_factory=list)
    num_frames: int = 17
    size: tuple[int, int] = WORKING_BOX
    resize_rule: str = "oriented"
    hflip_p: float = 0.5
    sampling: str = "mixed"
    workers: int = 0
    crop: tuple[int, int] | None = None
    cache_latents: bool = False
    cache_dir: str | None = None
    cache_seed: int | None = None
    cache_dtype: str = "bfloat16"
    cache_text: bool = False
    sentences_per_video: int = 1
    mixing: str = "weighted"


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

    ``batch_size`` is the global batch of one step: each of N processes takes ``batch_size / N``
    samples, in ``grad_accum`` micro-batches, so a config trains the same at any world size.
    ``decay_start``: the cosine holds ``lr`` until this step, then decays to zero at ``steps``
    (null: it decays from the end of warmup). It lets a resumed run anneal a constant-lr run.
    ``schedule: step``: ``lr`` up to step ``decay_start``, ``lr * decay_factor`` after it (REM's
    schedule). ``no_decay``: parameters whose name (within the trained model, e.g.
    ``blocks.0.norm2.weight``) contains any of these strings train without weight decay
    (REM exempts biases and norms: ``[".bias", "norm", ...]``); empty: every weight decays.
    """

    steps: int = 1000
    lr: float = 5e-5
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0
    batch_size: int = 1
    grad_accum: int = 1
    warmup_steps: int = 0
    schedule: str = "constant"
    decay_start: int | None = None
    decay_factor: float = 0.1
    no_decay: list[str] = field(default_factory=list)


@dataclass
class EmaConfig:
    """Shadow weights (diffusers ``EMAModel``) ``ema = d * ema + (1 - d) * w`` each step;
    ``warmup`` uses ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (else ``d = decay``);
    ``use_at_save`` writes them as the model."""

    enabled: bool = True
    decay: float = 0.9999
    warmup: bool = True
    use_at_save: bool = True


@dataclass
class DistConfig:
    """Many processes (``torchrun --nproc_per_node N -m flowrvs train ...``): ``strategy`` ddp
    (replicated weights, all-reduced gradients) or fsdp (the flow stage's DiT sharded with FSDP2
    ``fully_shard``, one unit per block); ``backend`` null = nccl on cuda, gloo on cpu."""

    strategy: str = "ddp"
    backend: str | None = None


@dataclass
class TensorBoardConfig:
    """TensorBoard logs under ``output_dir/tensorboard`` (rank 0 only): loss, lr, grad norm,
    samples/s and memory every ``log_every`` steps; every ``image_every`` steps (0 = never) the
    predicted masks of ``image_clips`` fixed clips of the first dataset's ``image_split``
    (null: its training split), solved in ``image_steps`` flow steps."""

    enabled: bool = True
    image_every: int = 0
    image_clips: int = 2
    image_split: str | None = None
    image_steps: int = 1


@dataclass
class TrainConfig:
    """Everything a training run reads (``flowrvs train CONFIG.yaml key=value ...``).

    device: null = cuda when available. dtype: weights (float32 | bfloat16). amp: null or
    bfloat16 (autocast: bf16 mixed precision). progress: null = a bar only on a terminal.
    stop_at: end this invocation after that step, with a checkpoint and the model folder written
    there, while the lr schedule still runs to ``optim.steps`` (a job with a time limit, or a run
    resumed later on more data, keeps its schedule).
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
    dist: DistConfig = field(default_factory=DistConfig)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _choice(value, choices, key: str):
    if value not in choices:
        raise FlowRVSError(f"config key {key} must be one of {', '.join(choices)}, got {value!r}")


def validate_config(config: TrainConfig) -> TrainConfig:
    """Range and choice checks; a FlowRVSError names the offending key."""
    from flowrvs.data import REGISTRY

    _choice(config.stage, STAGES, "stage")
    _choice(config.dtype, DTYPE_NAMES, "dtype")
    _choice(config.data.cache_dtype, DTYPE_NAMES, "data.cache_dtype")
    if config.amp is not None:
        _choice(config.amp, ("bfloat16",), "amp")
    _choice(config.model.vocabulary, VOCABULARIES, "model.vocabulary")
    _choice(config.model.method, METHODS, "model.method")
    if config.model.method == "rem":
        _check_rem(config)
    _choice(config.dist.strategy, STRATEGIES, "dist.strategy")
    if config.dist.backend is not None:
        _choice(config.dist.backend, ("gloo", "nccl"), "dist.backend")
    if config.stage == "autoencoder" and config.model.preset.startswith("wan"):
        raise FlowRVSError(
            "stage autoencoder stands in for Wan's pretrained VAE and is for small random models only "
            f"(model.preset is {config.model.preset}); start real models from the Wan 2.1 VAE"
        )
    if config.dist.strategy == "fsdp" and config.stage != "flow":
        raise FlowRVSError(f"config key dist.strategy=fsdp shards the DiT of the flow stage; stage {config.stage} uses ddp")
    if config.model.source is not None:
        _choice(config.model.source, ("video", "noise"), "model.source")
    if config.model.prediction is not None:
        _choice(config.model.prediction, ("velocity", "mask"), "model.prediction")
    if config.model.text_len is not None and config.model.text_len < 1:
        raise FlowRVSError(f"config key model.text_len must be >= 1, got {config.model.text_len}")
    for i, ds in enumerate(config.data.datasets):
        _choice(ds.type, tuple(REGISTRY), f"data.datasets.{i}.type")
        if ds.weight < 0:
            raise FlowRVSError(f"config key data.datasets.{i}.weight must be >= 0, got {ds.weight}")
        if ds.num_frames is not None and ds.num_frames < 1:
            raise FlowRVSError(f"config key data.datasets.{i}.num_frames must be >= 1, got {ds.num_frames}")
    _choice(config.data.sampling, SAMPLING_MODES, "data.sampling")
    _choice(config.data.mixing, MIXINGS, "data.mixing")
    _check_mixing(config.data)
    _choice(config.data.resize_rule, RESIZE_RULES, "data.resize_rule")
    _choice(config.optim.schedule, SCHEDULES, "optim.schedule")
    _choice(config.losses.recon, ("l1", "mse"), "losses.recon")
    _check_ranges(config)
    if any(not part for part in config.optim.no_decay):
        raise FlowRVSError("config key optim.no_decay holds an empty string, which every parameter name contains")
    if config.optim.schedule == "step" and config.optim.decay_start is None:
        raise FlowRVSError("config key optim.decay_start must be set for optim.schedule=step (the step the lr drops after)")
    k = config.data.sentences_per_video
    if k > 1 and not config.data.cache_latents:
        raise FlowRVSError(f"config key data.sentences_per_video={k} needs data.cache_latents=true")
    if config.optim.batch_size % k:
        raise FlowRVSError(f"config key optim.batch_size ({config.optim.batch_size}) must be a multiple of "
                           f"data.sentences_per_video ({k})")
    if config.optim.batch_size % config.optim.grad_accum:
        raise FlowRVSError(f"config key optim.batch_size ({config.optim.batch_size}) must be a multiple of "
                           f"optim.grad_accum ({config.optim.grad_accum})")
    return config


def _check_pair(key: str, values, kind: type) -> None:
    """``values`` are two numbers of ``kind`` (a list key of the schema, which OmegaConf leaves unchecked inside)."""
    items = list(values)
    if len(items) != 2 or not all(isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool)
                                  for v in items):
        raise FlowRVSError(f"config key {key} must be two {'numbers' if kind is float else 'integers'}, got {items}")


def _check_ranges(config: TrainConfig) -> None:
    """Every numeric key inside its range; a FlowRVSError names the first that is not."""
    _check_pair("data.size", config.data.size, int)
    _check_pair("optim.betas", config.optim.betas, float)
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
        ("optim.grad_accum", config.optim.grad_accum >= 1),
        ("optim.warmup_steps", config.optim.warmup_steps >= 0),
        ("optim.decay_start", config.optim.decay_start is None or 0 <= config.optim.decay_start < config.optim.steps),
        ("optim.eps", config.optim.eps > 0),
        ("optim.decay_factor", 0.0 < config.optim.decay_factor <= 1.0),
        ("optim.betas", all(0.0 <= b < 1.0 for b in config.optim.betas)),
        ("ema.decay", 0.0 <= config.ema.decay < 1.0),
        ("checkpoint_every", config.checkpoint_every >= 1),
        ("log_every", config.log_every >= 1),
        ("keep_last", config.keep_last >= 0),
        ("stop_at", config.stop_at is None or 1 <= config.stop_at <= config.optim.steps),
        ("losses.kl_weight", config.losses.kl_weight >= 0),
        ("losses.bce_weight", config.losses.bce_weight >= 0),
        ("losses.dice_weight", config.losses.dice_weight >= 0),
        ("tensorboard.image_every", config.tensorboard.image_every >= 0),
        ("tensorboard.image_clips", config.tensorboard.image_clips >= 1),
        ("tensorboard.image_steps", config.tensorboard.image_steps >= 1),
    ]
    for key, ok in checks:
        if not ok:
            value = config
            for part in key.split("."):
                value = getattr(value, part)
            raise FlowRVSError(f"config key {key} is out of range: {value!r}")


def dataset_groups(data: DataConfig) -> list[list[int]]:
    """The indices into ``data.datasets`` of each group that takes steps in turn: one group of
    all datasets (``mixing: weighted``), else groups ``0 .. G-1`` by their ``group`` key."""
    if data.mixing == "weighted":
        return [list(range(len(data.datasets)))]
    count = 1 + max((ds.group for ds in data.datasets), default=0)
    return [[i for i, ds in enumerate(data.datasets) if ds.group == g] for g in range(count)]


def clip_frames(data: DataConfig, spec: DatasetConfig) -> int:
    """The length of the clips a dataset makes: its own ``num_frames``, else ``data.num_frames``."""
    return data.num_frames if spec.num_frames is None else spec.num_frames


def _check_mixing(data: DataConfig) -> None:
    """Groups numbered ``0 .. G-1`` (``mixing: alternate`` only), one clip length in each, no cache."""
    for i, ds in enumerate(data.datasets):
        if ds.group and data.mixing != "alternate":
            raise FlowRVSError(f"config key data.datasets.{i}.group applies to data.mixing=alternate only")
        if ds.group < 0:
            raise FlowRVSError(f"config key data.datasets.{i}.group must be >= 0, got {ds.group}")
    for g, members in enumerate(dataset_groups(data) if data.datasets else []):  # none yet: a driver fills them
        if not members:
            raise FlowRVSError(f"config key data.datasets: no dataset is in group {g} (groups are numbered from 0)")
        lengths = sorted({clip_frames(data, data.datasets[i]) for i in members})
        if len(lengths) > 1:
            where = "one step" if data.mixing == "weighted" else f"group {g}"
            raise FlowRVSError(f"config key data.datasets: the datasets of {where} make clips of {lengths} frames; "
                               "a batch has one clip length (data.mixing=alternate gives each group its own)")
    own = data.mixing != "weighted" or any(ds.num_frames not in (None, data.num_frames) for ds in data.datasets)
    if own and data.cache_latents:
        raise FlowRVSError("config key data.cache_latents caches clips of data.num_frames frames for weighted mixing; "
                           "data.mixing=alternate and per-dataset num_frames train on video")


def _check_rem(config: TrainConfig) -> None:
    """What ``model.method=rem`` admits: the flow stage of the stock DiT, REM's fixed settings."""
    model = config.model
    if config.stage != "flow":
        raise FlowRVSError(f"config key model.method=rem trains stage flow only (REM keeps the stock Wan VAE), got stage {config.stage}")
    fixed = {"source": "video", "prediction": "mask", "mask_latent_normalized": True}
    for key, value in fixed.items():
        if getattr(model, key) not in (None, value):
            raise FlowRVSError(f"config key model.{key} must be {value} (or null) with model.method=rem, got {getattr(model, key)!r}")
    if model.train_text_encoder:
        raise FlowRVSError("config key model.train_text_encoder must be false with model.method=rem (REM keeps umT5 frozen)")
    if config.tensorboard.image_steps != 1:
        raise FlowRVSError(f"config key tensorboard.image_steps must be 1 with model.method=rem (one DiT pass), "
                           f"got {config.tensorboard.image_steps}")


def check_world_size(config: TrainConfig, world_size: int) -> int:
    """The micro-batch of one process: ``batch_size / (world_size * grad_accum)``, or a FlowRVSError."""
    share = world_size * config.optim.grad_accum
    if config.optim.batch_size % share:
        raise FlowRVSError(
            f"config key optim.batch_size ({config.optim.batch_size}) is the global batch: it must be a multiple of "
            f"processes x optim.grad_accum ({world_size} x {config.optim.grad_accum})"
        )
    return config.optim.batch_size // share


# --------------------------------------------------------------------------- parsing
def _omegaconf_error(err) -> FlowRVSError:
    """One line naming the key of an OmegaConf error."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    key = re.sub(r"\[(\d+)\]", r".\1", str(getattr(err, "full_key", "") or getattr(err, "key", "") or "?"))
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        cls = getattr(err, "object_type", None)
        known = f" (known in this section: {', '.join(f.name for f in dataclasses.fields(cls))})" if (
            cls is not None and dataclasses.is_dataclass(cls)) else ""
        return FlowRVSError(f"unknown config key {key}{known}")
    message = first_line(getattr(err, "msg", None) or str(err), "invalid value")
    tuple_length = re.match(r"TupleConfig length (\d+) does not match type hint length (\d+)", message)
    if tuple_length:
        return FlowRVSError(f"config key {key} must have {tuple_length[2]} items, got {tuple_length[1]}")
    return FlowRVSError(f"config key {key}: {message}")


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.steps=200"`` -> ``("optim.steps", 200)``; the value is read as YAML."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise FlowRVSError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _check_list_items(cfg, key: str) -> None:
    """A list item named by an override must exist (OmegaConf would say something obscure)."""
    from omegaconf import DictConfig, ListConfig

    node, parts = cfg, key.split(".")
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                raise FlowRVSError(f"override {key}: {'.'.join(parts[:depth])} has no item {part}")
            node = node[int(part)]
        elif isinstance(node, DictConfig):
            if part not in node:
                return  # OmegaConf names the unknown key
            node = node[part]
        else:
            return


def config_from_dict(raw: dict, overrides: list[str] = ()) -> TrainConfig:
    """A checked :class:`TrainConfig` from a mapping (parsed YAML) and dotted ``key=value`` overrides."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(raw or {}, dict):
        raise FlowRVSError("a training config must be a mapping of sections")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), raw or {})
        for text in overrides:
            key, value = parse_override(text)
            _check_list_items(cfg, key)
            OmegaConf.update(cfg, key, value, merge=True)
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise _omegaconf_error(err) from err
    return validate_config(config)


def load_config(path: str | Path | None, overrides: list[str] = (), resume: bool | None = None) -> TrainConfig:
    """Read a YAML config file (or only defaults when ``path`` is None) and apply overrides."""
    import yaml

    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError as err:
            raise FlowRVSError(f"config file {path} does not exist") from err
        except (OSError, UnicodeDecodeError) as err:
            raise FlowRVSError(f"cannot read config file {path}: {err}") from err
        except yaml.YAMLError as err:
            raise FlowRVSError(f"config file {path} is not valid YAML: {first_line(err, 'bad YAML')}") from err
        if not isinstance(raw, dict):
            raise FlowRVSError(f"config file {path} must hold a mapping of sections, not {type(raw).__name__}")
    config = config_from_dict(raw, list(overrides))
    if resume:
        config.resume = True
    return config


def dump_config(config: TrainConfig) -> str:
    """The config as YAML (every key, resolved)."""
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)

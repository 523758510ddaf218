"""The three training stages of FlowRVS and the model each starts from.

``autoencoder`` (small random models only, never the real Wan preset)
    Stands in for Wan's pretrained VAE, which cannot be downloaded here: an RGB
    ``AutoencoderKLWan`` with the model's VAE config (``out_channels=3``) is trained as a video
    auto-encoder (L1 or MSE reconstruction of the video; when ``losses.ae_masks`` also of the
    mask drawn as a {-1, 1} image, scored by the mask loss on the mean output channel; plus
    ``losses.kl_weight`` times the KL to N(0, I)). Its weights then initialise the 1-channel
    mask VAE (:func:`to_mask_vae`).
``mask_decoder``
    VAE encoder frozen; the decoder (``post_quant_conv`` + ``decoder`` with its 1-channel
    head) learns to decode ``encode_mask(mask)`` back to the mask: BCE-with-logits + soft Dice
    on :func:`flowrvs.models.vae.decode_mask_logits`.
``flow``
    Only the DiT trains (and the text encoder with ``model.train_text_encoder``), on
    :func:`flowrvs.training.losses.flow_loss` (BBS ``flow.bbs_p``, SPA ``flow.spa_strength``,
    DVI as the model has it, the parametrisation of the model's config). With
    ``model.method: rem`` (:class:`REMFlowStage`) the model is a ``REMPipeline`` and the loss
    :func:`flowrvs.training.losses.rem_loss`; the DiT's ``patch_embedding`` and
    ``condition_embedder`` stay frozen, as in REM's training.

A stage is a ``torch.nn.Module`` whose ``forward(batch, generators)`` is the loss of a batch, so
DDP and FSDP wrap it whole; its trainable weights are the parameters of ``root`` with grad.
"""

from __future__ import annotations

from pathlib import Path

import torch

from flowrvs.errors import FlowRVSError
from flowrvs.training.config import ModelConfig, TrainConfig
from flowrvs.training.data import cached_batches, random_crop, video_batches
from flowrvs.training.losses import FlowObjective, flow_loss, kl_to_standard_normal, mask_loss

HEAD = "decoder.conv_out."


# --------------------------------------------------------------------------- models
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
    from flowrvs.data.synth.vocabulary import VOCABULARY

    return ["<pad>", "</s>", "<unk>"] + list(VOCABULARY)


STOCK_WAN_CLASS = "WanPipeline"  # the _class_name of a Wan 2.1 T2V diffusers folder's model_index.json


def is_stock_wan(folder) -> bool:
    """Whether ``folder`` is a stock Wan 2.1 diffusers folder (``WanPipeline``), not a model folder."""
    import json

    from flowrvs.loading.model_folder import INDEX_FILE

    try:
        index = json.loads((Path(folder) / INDEX_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(index, dict) and index.get("_class_name") == STOCK_WAN_CLASS


def load_stock_wan(cls, folder, device, dtype, text_encoder: bool):
    """A ``cls`` pipeline (FlowRVSPipeline or REMPipeline, with its default settings) of the stock
    parts of a Wan 2.1 T2V diffusers folder, in ``dtype`` on ``device``: its DiT, its RGB VAE,
    its tokenizer and (with ``text_encoder``; else loaded from the folder when needed) its umT5."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    from flowrvs.errors import first_line
    from flowrvs.loading.model_folder import check_model_dir

    folder = check_model_dir(Path(folder))
    try:
        transformer = WanTransformer3DModel.from_pretrained(str(folder / "transformer"), torch_dtype=dtype)
        vae = AutoencoderKLWan.from_pretrained(str(folder / "vae"), torch_dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
        encoder = UMT5EncoderModel.from_pretrained(str(folder / "text_encoder"), torch_dtype=dtype) if text_encoder else None
    except (OSError, ValueError) as err:  # missing or damaged weight and config files
        raise FlowRVSError(f"cannot load the Wan folder {folder}: {first_line(err)}") from err
    pipe = cls(transformer, vae, encoder, tokenizer)
    pipe._text_encoder_source = folder / "text_encoder"
    return pipe.to(device)


def _load_init(cls, init, device, dtype, text_encoder: bool):
    """The pipeline of ``model.init``: a model folder (any method's), or a stock Wan folder as ``cls``."""
    from flowrvs.pipelines.loader import load_pipeline

    if is_stock_wan(init):
        return load_stock_wan(cls, init, device, dtype, text_encoder)
    return load_pipeline(init, device=device, dtype=dtype, keep_text_encoder=text_encoder)


def load_model(model: ModelConfig, seed: int, device, dtype, text_encoder: bool = True):
    """The pipeline a stage starts from (see :class:`~flowrvs.training.config.ModelConfig`).
    ``text_encoder=False``: a model folder's umT5 is not loaded (its sentences are cached)."""
    from flowrvs.models.dit import add_video_injection, remove_video_injection
    from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
    from flowrvs.presets import build_pipeline

    overrides = {
        k: getattr(model, k)
        for k in ("text_len", "mask_latent_normalized", "source", "prediction")
        if getattr(model, k) is not None
    }
    if model.method == "rem":
        return load_rem_model(model, seed, device, dtype, text_encoder, overrides)
    if model.init is None:
        words = _random_preset_words(model)
        pipe = build_pipeline(model.preset, dvi=model.dvi, seed=seed, words=words, **overrides)
        return pipe.to(device) if dtype == pipe.dtype else pipe.to(device, dtype)
    pipe = _load_init(FlowRVSPipeline, model.init, device, dtype, text_encoder)
    transformer, vae = pipe.transformer, pipe.vae
    if vae.config.out_channels != 1:
        vae = to_mask_vae(vae)
    if model.dvi and not pipe.dvi:
        transformer = add_video_injection(transformer)
    elif not model.dvi and pipe.dvi:
        transformer = remove_video_injection(transformer)
    settings = {k: v for k, v in pipe.config.items() if not k.startswith("_") and k not in pipe.components}
    return FlowRVSPipeline(transformer, vae, pipe.text_encoder, pipe.tokenizer, **{**settings, **overrides}).to(device)


def _random_preset_words(model: ModelConfig) -> list[str] | None:
    """The word list of a random preset model (None: the preset's own), or a one-line error."""
    from flowrvs.presets import PRESETS, preset_dir

    if model.preset not in PRESETS:
        raise FlowRVSError(f"config key model.preset must be one of {', '.join(PRESETS)}, got {model.preset!r}")
    words = synth_vocabulary() if model.vocabulary == "synth" else None
    if words is None and not (preset_dir(model.preset) / "vocab.txt").is_file():
        raise FlowRVSError(
            f"preset {model.preset} has no offline tokenizer: set model.init to a model folder "
            "(or model.vocabulary=synth for a random word-level one)"
        )
    return words


def load_rem_model(model: ModelConfig, seed: int, device, dtype, text_encoder: bool, overrides: dict):
    """The ``REMPipeline`` a REM flow stage starts from: random weights of ``model.preset``
    (seeded), the stock Wan 2.1 T2V diffusers folder ``model.init`` (REM's start: its DiT, its
    3-channel VAE, REM's settings), or a REM model folder (e.g. written by ``flowrvs convert
    --method rem``); ``overrides`` (``text_len``) replace its settings."""
    from flowrvs.pipelines.pipeline_rem import REMPipeline
    from flowrvs.presets import build_pipeline

    if model.init is None:
        words = _random_preset_words(model)
        pipe = build_pipeline(model.preset, method="rem", seed=seed, words=words, **overrides)
        return pipe.to(device) if dtype == pipe.dtype else pipe.to(device, dtype)
    pipe = _load_init(REMPipeline, model.init, device, dtype, text_encoder)
    if not isinstance(pipe, REMPipeline):
        raise FlowRVSError(f"config key model.init: {model.init} holds a {type(pipe).__name__}, and model.method=rem "
                           "needs a REMPipeline folder (flowrvs convert --method rem) or a Wan 2.1 T2V diffusers folder")
    if pipe.transformer.config.in_channels != (pipe.transformer.config.out_channels or pipe.transformer.config.in_channels):
        raise FlowRVSError(f"config key model.init: the DiT of {model.init} has video injection; REM trains the stock one")
    if not overrides:
        return pipe
    settings = {k: v for k, v in pipe.config.items() if not k.startswith("_") and k not in pipe.components}
    return REMPipeline(pipe.transformer, pipe.vae, pipe.text_encoder, pipe.tokenizer, **{**settings, **overrides}).to(device)


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


# --------------------------------------------------------------------------- stages
class Stage(torch.nn.Module):
    """A training stage: which weights train (``root`` and its parameters with grad), the loss
    of a batch (``forward``), its data, and how the trained weights become a model folder."""

    name = ""
    encoders_freed = False  # True when export must rebuild the model from a checkpoint

    def __init__(self, config: TrainConfig, pipe):
        super().__init__()
        self.config = config
        self.pipe = pipe
        self.root: torch.nn.Module

    def named_trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        """``[(name, parameter), ...]`` that train, named within ``root``."""
        return [(n, p) for n, p in self.root.named_parameters() if p.requires_grad]

    def forward(self, batch: dict, generators) -> torch.Tensor:
        return self.loss(batch, generators)

    def loss(self, batch: dict, generators) -> torch.Tensor:
        """Scalar loss of a micro-batch; ``generators``: one per sample."""
        raise NotImplementedError

    def batches(self, start_step: int, rank: int = 0, world_size: int = 1):
        """Per step ``start_step + 1 .. optim.steps``, this process's list of micro-batches."""
        return video_batches(self.config, start_step, rank, world_size)

    def export(self, folder: Path) -> None:
        """Write the model folder (the trainable weights are whatever ``root`` holds now)."""
        size = tuple(self.config.data.size)
        self.pipe.register_to_config(size=size)
        self.pipe.save_pretrained(folder)


class FlowStage(Stage):
    name = "flow"

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
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

    def loss(self, batch, generators):
        if self.train_text:
            batch = {**batch, "text_embeds": self.pipe.prompt_encoder.encode_with_grad(batch["prompts"])}
        return flow_loss(self.pipe, batch, self.objective, generators)

    def export(self, folder: Path) -> None:
        self.pipe.prompt_encoder.clear_cache()  # embeddings of a text encoder that has changed since
        super().export(folder)

    def batches(self, start_step, rank=0, world_size=1):
        if not self.config.data.cache_latents:
            return super().batches(start_step, rank, world_size)
        from flowrvs.training.cache import free_encoders, load_or_build_caches
        from flowrvs.runtime.distributed import Process

        cache, text = load_or_build_caches(self.config, self.pipe, Process(rank, world_size))
        if text is not None and not self.config.tensorboard.image_every:
            free_encoders(self.pipe)  # a flow step needs neither now; the model folder is built from the checkpoint
            self.encoders_freed = True
        return cached_batches(self.config, cache, start_step, rank, world_size, text, self.pipe.config.text_len)


class REMFlowStage(FlowStage):
    """The flow stage of ``model.method: rem``: REM's objective on a ``REMPipeline``.

    As REM trains (``WanVdiff_wrapper`` of its ``models/want2v_wrapper.py``): the whole DiT but
    ``patch_embedding`` and ``condition_embedder`` (time and text embedders), which keep
    ``requires_grad=False`` and stay out of the optimizer; the VAE and umT5 frozen."""

    FROZEN = ("patch_embedding", "condition_embedder")

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
        for name in self.FROZEN:
            getattr(pipe.transformer, name).requires_grad_(False)

    def loss(self, batch, generators):
        from flowrvs.training.losses import rem_loss

        return rem_loss(self.pipe, batch)


class MaskDecoderStage(Stage):
    name = "mask_decoder"

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
        self.root = pipe.vae
        for part in (pipe.vae.post_quant_conv, pipe.vae.decoder):
            part.requires_grad_(True)
            part.train()

    def loss(self, batch, generators):
        from flowrvs.models.vae import decode_mask_logits, encode_mask

        vae, normalized = self.pipe.vae, self.pipe.config.mask_latent_normalized
        mask = random_crop(batch, self.config.data.crop, generators)["mask"].to(self.pipe.device)
        with torch.no_grad():
            z = encode_mask(vae, mask.to(vae.dtype), normalized)
        logits = decode_mask_logits(vae, z, normalized).float()
        return mask_loss(logits, mask.float(), self.config.losses.bce_weight, self.config.losses.dice_weight)


class AutoencoderStage(Stage):
    name = "autoencoder"

    def __init__(self, config, pipe):
        super().__init__(config, pipe)
        self.root = to_rgb_vae(pipe.vae, seed=config.seed)
        self.root.requires_grad_(True)
        self.root.train()
        self.latent_stats = RunningChannelStats()

    def loss(self, batch, generators):
        from flowrvs.flow import gaussian
        from flowrvs.models.vae import decode_raw

        vae, losses = self.root, self.config.losses
        batch = random_crop(batch, self.config.data.crop, generators)
        video = batch["video"].to(self.pipe.device, vae.dtype)
        frames = video.shape[0]
        if losses.ae_masks:
            image = (batch["mask"].to(video) * 2 - 1).unsqueeze(1).expand(-1, 3, -1, -1, -1)
            video = torch.cat([video, image])
        posterior = vae.encode(video).latent_dist
        self.latent_stats.update(posterior.mean[:frames].detach())
        per_sample = list(generators) * (2 if losses.ae_masks else 1) if not isinstance(generators, torch.Generator) else generators
        eps = gaussian(posterior.mean.shape, per_sample, device=video.device, dtype=posterior.mean.dtype)
        recon = decode_raw(vae, posterior.mean + posterior.std * eps).float()
        err = recon[:frames] - video[:frames].float()
        loss = err.abs().mean() if losses.recon == "l1" else err.pow(2).mean()
        if losses.ae_masks:
            # masks are mostly background: a pixel loss would let small objects vanish, so the
            # mean channel (the future mask head, see to_mask_vae) gets the mask decoder's loss
            loss = loss + mask_loss(recon[frames:].mean(1), batch["mask"].to(recon), losses.bce_weight, losses.dice_weight)
        if losses.kl_weight:
            loss = loss + losses.kl_weight * kl_to_standard_normal(posterior.mean, posterior.logvar)
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


def stage_class(config: TrainConfig) -> type[Stage]:
    """The stage class of a config: its ``stage``, with REM's flow stage for ``model.method: rem``."""
    if config.stage == "flow" and config.model.method == "rem":
        return REMFlowStage
    return STAGE_CLASSES[config.stage]

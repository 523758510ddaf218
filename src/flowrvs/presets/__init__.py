"""Presets: named model shapes shipped as package data, and builders of random-weight components.

``wan2.1-1.3b`` holds the real configs of the Wan 2.1 T2V 1.3B diffusers release (umT5-XXL,
the 1.3B DiT, the Wan VAE); build it on the ``meta`` device to check that real checkpoints
fit. ``wan2.1-14b`` is the Wan 2.1 T2V 14B DiT (5120 wide, 40 heads, 40 layers, FFN 13824:
the diffusers release's configuration) with the same VAE and text encoder; it needs FSDP to
train. ``tiny`` has the same architecture at a few hundred thousand parameters and a small
word-level tokenizer; the tests use it. ``small`` (a 6-layer, 128-wide DiT on 4x4 latent
patches, a VAE that compresses 4x in space and time so that small shapes survive the latent,
about 2.4M parameters in all) is what the shipped ``tiny-synthetic`` model is trained from.

Each preset folder has ``transformer/``, ``vae/``, ``text_encoder/`` configs and a
``pipeline.json`` (the settings of :class:`flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline`); ``tiny`` adds ``vocab.txt``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from flowrvs.errors import FlowRVSError

PRESETS = ("wan2.1-1.3b", "wan2.1-14b", "small", "tiny")
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


def preset_dir(name: str) -> Path:
    if name not in PRESETS:
        raise FlowRVSError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return Path(str(resources.files(__package__) / name))


def preset_config(name: str, part: str) -> dict:
    """The JSON config of one part (``transformer``, ``vae``, ``text_encoder``, ``pipeline``)."""
    path = preset_dir(name) / ("pipeline.json" if part == "pipeline" else f"{part}/config.json")
    config = json.loads(path.read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}


def preset_vocabulary(name: str = "tiny") -> list[str]:
    return preset_dir(name).joinpath("vocab.txt").read_text().split()


def build_word_tokenizer(words: list[str]):
    """A lowercase word-level tokenizer (``</s>`` appended, unknown words -> ``<unk>``).

    ``words`` must start with ``<pad>``, ``</s>``, ``<unk>`` (ids 0, 1, 2, as umT5's pad and eos).
    Stands in for umT5's SentencePiece vocabulary in tiny models, which cannot be downloaded.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    if words[:3] != ["<pad>", "</s>", "<unk>"]:
        raise ValueError("a word vocabulary starts with <pad>, </s>, <unk>")
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)


def build_transformer(name: str, dvi: bool = True, device: str | torch.device | None = None):
    """A random-weight Wan DiT of the preset (``device="meta"`` allocates nothing)."""
    from diffusers import WanTransformer3DModel

    from flowrvs.models.dit import dvi_config

    config = preset_config(name, "transformer")
    if dvi:
        config = dvi_config(config)
    with torch.device(device or "cpu"):
        return WanTransformer3DModel.from_config(config)


def build_vae(name: str, device: str | torch.device | None = None, mask_decoder: bool = True):
    """A random-weight Wan VAE of the preset with a 1-channel (mask) decoder head, or with the
    stock 3-channel one (``mask_decoder=False``: REM decodes pictures of masks)."""
    from diffusers import AutoencoderKLWan

    config = preset_config(name, "vae")
    if mask_decoder:
        config["out_channels"] = 1
    with torch.device(device or "cpu"):
        return AutoencoderKLWan.from_config(config)


def build_text_encoder(name: str, vocab_size: int | None = None, device: str | torch.device | None = None):
    """A random-weight umT5 encoder of the preset."""
    from transformers import UMT5Config, UMT5EncoderModel

    config = preset_config(name, "text_encoder")
    if vocab_size is not None:
        config["vocab_size"] = vocab_size
    with torch.device(device or "cpu"):
        return UMT5EncoderModel(UMT5Config(**config))


METHODS = ("flowrvs", "rem")


def build_pipeline(name: str = "tiny", dvi: bool = True, seed: int = 0, words: list[str] | None = None,
                   method: str = "flowrvs", **config):
    """A pipeline of the preset with random weights: a
    :class:`~flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline` (``method="flowrvs"``, with the
    preset's ``pipeline.json`` settings), or a :class:`~flowrvs.pipelines.pipeline_rem.REMPipeline`
    (``"rem"``: the stock DiT and 3-channel VAE decoder, REM's settings; ``dvi`` is ignored).

    Only ``tiny`` (and presets with a ``vocab.txt``) can be built whole: the real umT5
    tokenizer cannot be made offline. ``words`` replaces the preset vocabulary; ``config``
    overrides the settings.
    """
    if method not in METHODS:
        raise FlowRVSError(f"unknown method {method!r}; known methods: {', '.join(METHODS)}")
    words = words or preset_vocabulary(name)
    torch.manual_seed(seed)
    tokenizer = build_word_tokenizer(words)
    rem = method == "rem"
    parts = dict(transformer=build_transformer(name, dvi=dvi and not rem), vae=build_vae(name, mask_decoder=not rem),
                 text_encoder=build_text_encoder(name, vocab_size=len(tokenizer)), tokenizer=tokenizer)
    if rem:
        from flowrvs.pipelines.pipeline_rem import REMPipeline

        return REMPipeline(**parts, **config)
    from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline

    return FlowRVSPipeline(**parts, **{**preset_config(name, "pipeline"), **config})

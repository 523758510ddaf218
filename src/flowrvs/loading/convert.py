"""The public FlowRVS and REM releases, converted into model folders.

The public release is three things:

- the ``Wan2.1-T2V-1.3B-Diffusers`` folder (``transformer/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/``);
- a DiT checkpoint ``.pth``: a bare state dict, ``{"model": sd}``, or
  ``{"model": sd, "ema_model": {..., "shadow_params": [tensors in parameter order]}}``
  (keys possibly prefixed ``module.``); the EMA weights are used when present;
- ``tuned_vae.pth``: ``{"model": sd}`` of a wrapper whose keys start with ``vae.``, the VAE
  with a 1-channel ``decoder.conv_out``.

:func:`convert_release` turns them into a model folder (:mod:`flowrvs.loading.model_folder`)
for :meth:`flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline.from_pretrained`; the weight files
are read and checked by :mod:`flowrvs.loading.state_dicts`.

REM's release is one ``torch.save`` of ``{"model_state": sd, "optimizer": ..., "epoch": ...,
"iteration": ..., "args": argparse.Namespace}`` over the stock ``Wan2.1-T2V-14B-Diffusers``:
``sd`` holds ``backbone.dit.<DiT key>`` and ``backbone.vae.<VAE key>`` tensors, which replace
the base's (the base fills whatever the checkpoint lacks). :func:`convert_rem` reads it
weights-only with ``argparse.Namespace`` as its one allowed class, its tensors mapped from
the file (the optimizer state is never read), and writes a ``REMPipeline`` model folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from transformers import AutoTokenizer

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.io.atomic import atomic_dir
from flowrvs.loading.model_folder import MODEL_PARTS, FlowRVSConfig, link_or_copy_tree, write_model_index
from flowrvs.loading.state_dicts import load_checked, load_weights_file, strip_prefix, tensor_dict
from flowrvs.models.dit import dvi_config
from flowrvs.models.defaults import TEXT_LEN, TEXT_LENS

DIT_PREFIXES = ("module.",)
VAE_PREFIX = "vae."
REM_DIT_PREFIX = "backbone.dit."
REM_VAE_PREFIX = "backbone.vae."


def dit_state_dict(obj, path="checkpoint") -> tuple[dict[str, torch.Tensor], list[torch.Tensor] | None]:
    """``(state_dict, ema_params)`` of a DiT checkpoint in any of the public layouts.

    ``ema_params`` is the EMA's ``shadow_params`` list (in the model's parameter order), or None.
    """
    ema = None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        if isinstance(obj.get("ema_model"), dict) and "shadow_params" in obj["ema_model"]:
            ema = list(obj["ema_model"]["shadow_params"])
        obj = obj["model"]
    state = tensor_dict(obj, path)
    for prefix in DIT_PREFIXES:
        state = strip_prefix(state, prefix)
    return state, ema


def apply_ema(module: torch.nn.Module, state: dict, ema: list[torch.Tensor], path="checkpoint") -> dict:
    """Replace the parameters in ``state`` by the EMA's shadow parameters (matched by order)."""
    names = [name for name, _ in module.named_parameters()]
    if len(ema) != len(names):
        raise FlowRVSError(
            f"checkpoint {path}: the EMA holds {len(ema)} tensors but the model has {len(names)} parameters"
        )
    state = dict(state)
    for name, tensor in zip(names, ema):
        if name in state and tuple(state[name].shape) != tuple(tensor.shape):
            raise FlowRVSError(
                f"checkpoint {path}: EMA tensor for {name} has shape {tuple(tensor.shape)}, "
                f"the model weight {tuple(state[name].shape)}"
            )
        state[name] = tensor
    return state


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise FlowRVSError(f"cannot read {path}: {first_line(err)}") from err
    return {k: v for k, v in config.items() if not k.startswith("_")}


def convert_transformer(wan_dir: Path, dit_path: Path) -> WanTransformer3DModel:
    """The fine-tuned DiT: Wan's config, DVI read off the checkpoint's patch embedding, EMA if present."""
    state, ema = dit_state_dict(load_weights_file(dit_path), dit_path)
    config = _read_config(wan_dir / "transformer")
    patch = state.get("patch_embedding.weight")
    if patch is None:
        raise FlowRVSError(f"checkpoint {dit_path} has no patch_embedding.weight: not a Wan DiT")
    out_channels = config.get("out_channels") or config["in_channels"]
    if patch.shape[1] == 2 * out_channels:
        config = dvi_config(config)
    elif patch.shape[1] != out_channels:
        raise FlowRVSError(
            f"checkpoint {dit_path}: patch_embedding.weight has {patch.shape[1]} input channels, "
            f"expected {out_channels} or {2 * out_channels} (with video injection)"
        )
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(config)
    if ema is not None:
        state = apply_ema(model, state, ema, dit_path)
    return load_checked(model, state, f"checkpoint {dit_path}", assign=True)


def convert_vae(wan_dir: Path, vae_path: Path) -> AutoencoderKLWan:
    """Wan's VAE with the tuned 1-channel mask decoder (tuned tensors override Wan's)."""
    obj = load_weights_file(vae_path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    tuned = tensor_dict(obj, vae_path)
    if any(k.startswith(VAE_PREFIX) for k in tuned):
        tuned = {k[len(VAE_PREFIX) :]: v for k, v in tuned.items() if k.startswith(VAE_PREFIX)}
    head = tuned.get("decoder.conv_out.weight")
    if head is None or head.shape[0] != 1:
        shape = None if head is None else tuple(head.shape)
        raise FlowRVSError(f"checkpoint {vae_path}: decoder.conv_out.weight must have 1 output channel, got {shape}")
    try:
        base = AutoencoderKLWan.from_pretrained(str(wan_dir / "vae")).state_dict()
    except OSError as err:  # diffusers' word for "no weights or config here"
        raise FlowRVSError(f"cannot load the Wan VAE from {wan_dir / 'vae'}: {first_line(err)}") from err
    config = _read_config(wan_dir / "vae")
    config["out_channels"] = 1
    with torch.device("meta"):
        model = AutoencoderKLWan.from_config(config)
    state = {**base, **tuned}
    return load_checked(model, state, f"checkpoint {vae_path}", assign=True)


def _tokenizer_class(folder: Path) -> str:
    """The transformers class that loads the tokenizer in ``folder`` (named in ``model_index.json``)."""
    try:
        return type(AutoTokenizer.from_pretrained(str(folder))).__name__
    except (OSError, ValueError) as err:  # transformers: a bad file (OSError), no tokenizer it can build (ValueError)
        raise FlowRVSError(f"cannot load the tokenizer in {folder}: {first_line(err)}") from err


def _write_model_folder(out_dir, wan_dir: Path, transformer, vae, config: FlowRVSConfig | None,
                        class_name: str = "FlowRVSPipeline") -> Path:
    """Write a model folder atomically: the converted DiT and VAE, the base's umT5 and tokenizer
    (hard-linked where possible), the index naming ``class_name`` with ``config``'s settings."""
    tokenizer_class = _tokenizer_class(wan_dir / "tokenizer")
    with atomic_dir(out_dir) as tmp:
        transformer.save_pretrained(tmp / "transformer")
        vae.save_pretrained(tmp / "vae")
        link_or_copy_tree(wan_dir / "text_encoder", tmp / "text_encoder")
        link_or_copy_tree(wan_dir / "tokenizer", tmp / "tokenizer")
        write_model_index(tmp, config, tokenizer_class, class_name=class_name)
    return Path(out_dir)


def convert_release(
    wan_dir: str | Path,
    dit_path: str | Path,
    vae_path: str | Path,
    out_dir: str | Path,
    mask_latent_normalized: bool = False,
    text_len: int = TEXT_LEN,
) -> Path:
    """Write a flowrvs model folder from the public FlowRVS release (atomically)."""
    wan_dir, dit_path, vae_path = Path(wan_dir), Path(dit_path), Path(vae_path)
    missing = [p + "/" for p in MODEL_PARTS if not (wan_dir / p).is_dir()]
    if missing:
        raise FlowRVSError(f"Wan folder {wan_dir} is missing {', '.join(missing)}")
    if text_len not in TEXT_LENS:
        raise FlowRVSError(f"text length must be one of {', '.join(map(str, TEXT_LENS))}, got {text_len}")
    transformer = convert_transformer(wan_dir, dit_path)
    vae = convert_vae(wan_dir, vae_path)
    config = FlowRVSConfig(text_len=text_len, mask_latent_normalized=mask_latent_normalized)
    return _write_model_folder(out_dir, wan_dir, transformer, vae, config)


# ---- REM ---------------------------------------------------------------------------------
def rem_state_dicts(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(dit_state, vae_state)`` of a REM checkpoint (prefixes stripped; tensors mapped from the file)."""
    import argparse

    obj = load_weights_file(path, safe_globals=(argparse.Namespace,), mmap=True)
    state = obj.get("model_state") if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise FlowRVSError(f"checkpoint {path} has no model_state: not a REM checkpoint")
    state = tensor_dict(state, path)
    dit = {k[len(REM_DIT_PREFIX) :]: v for k, v in state.items() if k.startswith(REM_DIT_PREFIX)}
    vae = {k[len(REM_VAE_PREFIX) :]: v for k, v in state.items() if k.startswith(REM_VAE_PREFIX)}
    if not dit:
        raise FlowRVSError(f"checkpoint {path} has no {REM_DIT_PREFIX}* tensors: not a REM checkpoint")
    return dit, vae


def _base_tensors(folder: Path, names: set[str]) -> dict[str, torch.Tensor]:
    """The tensors ``names`` of a diffusers component folder's safetensors files, read one by one."""
    from safetensors import safe_open

    if not names:
        return {}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FlowRVSError(f"{folder} has no safetensors weights to fill the tensors the checkpoint lacks")
    out: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in names.intersection(f.keys()):
                out[name] = f.get_tensor(name)
    return out


def _rem_component(cls, folder: Path, tuned: dict[str, torch.Tensor], what: str,
                   base_weights: Callable[[Path], Path] | None = None):
    """A stock component of the base (``folder``: its config and weights) with the checkpoint's
    tensors ``tuned`` in place of the base's; checked tensor by tensor. ``base_weights(folder)``
    gives the folder of the base's weights, asked only when the checkpoint lacks some tensor."""
    with torch.device("meta"):
        model = cls.from_config(_read_config(folder))
    expected = set(model.state_dict())
    extra = sorted(set(tuned) - expected)
    if extra:
        raise FlowRVSError(f"{what} has {len(extra)} tensor(s) the stock {cls.__name__} lacks, first {extra[0]}")
    lacking = expected - set(tuned)
    if lacking and base_weights is not None:
        folder = base_weights(folder)
    state = {**_base_tensors(folder, lacking), **tuned}
    return load_checked(model, state, what, assign=True)


def convert_rem(wan_dir: str | Path, checkpoint: str | Path, out_dir: str | Path,
                base_weights: Callable[[Path], Path] | None = None) -> Path:
    """Write a ``REMPipeline`` model folder from the stock Wan 2.1 T2V diffusers folder and a
    REM checkpoint (atomically); its settings are REM's public inference. ``base_weights``: see
    :func:`_rem_component` (the hub route downloads the base's DiT weights only when needed)."""
    wan_dir, checkpoint = Path(wan_dir), Path(checkpoint)
    missing = [p + "/" for p in MODEL_PARTS if not (wan_dir / p).is_dir()]
    if missing:
        raise FlowRVSError(f"Wan folder {wan_dir} is missing {', '.join(missing)}")
    dit_state, vae_state = rem_state_dicts(checkpoint)
    transformer = _rem_component(WanTransformer3DModel, wan_dir / "transformer", dit_state,
                                 f"checkpoint {checkpoint} (DiT)", base_weights)
    if transformer.config.in_channels != (transformer.config.out_channels or transformer.config.in_channels):
        raise FlowRVSError(f"checkpoint {checkpoint}: REM's DiT is the stock one, without video injection")
    vae = _rem_component(AutoencoderKLWan, wan_dir / "vae", vae_state, f"checkpoint {checkpoint} (VAE)", base_weights)
    return _write_model_folder(out_dir, wan_dir, transformer, vae, None, class_name="REMPipeline")  # its defaults: REM's

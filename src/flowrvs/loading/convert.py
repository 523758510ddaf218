"""Reading weights: the public FlowRVS release, and checked loading into our modules.

The public release is three things:

- the ``Wan2.1-T2V-1.3B-Diffusers`` folder (``transformer/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/``);
- a DiT checkpoint ``.pth``: a bare state dict, ``{"model": sd}``, or
  ``{"model": sd, "ema_model": {..., "shadow_params": [tensors in parameter order]}}``
  (keys possibly prefixed ``module.``); the EMA weights are used when present;
- ``tuned_vae.pth``: ``{"model": sd}`` of a wrapper whose keys start with ``vae.``, the VAE
  with a 1-channel ``decoder.conv_out``.

:func:`convert_release` turns them into a model folder for
:meth:`flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline.from_pretrained`. ``.pth`` files are only ever read
with ``torch.load(..., weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import torch

from flowrvs.errors import FlowRVSError, first_line

DIT_PREFIXES = ("module.",)
VAE_PREFIX = "vae."


def load_weights_file(path: str | Path) -> object:
    """Load a ``.safetensors`` file or a weights-only ``.pth``/``.pt``/``.bin`` checkpoint on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FlowRVSError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise FlowRVSError(f"checkpoint {path} is not a readable safetensors file ({err})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise FlowRVSError(
            f"checkpoint {path} cannot be loaded as weights only: it is corrupt or holds objects other than "
            f"tensors and plain containers, and flowrvs refuses to unpickle those ({_unpickler_detail(err)})"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise FlowRVSError(f"checkpoint {path} cannot be loaded: {first_line(err)}") from None


def _unpickler_detail(err: Exception) -> str:
    """The specific reason in torch's long weights-only message (e.g. ``Unsupported global: ...``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for marker in ("Unsupported", "Unpickler error"):
        for line in lines:
            if line.startswith(marker) and not line.endswith(":"):
                return line
    return lines[-1] if lines else type(err).__name__


def _tensor_dict(obj, path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FlowRVSError(f"checkpoint {path} does not hold a state dict of tensors")
    return obj


def strip_prefix(state: dict, prefix: str) -> dict:
    """Drop ``prefix`` from every key that has it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def dit_state_dict(obj, path="checkpoint") -> tuple[dict[str, torch.Tensor], list[torch.Tensor] | None]:
    """``(state_dict, ema_params)`` of a DiT checkpoint in any of the public layouts.

    ``ema_params`` is the EMA's ``shadow_params`` list (in the model's parameter order), or None.
    """
    ema = None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        if isinstance(obj.get("ema_model"), dict) and "shadow_params" in obj["ema_model"]:
            ema = list(obj["ema_model"]["shadow_params"])
        obj = obj["model"]
    state = _tensor_dict(obj, path)
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


def check_state_dict(module: torch.nn.Module, state: dict, what: str) -> None:
    """Raise a one-line error naming the first missing, unexpected or wrongly shaped tensor."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    for name, shape in expected.items():
        if name not in state:
            missing = [k for k in expected if k not in state]
            raise FlowRVSError(f"{what} lacks {len(missing)} tensor(s), first {name}")
        if tuple(state[name].shape) != shape:
            raise FlowRVSError(
                f"{what}: tensor {name} has shape {tuple(state[name].shape)}, the model expects {shape}"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise FlowRVSError(f"{what} has {len(extra)} unexpected tensor(s), first {extra[0]}")


def load_checked(module: torch.nn.Module, state: dict, what: str, assign: bool = False) -> torch.nn.Module:
    check_state_dict(module, state, what)
    module.load_state_dict(state, strict=True, assign=assign)
    return module


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FlowRVSError(f"cannot read {path}: {err}") from None
    return {k: v for k, v in config.items() if not k.startswith("_")}


def link_or_copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder, hard-linking files where the file system allows (umT5-XXL is 11 GB)."""

    def link_or_copy(s, d):
        s = os.path.realpath(s)  # a hub snapshot holds relative links to its blobs: link the blob
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy)


def convert_transformer(wan_dir: Path, dit_path: Path):
    """The fine-tuned DiT: Wan's config, DVI read off the checkpoint's patch embedding, EMA if present."""
    from diffusers import WanTransformer3DModel

    from flowrvs.models.dit import dvi_config

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


def convert_vae(wan_dir: Path, vae_path: Path):
    """Wan's VAE with the tuned 1-channel mask decoder (tuned tensors override Wan's)."""
    from diffusers import AutoencoderKLWan

    obj = load_weights_file(vae_path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    tuned = _tensor_dict(obj, vae_path)
    if any(k.startswith(VAE_PREFIX) for k in tuned):
        tuned = {k[len(VAE_PREFIX) :]: v for k, v in tuned.items() if k.startswith(VAE_PREFIX)}
    head = tuned.get("decoder.conv_out.weight")
    if head is None or head.shape[0] != 1:
        shape = None if head is None else tuple(head.shape)
        raise FlowRVSError(f"checkpoint {vae_path}: decoder.conv_out.weight must have 1 output channel, got {shape}")
    try:
        base = AutoencoderKLWan.from_pretrained(str(wan_dir / "vae")).state_dict()
    except (OSError, ValueError, RuntimeError) as err:
        raise FlowRVSError(f"cannot load the Wan VAE from {wan_dir / 'vae'}: {err}") from None
    config = _read_config(wan_dir / "vae")
    config["out_channels"] = 1
    with torch.device("meta"):
        model = AutoencoderKLWan.from_config(config)
    state = {**base, **tuned}
    return load_checked(model, state, f"checkpoint {vae_path}", assign=True)


def _tokenizer_class(folder: Path) -> str:
    """The transformers class that loads the tokenizer in ``folder`` (named in ``model_index.json``)."""
    from transformers import AutoTokenizer

    try:
        return type(AutoTokenizer.from_pretrained(str(folder))).__name__
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FlowRVSError(f"cannot load the tokenizer in {folder}: {err}") from None


def convert_release(
    wan_dir: str | Path,
    dit_path: str | Path,
    vae_path: str | Path,
    out_dir: str | Path,
    mask_latent_normalized: bool = False,
    text_len: int = 256,
) -> Path:
    """Write a flowrvs model folder from the public FlowRVS release (atomically)."""
    from flowrvs.io.atomic import atomic_dir
    from flowrvs.loading.model_folder import FlowRVSConfig, write_model_index

    wan_dir, dit_path, vae_path = Path(wan_dir), Path(dit_path), Path(vae_path)
    missing = [p + "/" for p in ("transformer", "vae", "text_encoder", "tokenizer") if not (wan_dir / p).is_dir()]
    if missing:
        raise FlowRVSError(f"Wan folder {wan_dir} is missing {', '.join(missing)}")
    if text_len not in (64, 256, 512):
        raise FlowRVSError(f"text length must be 64, 256 or 512, got {text_len}")
    transformer = convert_transformer(wan_dir, dit_path)
    vae = convert_vae(wan_dir, vae_path)
    config = FlowRVSConfig(text_len=text_len, mask_latent_normalized=mask_latent_normalized)
    tokenizer_class = _tokenizer_class(wan_dir / "tokenizer")
    with atomic_dir(out_dir) as tmp:
        transformer.save_pretrained(tmp / "transformer")
        vae.save_pretrained(tmp / "vae")
        link_or_copy_tree(wan_dir / "text_encoder", tmp / "text_encoder")
        link_or_copy_tree(wan_dir / "tokenizer", tmp / "tokenizer")
        write_model_index(tmp, config, tokenizer_class)
    return Path(out_dir)

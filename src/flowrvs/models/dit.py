"""The velocity network: diffusers' Wan 2.1 DiT, optionally with Direct Video Injection (DVI).

With DVI the DiT sees ``concat([x_t, z_video], dim=1)``: its patch embedding takes 32 input
channels instead of 16 and its output stays 16. Whether a transformer uses DVI is read from
the shape of ``patch_embedding.weight``, never from a flag.
"""

from __future__ import annotations

import torch
from diffusers import WanTransformer3DModel

from flowrvs.flow import NUM_TRAIN_TIMESTEPS



def uses_dvi(transformer: WanTransformer3DModel) -> bool:
    """True when the patch embedding takes the video latent as extra input channels."""
    in_channels = transformer.patch_embedding.weight.shape[1]
    return in_channels == 2 * transformer.config.out_channels


def dvi_config(config: dict) -> dict:
    """A transformer config with DVI: ``in_channels = 2 * out_channels``."""
    config = dict(config)
    out_channels = config.get("out_channels") or config["in_channels"]
    config["out_channels"] = out_channels
    config["in_channels"] = 2 * out_channels
    return config


@torch.no_grad()
def add_video_injection(transformer: WanTransformer3DModel) -> WanTransformer3DModel:
    """Return a DVI copy of a 16-channel transformer.

    The patch embedding grows from C to 2C input channels: channels ``[:C]`` (``x_t``) keep the
    pretrained weights, the new ``[C:]`` (``z_video``) start at zero, so the widened model
    computes exactly what the original did until training moves the new weights.
    """
    if uses_dvi(transformer):
        raise ValueError("transformer already uses direct video injection")
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    widened = WanTransformer3DModel.from_config(dvi_config(config))
    widened.to(device=transformer.device, dtype=transformer.dtype)
    state = transformer.state_dict()
    old = state["patch_embedding.weight"]
    new = torch.zeros(old.shape[0], 2 * old.shape[1], *old.shape[2:], dtype=old.dtype, device=old.device)
    new[:, : old.shape[1]] = old
    state["patch_embedding.weight"] = new
    widened.load_state_dict(state)
    return widened


@torch.no_grad()
def remove_video_injection(transformer: WanTransformer3DModel) -> WanTransformer3DModel:
    """Return a copy without DVI: the patch embedding keeps only its ``x_t`` channels (for
    ablations that start a plain DiT from a DVI model folder)."""
    if not uses_dvi(transformer):
        raise ValueError("transformer does not use direct video injection")
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    config["in_channels"] = config["out_channels"]
    narrowed = WanTransformer3DModel.from_config(config)
    narrowed.to(device=transformer.device, dtype=transformer.dtype)
    state = transformer.state_dict()
    state["patch_embedding.weight"] = state["patch_embedding.weight"][:, : config["out_channels"]].clone()
    narrowed.load_state_dict(state)
    return narrowed


def predict_velocity(
    transformer: WanTransformer3DModel,
    x_t: torch.Tensor,
    z_video: torch.Tensor,
    t: torch.Tensor,
    text_embeds: torch.Tensor,
) -> torch.Tensor:
    """Velocity ``v(x_t, t, text)``, shape ``(B, 16, T, h, w)`` like ``x_t``.

    x_t, z_video: ``(B, 16, T, h, w)`` latents (h, w even). t: ``(B,)`` in [0, 1] (the DiT is
    given ``1000 t``). text_embeds: ``(B, L, D)``. With DVI ``z_video`` is concatenated to
    ``x_t`` along channels; without, it is ignored.
    """
    return dit_forward(transformer, x_t, z_video, (t * NUM_TRAIN_TIMESTEPS).to(x_t.device), text_embeds)


def dit_forward(
    transformer: WanTransformer3DModel,
    x_t: torch.Tensor,
    z_video: torch.Tensor,
    timestep: torch.Tensor,
    text_embeds: torch.Tensor,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The DiT's output ``(B, 16, T, h, w)`` at ``timestep`` ``(B,)`` on the 0..1000 scale.

    With DVI ``z_video`` is concatenated to ``x_t`` along channels; without, it is ignored.
    Inputs are cast to ``dtype``, the DiT's compute dtype (default: its weights' dtype; they
    differ when weights are stored lower and cast layer by layer).
    """
    dtype = dtype or transformer.dtype
    hidden = torch.cat([x_t.to(dtype), z_video.to(dtype)], dim=1) if uses_dvi(transformer) else x_t.to(dtype)
    return transformer(
        hidden_states=hidden,
        timestep=timestep,
        encoder_hidden_states=text_embeds.to(dtype),
        return_dict=False,
    )[0]

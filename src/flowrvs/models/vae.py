"""Latent codec around diffusers' Wan 2.1 VAE: video encoder, mask encoder, mask decoder.

One ``AutoencoderKLWan`` serves all three: its encoder is the frozen Wan video encoder (masks
are encoded as 3-channel images in {-1, 1}), its decoder is the Wan decoder whose last conv
has 1 output channel (``out_channels=1``), fine-tuned to decode mask latents to mask logits.

Shapes: videos ``(B, 3, T, H, W)`` in [-1, 1]; masks ``(B, T, H, W)`` in {0, 1}; latents
``(B, 16, 1 + (T - 1) / 4, H / 8, W / 8)``. ``T`` must be ``4k + 1``: the VAE is causal in
time and silently drops other frames, so callers pad first (see :mod:`flowrvs.io.frames`).

On a CPU the VAE's 3-D convolutions run in oneDNN, which works in channels-last (NDHWC) order:
with contiguous (NCDHW) weights and activations every convolution reorders its input and output,
which costs as much as the convolution itself at 240x416. :func:`use_channels_last` stores the
weights channels-last once; the functions here then hand the VAE channels-last inputs, so the
activations stay channels-last from layer to layer (measured in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from flowrvs.flow import perturb_start_point
from flowrvs.models.vae_layers import CHANNELS_LAST, use_lean_layers


def latent_stats(vae: AutoencoderKLWan, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel latent mean and std from the VAE config, shaped ``(1, C, 1, 1, 1)`` like ``like``."""
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
    return mean, std


def normalize_latents(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    mean, std = latent_stats(vae, z)
    return (z - mean) / std


def denormalize_latents(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    mean, std = latent_stats(vae, z)
    return z * std + mean


def tune_for_machine(vae: AutoencoderKLWan, device: torch.device | str, dtype: torch.dtype) -> AutoencoderKLWan:
    """What makes a VAE computing in ``dtype`` on ``device`` fastest, applied in place: for bf16 on a
    CPU the channels-last layout (oneDNN) and :func:`flowrvs.models.vae_layers.use_lean_layers`
    (both measured in ``docs/benchmarks.md``); elsewhere the VAE as loaded. Returns ``vae``."""
    if torch.device(device).type == "cpu" and dtype == torch.bfloat16:
        use_lean_layers(use_channels_last(vae))
    return vae


def use_channels_last(vae: AutoencoderKLWan) -> AutoencoderKLWan:
    """Store every convolution weight of ``vae`` channels-last, in place; returns ``vae``.

    The 2-D convolutions of the resampling blocks too: they run on ``(B*T, C, H, W)`` views of
    the video, and a channels-last 2-D result viewed back as ``(B, C, T, H, W)`` is channels-last
    in 3-D. Values are unchanged; only the strides differ. Results agree with the contiguous
    layout to the rounding of the compute dtype (oneDNN sums in another order).
    """
    for module in vae.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=CHANNELS_LAST)
        elif isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return vae


def is_channels_last(vae: AutoencoderKLWan) -> bool:
    """Whether :func:`use_channels_last` was applied (read from the encoder's first convolution)."""
    return vae.encoder.conv_in.weight.is_contiguous(memory_format=CHANNELS_LAST)


def _vae_input(vae: AutoencoderKLWan, x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, C, T, H, W)`` in the VAE's dtype and its weights' memory layout."""
    x = x.to(vae.dtype)
    return x.contiguous(memory_format=CHANNELS_LAST) if is_channels_last(vae) else x


def _check_frames(x: torch.Tensor) -> None:
    if (x.shape[2] - 1) % 4:
        raise ValueError(f"the Wan VAE needs 4k+1 frames, got {x.shape[2]}; pad first")


def encode_video(
    vae: AutoencoderKLWan,
    video: torch.Tensor,
    sample_strength: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Normalised video latent ``(E(video) - latents_mean) / latents_std``.

    ``sample_strength`` 0 uses the posterior mean (inference); 1 a posterior sample (SPA in training).
    """
    _check_frames(video)
    posterior = vae.encode(_vae_input(vae, video)).latent_dist
    z = perturb_start_point(posterior.mean, posterior.std, sample_strength, generator)
    return normalize_latents(vae, z).contiguous()


def encode_mask(vae: AutoencoderKLWan, mask: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """Mask latent: the posterior mean of the mask drawn as a 3-channel {-1, 1} image.

    mask: ``(B, T, H, W)`` with values in {0, 1}. ``normalized`` applies the video latent
    normalisation (older public checkpoints did, current ones do not).
    """
    image = (mask.to(vae.dtype) * 2 - 1).unsqueeze(1).expand(-1, 3, -1, -1, -1)
    _check_frames(image)
    z = vae.encode(_vae_input(vae, image)).latent_dist.mean.contiguous()
    return normalize_latents(vae, z) if normalized else z


def decode_raw(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    """Unclamped decoder output ``(B, C, T, H, W)`` of an (unnormalised) latent.

    diffusers clamps decoded samples to [-1, 1], which would cut the gradients a BCE loss
    needs, so the raw output of the decoder is read with a forward hook instead.
    """
    if vae.use_tiling or vae.use_slicing:
        raise ValueError("decode_raw does not support VAE tiling or slicing")
    chunks: list[torch.Tensor] = []
    handle = vae.decoder.register_forward_hook(lambda module, args, output: chunks.append(output))
    try:
        vae.decode(_vae_input(vae, z))
    finally:
        handle.remove()
    return (torch.cat(chunks, dim=2) if len(chunks) > 1 else chunks[0]).contiguous()


def decode_mask_logits(vae: AutoencoderKLWan, z_mask: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """Mask logits ``(B, T, H, W)`` from a mask latent; foreground where logits > 0."""
    if normalized:
        z_mask = denormalize_latents(vae, z_mask)
    logits = decode_raw(vae, z_mask)
    if logits.shape[1] != 1:
        raise ValueError(f"the mask decoder must have 1 output channel, has {logits.shape[1]}")
    return logits[:, 0]

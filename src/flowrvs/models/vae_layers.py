"""Leaner layers swapped into diffusers' Wan VAE: the same functions in fewer passes over memory.

Between its convolutions diffusers' Wan VAE spends 40 % of its CPU time in memory-bound passes
(``docs/benchmarks.md``): each RMS norm casts its input to float32 and back and runs four
elementwise operators, SiLU a fifth; each causal convolution pads its input in space with a
copy the size of the activation before a convolution that could pad it itself; each upsampling
casts to float32 and back around a nearest-neighbour copy. :func:`use_lean_layers` replaces those
modules in place, sharing their parameters:

- :class:`RMSNormSiLU` for every ``WanRMS_norm``: the norm taken over the channels in float32
  (one reduction), the input scaled by it and by ``gamma`` in its own dtype, SiLU in place where
  the norm fed the block's nonlinearity (which then becomes the identity);
- :class:`SpatialPadCausalConv3d` for every ``WanCausalConv3d``: cached frames still concatenated
  in time, the spatial zero padding done by the convolution;
- ``nn.Upsample`` in the input's dtype for every ``WanUpsample`` (nearest neighbour copies values,
  so the result is the same bit for bit).

The norm rounds once where diffusers rounds three times, so values agree to the compute dtype's
rounding (``tests/models/test_vae_layers.py``); masks as in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl_wan import (
    WanCausalConv3d,
    WanDecoder3d,
    WanEncoder3d,
    WanResidualBlock,
    WanRMS_norm,
    WanUpsample,
)
from torch import nn

CHANNELS_LAST = torch.channels_last_3d
_NORM_EPS = 1e-12  # F.normalize's floor on the norm, as diffusers' WanRMS_norm uses it


class RMSNormSiLU(nn.Module):
    """``gamma * sqrt(C) * x / max(||x||_2, eps)`` over dim 1 of ``(B, C, ...)``, then SiLU if ``silu``.

    Shares ``gamma`` (and ``bias``) with the ``WanRMS_norm`` it replaces. Output in ``x``'s dtype
    and memory layout. The norm is accumulated in float32 and rounded to ``x``'s dtype (asking
    for a float32 result would copy all of ``x`` to float32 first: ten times slower). Without
    autograd the scaling and SiLU run in place on one new tensor.
    """

    def __init__(self, norm: WanRMS_norm, silu: bool) -> None:
        super().__init__()
        if not norm.channel_first:
            raise ValueError("RMSNormSiLU replaces channel-first norms only")
        self.gamma = norm.gamma
        self.bias = norm.bias if isinstance(norm.bias, nn.Parameter) else None
        self.scale = norm.scale
        self.silu = silu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.movedim(1, -1)  # (B, ..., C): a view, contiguous when x is channels-last
        norm = torch.linalg.vector_norm(moved, dim=-1, keepdim=True).float()  # accumulated in float32
        factor = (self.scale / norm.clamp_min(_NORM_EPS)).to(x.dtype)
        y = moved * factor
        in_place = not torch.is_grad_enabled()
        gamma = self.gamma.reshape(-1).to(x.dtype)
        y = y.mul_(gamma) if in_place else y * gamma
        if self.bias is not None:
            bias = self.bias.reshape(-1).to(x.dtype)
            y = y.add_(bias) if in_place else y + bias
        if self.silu:
            y = F.silu(y, inplace=in_place)
        return y.movedim(-1, 1)


class SpatialPadCausalConv3d(WanCausalConv3d):
    """``WanCausalConv3d`` whose zero padding in space is done by the convolution, not by a copy.

    Input ``(B, C, T, H, W)``; ``cache_x`` ``(B, C, t, H, W)``, the previous chunk's last frames.
    Time stays causal: the cached frames, then zeros for any still missing, come first.
    """

    @classmethod
    def of(cls, conv: WanCausalConv3d) -> "SpatialPadCausalConv3d":
        """The same convolution, sharing ``conv``'s weight and bias."""
        pad_w, _, pad_h, _, pad_t, _ = conv._padding
        with torch.device("meta"):
            lean = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                       padding=(pad_t // 2, pad_h, pad_w))
        lean.weight, lean.bias = conv.weight, conv.bias
        lean.padding = (0, pad_h, pad_w)
        return lean

    def forward(self, x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
        missing = self._padding[4]
        if missing:
            x = _causal_padded(x, cache_x[:, :, -missing:] if cache_x is not None else None, missing)
        return self._conv_forward(x, self.weight, self.bias)


def _causal_padded(x: torch.Tensor, cached: torch.Tensor | None, frames: int) -> torch.Tensor:
    """``x`` ``(B, C, T, H, W)`` with ``frames`` frames before it: zeros, then ``cached``'s frames.

    One new tensor in ``x``'s memory layout, filled slice by slice (a concatenation with zeros
    would cost a second copy, and one with expanded zeros returns NCDHW).
    """
    b, c, t, h, w = x.shape
    layout = CHANNELS_LAST if x.is_contiguous(memory_format=CHANNELS_LAST) else torch.contiguous_format
    padded = torch.empty((b, c, frames + t, h, w), dtype=x.dtype, device=x.device, memory_format=layout)
    zeros = frames - (cached.shape[2] if cached is not None else 0)
    padded[:, :, :zeros].zero_()
    if cached is not None:
        padded[:, :, zeros:frames].copy_(cached)
    padded[:, :, frames:].copy_(x)
    return padded


_SILU_OWNERS = (WanResidualBlock, WanEncoder3d, WanDecoder3d)
_NORMS_BEFORE_SILU = ("norm1", "norm2", "norm_out")  # diffusers feeds these to the owner's nonlinearity


def _replacement(module: nn.Module, silu: bool) -> nn.Module | None:
    if isinstance(module, WanRMS_norm):
        return RMSNormSiLU(module, silu=silu)
    if isinstance(module, WanCausalConv3d) and not isinstance(module, SpatialPadCausalConv3d):
        return SpatialPadCausalConv3d.of(module)
    if isinstance(module, WanUpsample):
        return nn.Upsample(scale_factor=module.scale_factor, mode=module.mode)
    return None


def use_lean_layers(vae: nn.Module) -> nn.Module:
    """Swap the lean layers above into ``vae`` (an ``AutoencoderKLWan``) in place; returns ``vae``.

    Idempotent. The blocks whose norms now apply SiLU get an identity ``nonlinearity``.
    """
    for parent in list(vae.modules()):
        owns_silu = isinstance(parent, _SILU_OWNERS)
        for name, child in list(parent.named_children()):
            lean = _replacement(child, silu=owns_silu and name in _NORMS_BEFORE_SILU)
            if lean is not None:
                setattr(parent, name, lean)
        if owns_silu:
            parent.nonlinearity = nn.Identity()
    return vae


def uses_lean_layers(vae: nn.Module) -> bool:
    """Whether :func:`use_lean_layers` was applied."""
    return isinstance(vae.encoder.conv_in, SpatialPadCausalConv3d)

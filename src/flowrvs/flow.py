"""The video -> mask probability path, its time samplers and the inference time grid.

Pure tensor code, no model in sight. Time follows the diffusers convention: ``t = 1`` is the
source end (the video latent), ``t = 0`` the target end (the mask latent).

Path (straight line between a source and a target latent)::

    x_t = t * z_source + (1 - t) * z_target
    u   = d x_t / d t = z_source - z_target          (the velocity the model learns)

Integrating ``dx/dt = u`` from ``t = 1`` down to ``t = 0`` carries the source onto the target:
``x_0 = x_1 - integral_0^1 u dt``.

:class:`FlowParametrization` is the one place that says where the path starts (the video
latent, or Gaussian noise) and what the model outputs (the velocity ``u``, or the mask latent
itself); the training objective and the sampler both go through it.

Random draws take a ``torch.Generator`` or a list of them, one per sample: with one generator
per sample, keyed by the sample's global index, a batch split over several processes draws the
same numbers as the whole batch in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch

Generators = Union[torch.Generator, Sequence[torch.Generator], None]

NUM_TRAIN_TIMESTEPS = 1000  # the scheduler's time scale: timestep = 1000 * t
DEFAULT_SHIFT = 3.0
DEFAULT_T_END = 0.001


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(B,)`` time vector to broadcast over ``like`` of shape ``(B, ...)``."""
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(z_source: torch.Tensor, z_target: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Point ``x_t = t * z_source + (1 - t) * z_target`` of the path.

    z_source, z_target: ``(B, C, T, H, W)`` (any shape with a leading batch); t: ``(B,)`` in [0, 1].
    """
    t = _per_sample(t, z_source)
    return t * z_source + (1 - t) * z_target


def target_velocity(z_source: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """Velocity ``u = z_source - z_target`` of the straight path (constant in t)."""
    return z_source - z_target


def _is_list(generator: Generators) -> bool:
    return generator is not None and not isinstance(generator, torch.Generator)


def gaussian(shape, generator: Generators = None, device=None, dtype=None) -> torch.Tensor:
    """``eps ~ N(0, I)`` of ``shape = (B, ...)``; with a list of ``B`` generators, sample ``i``
    is drawn from ``generator[i]`` alone."""
    if _is_list(generator):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def _uniform(batch_size: int, generator: Generators, device) -> torch.Tensor:
    if _is_list(generator):
        if len(generator) != batch_size:
            raise ValueError(f"{len(generator)} generators for a batch of {batch_size}")
        return torch.cat([torch.rand(1, generator=g, device=device) for g in generator])
    return torch.rand(batch_size, generator=generator, device=device)


def sample_uniform_time(batch_size: int, generator: Generators = None, device=None) -> torch.Tensor:
    """``t ~ U(0, 1]``, shape ``(B,)``, float32."""
    return 1.0 - _uniform(batch_size, generator, device)


def sample_bbs_time(batch_size: int, p_boundary: float, generator: Generators = None, device=None) -> torch.Tensor:
    """Boundary-Biased Sampling: ``t = 1`` exactly with probability ``p_boundary``, else ``t ~ U(0, 1]``.

    ``t = 1`` is where inference starts (the pure video latent), so BBS spends a share of the
    training signal on the one point that a single-step sampler ever evaluates.
    ``p_boundary = 0`` is plain uniform sampling.
    """
    if not 0.0 <= p_boundary <= 1.0:
        raise ValueError(f"p_boundary must lie in [0, 1], got {p_boundary}")
    if _is_list(generator):  # per sample: its time, then its coin
        pairs = [(sample_uniform_time(1, g, device), _uniform(1, g, device)) for g in generator]
        t, coin = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    else:
        t = sample_uniform_time(batch_size, generator, device)
        coin = _uniform(batch_size, generator, device)
    at_boundary = coin < p_boundary
    return torch.where(at_boundary, torch.ones_like(t), t)


def perturb_start_point(mean: torch.Tensor, std: torch.Tensor, strength: float, generator: Generators = None) -> torch.Tensor:
    """Start-Point Augmentation: ``mean + strength * std * eps``, ``eps ~ N(0, I)``.

    ``mean``/``std`` are the VAE posterior of the video, ``(B, C, T, H, W)``. ``strength = 1``
    draws a posterior sample (the paper's SPA), ``0`` returns the posterior mean.
    """
    if strength == 0:
        return mean
    eps = gaussian(mean.shape, generator, device=mean.device, dtype=mean.dtype)
    return mean + strength * std * eps


SOURCES = ("video", "noise")
PREDICTIONS = ("velocity", "mask")


@dataclass(frozen=True)
class FlowParametrization:
    """Where the path starts and what the model predicts.

    ``source``: ``"video"`` (FlowRVS: ``x_1 = z_video``) or ``"noise"`` (text-to-video style,
    ``x_1 = eps ~ N(0, I)``, the video entering through DVI only; an ablation).
    ``prediction``: ``"velocity"`` (the model outputs ``v ~ u = x_1 - z_mask``) or ``"mask"``
    (it outputs ``z_mask_hat``, and ``v = (x_t - z_mask_hat) / t`` since ``x_t - t u = z_mask``).

    The objective regresses ``model(x_t, t)`` onto :meth:`target`; the sampler integrates
    :meth:`velocity` from :meth:`start` at ``t = 1`` to ``t = 0``.
    """

    source: str = "video"
    prediction: str = "velocity"

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")

    def start(self, z_video: torch.Tensor, generator: Generators = None) -> torch.Tensor:
        """``x_1``: ``z_video`` ``(B, C, T, H, W)`` itself, or Gaussian noise of its shape and dtype."""
        if self.source == "noise":
            return gaussian(z_video.shape, generator, device=z_video.device, dtype=z_video.dtype)
        return z_video

    def target(self, x_start: torch.Tensor, z_mask: torch.Tensor) -> torch.Tensor:
        """What the model's output regresses onto: ``u = x_1 - z_mask``, or ``z_mask``."""
        return z_mask if self.prediction == "mask" else target_velocity(x_start, z_mask)

    def velocity(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_min: float = 1e-3) -> torch.Tensor:
        """The path's velocity at ``(x_t, t)`` from the model ``output`` (shaped like ``x_t``):
        ``output`` itself, or ``(x_t - output) / max(t, t_min)`` for a mask-predicting model."""
        output = output.to(x_t.dtype)
        if self.prediction == "mask":
            return (x_t - output) / _per_sample(t.clamp_min(t_min), x_t)
        return output


def shift_time(t: torch.Tensor, shift: float = DEFAULT_SHIFT) -> torch.Tensor:
    """Time shift ``sigma = s t / (1 + (s - 1) t)``; keeps 0 and 1, pushes the inside towards 1 for s > 1."""
    return shift * t / (1 + (shift - 1) * t)


def public_timesteps(num_steps: int, shift: float = DEFAULT_SHIFT, t_end: float = DEFAULT_T_END) -> list[float]:
    """The ``N`` model timesteps of an ``N``-step solve on the 0..1000 scale, as the public code
    computes them: ``round(1000 * shift_time(linspace(1, t_end, N + 1)))[:N]`` in float32.

    Whole numbers (for N = 1, 2, 4: 1000; 1000, 750; 1000, 900, 750, 501). A scheduler steps
    through them with ``sigma = timestep / 1000`` down to sigma 0, so the sigmas are these
    rounded values, not the exact ``shift_time`` grid.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    grid = torch.linspace(1.0, t_end, num_steps + 1, dtype=torch.float32)
    return torch.round(NUM_TRAIN_TIMESTEPS * shift_time(grid, shift))[:num_steps].tolist()

"""The flow-matching training objective of FlowRVS.

One step: encode the clip (video: VAE posterior, SPA-perturbed, normalised; mask: posterior
mean), draw ``t`` by Boundary-Biased Sampling, build ``x_t`` on the straight path from the
video latent (``t = 1``) to the mask latent (``t = 0``), predict the velocity with the
(DVI-)DiT, and regress it onto ``u = z_video - z_mask`` with a mean squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .flow import interpolate, perturb_start_point, sample_bbs_time, target_velocity
from .models.dit import predict_velocity
from .models.vae import encode_mask, encode_video


@dataclass
class FlowObjective:
    """Knobs of the training objective.

    bbs_p: probability that a sample gets ``t = 1`` exactly (0 = uniform time, 0.5 in the paper).
    spa_strength: scale of the posterior noise on the start point (1 = posterior sample, the
    paper's SPA; 0 = posterior mean).
    """

    bbs_p: float = 0.5
    spa_strength: float = 1.0


def encode_batch(pipe, batch: dict, spa_strength: float, generator: torch.Generator | None = None):
    """``(z_video, z_mask, text_embeds)`` of a batch, reusing any that the batch already holds.

    batch: ``video`` ``(B, 3, T, H, W)`` in [-1, 1] and ``mask`` ``(B, T, H, W)`` in {0, 1}
    (T = 4k+1, H and W multiples of 16), or pre-encoded ``z_video`` (or its normalised
    posterior ``z_video_mean``/``z_video_std``, perturbed here by SPA) and ``z_mask``; ``prompts``
    (list of B str) or ``text_embeds`` ``(B, L, D)``.
    """
    device, dtype = pipe.device, pipe.dtype
    with torch.no_grad():
        z_video = batch.get("z_video")
        if z_video is None and "z_video_mean" in batch:  # a cached posterior (see flowrvs.latent_cache)
            mean, std = batch["z_video_mean"].to(device, dtype), batch["z_video_std"].to(device, dtype)
            z_video = perturb_start_point(mean, std, spa_strength, generator)
        if z_video is None:
            z_video = encode_video(pipe.vae, batch["video"].to(device, dtype), spa_strength, generator)
        z_mask = batch.get("z_mask")
        if z_mask is None:
            z_mask = encode_mask(pipe.vae, batch["mask"].to(device, dtype), pipe.config.mask_latent_normalized)
        text_embeds = batch.get("text_embeds")
        if text_embeds is None:
            text_embeds = pipe.encode_prompts(batch["prompts"])
    return z_video.to(device, dtype), z_mask.to(device, dtype), text_embeds.to(device, dtype)


def training_loss(pipe, batch: dict, objective: FlowObjective, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scalar MSE between the DiT's output and its target on one batch (gradients flow to the DiT only).

    ``pipe.config.source`` picks the start point (``"video"``: FlowRVS; ``"noise"``: a Gaussian
    sample, the video entering through DVI only) and ``pipe.config.prediction`` the target
    (``"velocity"``: ``u``; ``"mask"``: ``z_mask`` itself).
    """
    z_video, z_mask, text_embeds = encode_batch(pipe, batch, objective.spa_strength, generator)
    batch_size = z_video.shape[0]
    if pipe.config.source == "noise":
        z_source = torch.randn(z_video.shape, generator=generator, device=z_video.device, dtype=z_video.dtype)
    else:
        z_source = z_video
    t = sample_bbs_time(batch_size, objective.bbs_p, generator, device=z_video.device)
    x_t = interpolate(z_source, z_mask, t)
    target = z_mask if pipe.config.prediction == "mask" else target_velocity(z_source, z_mask)
    prediction = predict_velocity(pipe.transformer, x_t, z_video, t, text_embeds)
    return F.mse_loss(prediction.float(), target.float())

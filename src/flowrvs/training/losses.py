"""Losses: the flow-matching objective of FlowRVS and the mask losses of the VAE stages.

Flow step: encode the clip (video: VAE posterior, SPA-perturbed, normalised; mask: posterior
mean), draw ``t`` by Boundary-Biased Sampling, build ``x_t`` on the straight path from the
start point (:class:`~flowrvs.flow.FlowParametrization`) at ``t = 1`` to the mask latent at
``t = 0``, run the (DVI-)DiT and regress its output onto the parametrisation's target with a
mean squared error. Every random draw of sample ``i`` comes from its own generator, so the
loss of a batch split over processes is the loss of the whole batch.

REM step (``model.method: rem``, :func:`rem_loss`): no path and no random draw; the DiT's
output at timestep 0 on the normalised posterior mean of the video regresses the normalised
latent of REM's picture of the mask (:func:`rem_mask_latent`) with a mean squared error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from flowrvs.flow import FlowParametrization, Generators, interpolate, perturb_start_point, sample_bbs_time
from flowrvs.models.dit import dit_forward, predict_velocity
from flowrvs.models.vae import encode_mask, normalize_latents


@dataclass
class FlowObjective:
    """Knobs of the training objective.

    bbs_p: probability that a sample gets ``t = 1`` exactly (0 = uniform time, 0.5 in the paper).
    spa_strength: scale of the posterior noise on the start point (1 = posterior sample, the
    paper's SPA; 0 = posterior mean).
    """

    bbs_p: float = 0.5
    spa_strength: float = 1.0


def parametrization_of(pipe) -> FlowParametrization:
    """The :class:`FlowParametrization` a pipeline's config names."""
    return FlowParametrization(pipe.config.source, pipe.config.prediction)


def encode_batch(pipe, batch: dict, spa_strength: float, generator: Generators = None):
    """``(z_video, z_mask, text_embeds)`` of a batch, reusing any that the batch already holds.

    batch: ``video`` ``(B, 3, T, H, W)`` in [-1, 1] and ``mask`` ``(B, T, H, W)`` in {0, 1}
    (T = 4k+1, H and W multiples of 16), or pre-encoded ``z_video`` (or its normalised
    posterior ``z_video_mean``/``z_video_std``, perturbed here by SPA) and ``z_mask``; ``prompts``
    (list of B str) or ``text_embeds`` ``(B, L, D)``. ``generator``: one, or one per sample.
    """
    # the DiT's placement: the encoders may be freed (cached inputs) or elsewhere
    device, dtype = next(pipe.transformer.parameters()).device, pipe.transformer.dtype
    with torch.no_grad():
        z_video = batch.get("z_video")
        if z_video is None and "z_video_mean" in batch:  # a cached posterior (flowrvs cache)
            mean, std = batch["z_video_mean"].to(device, dtype), batch["z_video_std"].to(device, dtype)
            z_video = perturb_start_point(mean, std, spa_strength, generator)
        if z_video is None:
            posterior = pipe.vae.encode(batch["video"].to(device, pipe.vae.dtype)).latent_dist
            z_video = normalize_latents(pipe.vae, perturb_start_point(posterior.mean, posterior.std, spa_strength, generator))
        z_mask = batch.get("z_mask")
        if z_mask is None:
            z_mask = mask_latent(pipe, batch["mask"].to(device, dtype))
        text_embeds = batch.get("text_embeds")
        if text_embeds is None:
            text_embeds = pipe.encode_prompt(batch["prompts"])
    return z_video.to(device, dtype), z_mask.to(device, dtype), text_embeds.to(device, dtype)


def is_rem(pipe) -> bool:
    """Whether ``pipe`` is a :class:`~flowrvs.pipelines.pipeline_rem.REMPipeline`."""
    from flowrvs.pipelines.pipeline_rem import REMPipeline

    return isinstance(pipe, REMPipeline)


def rem_mask_latent(vae, mask: torch.Tensor) -> torch.Tensor:
    """The normalised latent ``(B, 16, T', h, w)`` REM trains towards, of masks ``(B, T, H, W)``
    in {0, 1} (T = 4k+1).

    What REM's public training code does (miccooper9/ReferEverything, ``datasets/ytvos_T5.py``,
    ``datasets/refexp2imgseq_T5.py``, ``datasets/transforms.py``, ``train_REM_wan.py``, read at
    HEAD 6dcc5a9): the object's mask is a {0, 1} ``uint8`` image (PIL mode ``P``, so resized to
    512x512 nearest-neighbour), made a tensor *without* normalisation (only the frames get
    ``Normalize(0.5, 0.5)``), repeated to 3 channels, encoded by the VAE with
    ``latent_dist.mode()`` (the posterior mean) and normalised with the video's
    ``(z - latents_mean) / latents_std``. So the picture is black (0) background and white (1)
    object in the VAE's [-1, 1] input range, not the {-1, 1} picture of
    :func:`flowrvs.models.vae.encode_mask`; the 0.5 threshold of REM's inference on the decoded
    channel mean is the midpoint of that picture.
    """
    image = mask.to(vae.dtype).unsqueeze(1).expand(-1, 3, -1, -1, -1)
    if (image.shape[2] - 1) % 4:
        raise ValueError(f"the Wan VAE needs 4k+1 frames, got {image.shape[2]}; pad first")
    return normalize_latents(vae, vae.encode(image).latent_dist.mean)


def mask_latent(pipe, mask: torch.Tensor) -> torch.Tensor:
    """The mask latent ``(B, 16, T', h, w)`` a pipeline's method trains towards, of masks
    ``(B, T, H, W)`` in {0, 1}: REM's (:func:`rem_mask_latent`) or FlowRVS's
    (:func:`flowrvs.models.vae.encode_mask` with the pipeline's ``mask_latent_normalized``)."""
    if is_rem(pipe):
        return rem_mask_latent(pipe.vae, mask)
    return encode_mask(pipe.vae, mask, pipe.config.mask_latent_normalized)


def rem_loss(pipe, batch: dict, transformer: torch.nn.Module | None = None) -> torch.Tensor:
    """Scalar REM loss of one batch: ``mean((DiT(z_video, t=0, text) - z_mask)^2)``.

    ``z_video`` ``(B, 16, T', h, w)``: the normalised posterior mean of the video (no SPA, no
    noise, no time draw: REM's ``latent_dist.mode()``); ``z_mask``: :func:`rem_mask_latent` (or
    the batch's cached one). ``batch`` as :func:`encode_batch` takes it. Gradients flow to the
    DiT (``transformer``, default ``pipe.transformer``).
    """
    z_video, z_mask, text_embeds = encode_batch(pipe, batch, 0.0)
    t = torch.zeros(z_video.shape[0], device=z_video.device)
    output = dit_forward(transformer if transformer is not None else pipe.transformer, z_video, z_video, t, text_embeds)
    return F.mse_loss(output.float(), z_mask.float())


def flow_loss(pipe, batch: dict, objective: FlowObjective, generator: Generators = None,
              transformer: torch.nn.Module | None = None) -> torch.Tensor:
    """Scalar MSE between the DiT's output and the parametrisation's target on one batch.

    Gradients flow to the DiT (``transformer``, default ``pipe.transformer``) and to whatever
    produced ``batch["text_embeds"]``. Per sample, the draws are in this order: SPA noise, then
    the start noise (``source="noise"``), then ``t``.
    """
    z_video, z_mask, text_embeds = encode_batch(pipe, batch, objective.spa_strength, generator)
    flow = parametrization_of(pipe)
    x_start = flow.start(z_video, generator)
    t = sample_bbs_time(z_video.shape[0], objective.bbs_p, generator, device=z_video.device)
    x_t = interpolate(x_start, z_mask, t)
    output = predict_velocity(transformer if transformer is not None else pipe.transformer, x_t, z_video, t, text_embeds)
    return F.mse_loss(output.float(), flow.target(x_start, z_mask).float())


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - (2 |P∩G| + eps) / (|P| + |G| + eps)`` per sample on sigmoid probabilities, averaged."""
    prob = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    inter = (prob * target).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + target.sum(1) + eps)).mean()


def mask_loss(logits: torch.Tensor, mask: torch.Tensor, bce_weight: float = 1.0, dice_weight: float = 1.0) -> torch.Tensor:
    """``bce_weight * BCE-with-logits + dice_weight * soft Dice`` of mask logits ``(B, T, H, W)``
    against masks in {0, 1}."""
    total = logits.new_zeros(())
    if bce_weight:
        total = total + bce_weight * F.binary_cross_entropy_with_logits(logits, mask)
    if dice_weight:
        total = total + dice_weight * soft_dice_loss(logits, mask)
    return total


def kl_to_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over elements of ``KL(N(mean, exp(logvar)) || N(0, 1))``."""
    mean, logvar = mean.float(), logvar.float()
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()

"""Latents of fixed training clips, encoded once: the flow stage without a VAE in the loop.

On a small machine the frozen VAE encoder costs far more than a small DiT step, and in the
flow stage it only ever sees the same clips again. The cache encodes one clip per
expression (frame indices drawn once from ``seed``), keeps the video posterior (normalised
mean and std, so Start-Point Augmentation still draws a fresh start point each step) and the
mask latent, and serves batches of them. Horizontal flips are not available in this mode.
Each dataset of a run has its own cache file, so datasets can be added to a run without
re-encoding the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.sampling import sample_clip_indices
from .frames import fit_size, frames_to_tensor, masks_to_tensor
from .models.vae import encode_mask, latent_stats


@dataclass
class LatentCache:
    """Per video: ``video_mean``/``video_std`` ``(16, T', h, w)`` (its normalised posterior).
    Per expression: ``mask`` ``(16, T', h, w)`` (mask latent), ``sentence``, ``video`` (index of
    its video) and ``group`` (index of its dataset)."""

    video_mean: list[torch.Tensor] = field(default_factory=list)
    video_std: list[torch.Tensor] = field(default_factory=list)
    mask: list[torch.Tensor] = field(default_factory=list)
    sentence: list[str] = field(default_factory=list)
    video: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.mask)

    @classmethod
    def concat(cls, caches: list["LatentCache"]) -> "LatentCache":
        """One cache of ``caches`` in order; the expressions of ``caches[g]`` get ``group`` g."""
        out = cls()
        for group, cache in enumerate(caches):
            offset = len(out.video_mean)
            out.video_mean += cache.video_mean
            out.video_std += cache.video_std
            out.mask += cache.mask
            out.sentence += cache.sentence
            out.video += [offset + v for v in cache.video]
            out.group += [group] * len(cache)
        return out

    def batch(self, indices) -> dict:
        """A batch for :func:`flowrvs.objective.encode_batch` (``z_video_mean``, ``z_video_std``,
        ``z_mask``, ``prompts``) of the expressions at ``indices``."""
        indices = [int(i) for i in indices]
        return {
            "z_video_mean": torch.stack([self.video_mean[self.video[i]] for i in indices]),
            "z_video_std": torch.stack([self.video_std[self.video[i]] for i in indices]),
            "z_mask": torch.stack([self.mask[i] for i in indices]),
            "prompts": [self.sentence[i] for i in indices],
        }

    def save(self, path: str | Path) -> None:
        """Write the cache as one safetensors file (atomically)."""
        from safetensors.torch import save_file

        from .fileio import atomic_path

        tensors = {f"video.{i}.mean": t.contiguous() for i, t in enumerate(self.video_mean)}
        tensors.update({f"video.{i}.std": t.contiguous() for i, t in enumerate(self.video_std)})
        tensors.update({f"mask.{i}": t.contiguous() for i, t in enumerate(self.mask)})
        meta = {key: json.dumps(getattr(self, key)) for key in ("sentence", "video", "group")}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "LatentCache":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = {key: json.loads(value) for key, value in f.metadata().items()}
            videos = max(meta["video"], default=-1) + 1
            return cls(
                video_mean=[f.get_tensor(f"video.{i}.mean") for i in range(videos)],
                video_std=[f.get_tensor(f"video.{i}.std") for i in range(videos)],
                mask=[f.get_tensor(f"mask.{i}") for i in range(len(meta["sentence"]))],
                **meta,
            )


def cache_key(vae, settings: dict) -> str:
    """A name for the cache of ``settings`` (data, clip and latent options) encoded by this ``vae``."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def build_latent_cache(pipe, dataset, num_frames: int, box, sampling: str, seed: int, progress=None) -> LatentCache:
    """Encode one clip per expression of ``dataset`` (a ``ReferringVideoDataset``; ``group`` 0).

    Each video is read and VAE-encoded once for all its expressions, whose masks are encoded
    together. Video ``v``'s frame indices are drawn from ``(seed, v)``.
    """
    vae, device, dtype = pipe.vae, pipe.device, pipe.dtype
    cache = LatentCache()
    videos = list(dataset.videos())
    for v, video in enumerate(tqdm(videos, desc="encode latents", unit="video", disable=None if progress is None else not progress)):
        indices = list(sample_clip_indices(len(dataset.frame_names(video)), num_frames, np.random.default_rng([seed, v]), sampling))
        frames = dataset.load_frames(video, indices)
        size = fit_size(frames.shape[1], frames.shape[2], tuple(box))
        posterior = vae.encode(frames_to_tensor(frames, size).to(device, dtype)).latent_dist
        shift, scale = latent_stats(vae, posterior.mean)
        cache.video_mean.append(((posterior.mean - shift) / scale)[0].cpu())
        cache.video_std.append((posterior.std / scale)[0].cpu())
        expressions = list(dataset.expressions(video))
        masks = [masks_to_tensor(dataset.load_mask(e, indices), size) for e in expressions]
        latents = (  # all of a video's masks in one VAE call
            encode_mask(vae, torch.cat(masks).to(device, dtype), pipe.config.mask_latent_normalized).cpu() if masks else []
        )
        for expression, latent in zip(expressions, latents):
            cache.mask.append(latent)
            cache.sentence.append(expression.sentence)
            cache.video.append(v)
            cache.group.append(0)
    return cache

"""Latents of fixed training clips, encoded once: the flow stage without a VAE in the loop.

On a small machine the frozen VAE encoder costs far more than a small DiT step, and in the
flow stage it only ever sees the same clips again. The cache encodes one clip per video
(frame indices drawn once from ``seed``), keeps the video posterior (normalised mean and std,
so Start-Point Augmentation still draws a fresh start point each step) and the latent of each
distinct mask of the video's expressions (expressions that name the same objects share one;
REM's picture of the mask for a ``REMPipeline``),
and serves batches of them. Horizontal flips are not available in this mode. Each dataset of
a run has its own cache file, so datasets can be added to a run without re-encoding the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from flowrvs.data.sampling import sample_clip_indices
from flowrvs.io.frames import fit_size, frames_to_tensor, masks_to_tensor
from flowrvs.models.vae import latent_stats

ENCODE_BATCH = 8
"""Images per VAE call when building a cache: on a CPU, larger batches are no faster per image."""


class StaleCacheError(Exception):
    """A latent cache file that must not be used (unreadable, or not matching its digest)."""


def content_digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """sha256 over the tensors (by name) and the metadata strings of a cache file."""
    from flowrvs.models.text import tensor_digest

    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(tensors):
        h.update(f"{name}:{tensor_digest(tensors[name])};".encode())
    return h.hexdigest()


@dataclass
class LatentCache:
    """Per video: ``video_mean``/``video_std`` ``(16, T', h, w)`` (its normalised posterior).
    ``mask``: distinct mask latents ``(16, T', h, w)``. Per expression: ``mask_index`` (its
    latent in ``mask``), ``sentence``, ``video`` (index of its video) and ``group`` (index of
    its dataset). Tensors are kept in the precision they were built or loaded in."""

    video_mean: list[torch.Tensor] = field(default_factory=list)
    video_std: list[torch.Tensor] = field(default_factory=list)
    mask: list[torch.Tensor] = field(default_factory=list)
    mask_index: list[int] = field(default_factory=list)
    sentence: list[str] = field(default_factory=list)
    video: list[int] = field(default_factory=list)
    group: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sentence)

    @classmethod
    def concat(cls, caches: list["LatentCache"]) -> "LatentCache":
        """One cache of ``caches`` in order; the expressions of ``caches[g]`` get ``group`` g."""
        out = cls()
        for group, cache in enumerate(caches):
            videos, masks = len(out.video_mean), len(out.mask)
            out.video_mean += cache.video_mean
            out.video_std += cache.video_std
            out.mask += cache.mask
            out.mask_index += [masks + m for m in cache.mask_index]
            out.sentence += cache.sentence
            out.video += [videos + v for v in cache.video]
            out.group += [group] * len(cache)
        return out

    @cached_property
    def expressions_of_video(self) -> list[list[int]]:
        """Per video, the indices of its expressions (computed once; the cache is not changed after)."""
        out: list[list[int]] = [[] for _ in range(max(self.video, default=-1) + 1)]
        for i, v in enumerate(self.video):
            out[v].append(i)
        return out

    def with_video_mates(self, index: int, k: int, rng: np.random.Generator) -> list[int]:
        """Expression ``index`` and ``k - 1`` others of its video, drawn uniformly without
        replacement (with replacement when the video has fewer; itself when it has no other)."""
        others = [i for i in self.expressions_of_video[self.video[index]] if i != index] or [index]
        mates = rng.choice(others, size=k - 1, replace=len(others) < k - 1)
        return [int(index), *(int(i) for i in mates)]

    def batch(self, indices) -> dict:
        """A batch for :func:`flowrvs.training.losses.encode_batch` (``z_video_mean``, ``z_video_std``,
        ``z_mask``, ``prompts``) of the expressions at ``indices``, in the cache's precision."""
        indices = [int(i) for i in indices]
        return {
            "z_video_mean": torch.stack([self.video_mean[self.video[i]] for i in indices]),
            "z_video_std": torch.stack([self.video_std[self.video[i]] for i in indices]),
            "z_mask": torch.stack([self.mask[self.mask_index[i]] for i in indices]),
            "prompts": [self.sentence[i] for i in indices],
        }

    def save(self, path: str | Path) -> None:
        """Write the cache as one safetensors file (atomically)."""
        from safetensors.torch import save_file

        from flowrvs.io.atomic import atomic_path

        tensors = {f"video.{i}.mean": t.contiguous() for i, t in enumerate(self.video_mean)}
        tensors.update({f"video.{i}.std": t.contiguous() for i, t in enumerate(self.video_std)})
        tensors.update({f"mask.{i}": t.contiguous() for i, t in enumerate(self.mask)})
        meta = {key: json.dumps(getattr(self, key)) for key in ("mask_index", "sentence", "video", "group")}
        meta["digest"] = content_digest(tensors, meta)
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype | None = None) -> "LatentCache":
        """Read a cache file, its tensors cast to ``dtype`` (default: as stored).

        The file's digest of its tensors and metadata is checked first: a damaged, truncated or
        edited file (or one without a digest) raises :class:`StaleCacheError`, and the caller
        rebuilds it."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                raw = dict(f.metadata() or {})
                tensors = {name: f.get_tensor(name) for name in f.keys()}
        except (SafetensorError, OSError) as err:
            raise StaleCacheError(f"unreadable latent cache {path}: {err}") from err
        digest = raw.pop("digest", None)
        if digest != content_digest(tensors, raw):
            raise StaleCacheError(f"latent cache {path} does not match its digest")
        meta = {key: json.loads(value) for key, value in raw.items()}
        cast = (lambda t: t) if dtype is None else (lambda t: t.to(dtype))
        videos = max(meta["video"], default=-1) + 1
        return cls(
            video_mean=[cast(tensors[f"video.{i}.mean"]) for i in range(videos)],
            video_std=[cast(tensors[f"video.{i}.std"]) for i in range(videos)],
            mask=[cast(tensors[f"mask.{i}"]) for i in range(max(meta["mask_index"], default=-1) + 1)],
            **meta,
        )


def distinct(tensors) -> tuple[list[torch.Tensor], list[int]]:
    """The distinct tensors of ``tensors`` (equal shape, dtype and values) in order of first
    appearance, and the index among them of each input."""
    first: dict[tuple, int] = {}
    unique, index = [], []
    for tensor in tensors:
        key = (tuple(tensor.shape), tensor.dtype, hashlib.sha1(tensor.contiguous().view(torch.uint8).numpy()).digest())
        if key not in first:
            first[key] = len(unique)
            unique.append(tensor)
        index.append(first[key])
    return unique, index


def cache_key(vae, settings: dict) -> str:
    """A name for the cache of ``settings`` (data, clip and latent options) encoded by this ``vae``."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class _Clip:
    """One video's clip before encoding: ``frames`` ``(1, 3, T, H, W)``, its distinct ``masks``
    ``(M, T, H, W)`` and, per expression, ``mask_index`` into them and ``sentence``."""

    frames: torch.Tensor
    masks: torch.Tensor | None
    mask_index: list[int]
    sentence: list[str]


@torch.no_grad()
def build_latent_cache(
    pipe, dataset, num_frames: int, box, sampling: str, seed: int, progress=None, dtype: torch.dtype = torch.float32,
    resize_rule: str = "oriented",
) -> LatentCache:
    """Encode one clip per video of ``dataset`` (a ``ReferringVideoDataset``; ``group`` 0), its
    frames resized into ``box`` by ``resize_rule`` (:func:`flowrvs.io.frames.fit_size`).

    Video ``v``'s frame indices are drawn from ``(seed, v)``; its clip and each distinct mask of
    its expressions are encoded once. Clips of one frame size are encoded together,
    :data:`ENCODE_BATCH` images per VAE call. Latents are stored in ``dtype``.
    """
    cache = LatentCache()
    videos = list(dataset.videos())
    pending: list[_Clip] = []
    with tqdm(total=len(videos), desc="encode latents", unit="video", disable=None if progress is None else not progress) as bar:

        def flush() -> None:
            _encode_clips(pipe, pending, cache, dtype)
            bar.update(len(pending))
            pending.clear()

        for v, video in enumerate(videos):
            indices = list(sample_clip_indices(len(dataset.frame_names(video)), num_frames, np.random.default_rng([seed, v]), sampling))
            frames = dataset.load_frames(video, indices)
            size = fit_size(frames.shape[1], frames.shape[2], tuple(box), rule=resize_rule)
            expressions = list(dataset.expressions(video))
            masks, mask_index = distinct(masks_to_tensor(dataset.load_mask(e, indices), size)[0] for e in expressions)
            clip = _Clip(frames_to_tensor(frames, size), torch.stack(masks) if masks else None, mask_index,
                         [e.sentence for e in expressions])
            if pending and pending[0].frames.shape != clip.frames.shape:
                flush()
            pending.append(clip)
            if len(pending) == ENCODE_BATCH:
                flush()
        if pending:
            flush()
    return cache


def _encode_clips(pipe, clips: list[_Clip], cache: LatentCache, dtype: torch.dtype) -> None:
    """Encode clips of one frame size and append them to ``cache`` in order (mask latents as the
    pipeline's method trains towards them: :func:`flowrvs.training.losses.mask_latent`)."""
    from flowrvs.training.losses import mask_latent

    vae, device = pipe.vae, pipe.device
    posterior = vae.encode(torch.cat([c.frames for c in clips]).to(device, pipe.dtype)).latent_dist
    shift, scale = latent_stats(vae, posterior.mean)
    means, stds = ((posterior.mean - shift) / scale).to("cpu", dtype), (posterior.std / scale).to("cpu", dtype)
    masks = [c.masks for c in clips if c.masks is not None]
    latents = (
        torch.cat([
            mask_latent(pipe, chunk.to(device, pipe.dtype)).to("cpu", dtype)
            for chunk in torch.cat(masks).split(ENCODE_BATCH)
        ])
        if masks else None
    )
    start = 0
    for clip, mean, std in zip(clips, means, stds):
        video, masks_before = len(cache.video_mean), len(cache.mask)
        cache.video_mean.append(mean.clone())
        cache.video_std.append(std.clone())
        if clip.masks is not None:
            cache.mask += [latent.clone() for latent in latents[start : start + len(clip.masks)]]
            start += len(clip.masks)
        cache.mask_index += [masks_before + m for m in clip.mask_index]
        cache.sentence += clip.sentence
        cache.video += [video] * len(clip.sentence)
        cache.group += [0] * len(clip.sentence)

"""Training data: the clips of every step, shared out by rank, from video or from cached latents.

A step trains on ``optim.batch_size`` samples (the global batch). Sample ``i`` of step ``s``
(``0 <= i < batch_size``) is a function of ``(seed, s, i)`` only; process ``r`` of ``N`` takes
samples ``r * b .. (r + 1) * b - 1`` (``b = batch_size / N``) in ``optim.grad_accum``
micro-batches. So a run is the same at any world size, and a resumed run draws what the
uninterrupted one drew.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from flowrvs.data import open_dataset
from flowrvs.errors import FlowRVSError
from flowrvs.training.config import DatasetConfig, TrainConfig, clip_frames, dataset_groups


def build_datasets(config: TrainConfig) -> list:
    """``[(ReferringVideoDataset, weight), ...]`` of ``data.datasets``, opened through the registry."""
    if not config.data.datasets:
        raise FlowRVSError("data.datasets is empty: name at least one dataset (type, root, split)")
    out = []
    for i, ds in enumerate(config.data.datasets):
        if not ds.root:
            raise FlowRVSError(f"config key data.datasets.{i}.root is empty")
        if not Path(ds.root).exists():
            raise FlowRVSError(f"data.datasets.{i}.root {ds.root} does not exist")
        reader = open_dataset(ds.type, ds.root, ds.split, variant=ds.name, num_frames=clip_frames(config.data, ds),
                              seed=config.seed)
        out.append((reader, ds.weight))
    return out


def sample_indices(config: TrainConfig, rank: int, world_size: int) -> list[list[int]]:
    """Per micro-batch of this process, the indices (within the global batch) of its samples."""
    per_rank = config.optim.batch_size // world_size
    micro = per_rank // config.optim.grad_accum
    return [[rank * per_rank + m * micro + i for i in range(micro)] for m in range(config.optim.grad_accum)]


class StepClips(torch.utils.data.Dataset):
    """Item ``g`` is clip ``g % per_step`` of step ``g // per_step`` (0-based) of a ClipDataset,
    the step's of ``clips`` (one per group of ``data.mixing``, taking the steps in turn): the
    clips of a step depend on ``(seed, step)`` only, whatever ran before."""

    def __init__(self, clips: list, per_step: int):
        self.clips = clips
        self.per_step = per_step

    def __len__(self) -> int:  # unbounded in principle; the batch sampler decides
        return 2**62

    def __getitem__(self, g: int):
        step, j = divmod(int(g), self.per_step)
        clips = self.clips[step % len(self.clips)]
        clips.set_epoch(step)
        return clips[j]


def collate_clips(clips) -> dict:
    """A batch dict for the losses: ``video`` ``(B, 3, T', h, w)`` in [-1, 1], ``mask``
    ``(B, T', h, w)`` in {0, 1} (T' = 4k+1), ``prompts``. Clips are brought to the first clip's size."""
    from flowrvs.io.frames import frames_to_tensor, masks_to_tensor

    size = tuple(clips[0].frames.shape[1:3])
    return {
        "video": torch.cat([frames_to_tensor(c.frames, size) for c in clips]),
        "mask": torch.cat([masks_to_tensor(c.mask, size) for c in clips]),
        "prompts": [c.sentence for c in clips],
    }


def clip_datasets(config: TrainConfig, length: int | None = None) -> list:
    """One ClipDataset per group of ``data.mixing`` (:func:`~flowrvs.training.config.dataset_groups`),
    each of its datasets' clip length."""
    from flowrvs.data.sampling import ClipDataset

    readers = build_datasets(config)
    return [
        ClipDataset(
            [readers[i] for i in members],
            num_frames=clip_frames(config.data, config.data.datasets[members[0]]),
            size_box=tuple(config.data.size),
            hflip_p=config.data.hflip_p,
            seed=config.seed,
            mode=config.data.sampling,
            length=length,
            resize_rule=config.data.resize_rule,
        )
        for members in dataset_groups(config.data)
    ]


def video_batches(config: TrainConfig, start_step: int, rank: int = 0, world_size: int = 1) -> Iterator[list[dict]]:
    """Per step ``start_step + 1 .. optim.steps``, this process's micro-batches of decoded clips."""
    per_step = config.optim.batch_size
    parts = sample_indices(config, rank, world_size)
    sampler = [
        [(step - 1) * per_step + i for i in part]
        for step in range(start_step + 1, config.optim.steps + 1)
        for part in parts
    ]
    loader = iter(torch.utils.data.DataLoader(
        StepClips(clip_datasets(config, per_step), per_step),
        batch_sampler=sampler,
        collate_fn=collate_clips,
        num_workers=config.data.workers,
    ))
    for _ in range(start_step + 1, config.optim.steps + 1):
        yield [next(loader) for _ in parts]


def cached_batches(config: TrainConfig, cache, start_step: int, rank: int = 0, world_size: int = 1,
                   text: dict | None = None, text_len: int | None = None) -> Iterator[list[dict]]:
    """Per step, this process's micro-batches of a :class:`~flowrvs.training.latent_cache.LatentCache`:
    ``batch_size / k`` expressions drawn by dataset weight, each with ``k - 1`` other sentences of
    its video (``data.sentences_per_video``). With ``text`` (cleaned sentence -> ``(n, D)``
    embedding) a batch also holds ``text_embeds`` ``(B, text_len, D)``, zero-padded."""
    from flowrvs.models.text import clean_prompt, pad_embeddings

    weights = np.array([ds.weight for ds in config.data.datasets], dtype=float)[cache.group]
    weights /= weights.sum()
    k = config.data.sentences_per_video
    parts = sample_indices(config, rank, world_size)
    for step in range(start_step + 1, config.optim.steps + 1):
        rng = np.random.default_rng([config.seed, step, 0])  # a function of the step: exact resume, any world size
        anchors = rng.choice(len(cache), size=config.optim.batch_size // k, p=weights)
        chosen = list(anchors) if k == 1 else [i for a in anchors for i in cache.with_video_mates(a, k, rng)]
        micro = [cache.batch([chosen[i] for i in part]) for part in parts]
        if text is not None:
            for batch in micro:
                batch["text_embeds"] = pad_embeddings([text[clean_prompt(p)] for p in batch["prompts"]], text_len)
        yield micro


def cache_paths(config: TrainConfig, spec: DatasetConfig, vae, mask_latent_normalized: bool) -> list[Path]:
    """The latent cache file of one dataset, then any file of higher precision that may stand in
    for it: one file per dataset, named by everything that changes its content (not its weight),
    so adding a dataset re-encodes nothing else."""
    from flowrvs.training.latent_cache import cache_key

    data = config.data
    settings = {
        "dataset": {k: v for k, v in dataclasses.asdict(spec).items() if k != "weight"},
        "frames": data.num_frames, "size": list(data.size), "sampling": data.sampling,
        "seed": cache_seed(config), "normalized": mask_latent_normalized,
    }
    if data.resize_rule != "oriented":  # the caches of the default rule keep the names they had
        settings["resize_rule"] = data.resize_rule
    if config.model.method != "flowrvs":  # another picture of the mask (flowrvs' names stay as they were)
        settings["method"] = config.model.method
    folder = Path(data.cache_dir or Path(config.output_dir) / "cache")
    stem = f"latents-{cache_key(vae, settings)}"
    float32 = folder / f"{stem}.safetensors"  # the name caches had before cache_dtype existed
    return [float32] if data.cache_dtype == "float32" else [folder / f"{stem}-{data.cache_dtype}.safetensors", float32]


def cache_seed(config: TrainConfig) -> int:
    return config.seed if config.data.cache_seed is None else config.data.cache_seed


def random_crop(batch: dict, crop, generator: torch.Generator) -> dict:
    """The same random ``crop = (h, w)`` pixel window of ``video`` and ``mask`` (multiples of 8:
    the VAE is fully convolutional, so its stages can train on windows). ``None``: no crop.
    ``generator``: one (one window for the batch) or one per sample (a window each)."""
    if not crop:
        return batch
    height, width = batch["mask"].shape[-2:]
    ch, cw = min(int(crop[0]), height), min(int(crop[1]), width)
    generators = [generator] if isinstance(generator, torch.Generator) or generator is None else list(generator)
    windows = []
    for g in generators:
        top = int(torch.randint(0, (height - ch) // 8 + 1, (1,), generator=g)) * 8
        left = int(torch.randint(0, (width - cw) // 8 + 1, (1,), generator=g)) * 8
        windows.append((top, left))
    out = dict(batch)
    for key in ("video", "mask"):
        if key in batch:
            parts = [batch[key][i : i + 1] for i in range(len(windows))] if len(windows) > 1 else [batch[key]]
            out[key] = torch.cat([p[..., t : t + ch, s : s + cw] for p, (t, s) in zip(parts, windows)])
    return out

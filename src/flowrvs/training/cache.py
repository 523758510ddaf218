"""Pre-encoded latents of the flow stage (``data.cache_latents``, ``flowrvs cache``).

One file per dataset of the run (see :func:`flowrvs.training.data.cache_paths`), built once
and reused by any run with the same data settings and VAE weights.
"""

from __future__ import annotations

import torch

from .config import TrainConfig
from .data import build_datasets, cache_paths, cache_seed
from .distributed import Process, barrier


def load_or_build_caches(config: TrainConfig, pipe, process: Process = Process()):
    """The :class:`~flowrvs.latent_cache.LatentCache` of all ``data.datasets`` (concatenated,
    ``group`` = dataset position). Missing files are encoded and written by rank 0 while the
    other processes wait, then read."""
    if not process.distributed:
        return read_caches(config, pipe, build=True)
    cache = read_caches(config, pipe, build=True) if process.main else None
    barrier(process)
    return cache if cache is not None else read_caches(config, pipe, build=False)


def read_caches(config: TrainConfig, pipe, build: bool = True):
    """The concatenated caches of ``data.datasets``; a missing file is encoded and written when
    ``build``, else a FlowRVSError."""
    from ..errors import FlowRVSError
    from ..latent_cache import LatentCache, build_latent_cache

    data = config.data
    dtype = getattr(torch, data.cache_dtype)
    caches = []
    for spec, (dataset, _) in zip(data.datasets, build_datasets(config)):
        paths = cache_paths(config, spec, pipe.vae, pipe.config.mask_latent_normalized)
        path = next((p for p in paths if p.is_file()), None)
        if path is not None:
            caches.append(LatentCache.load(path, dtype))
            continue
        if not build:
            raise FlowRVSError(f"no latent cache for dataset {spec.type} {spec.root}; run `flowrvs cache` first")
        caches.append(build_latent_cache(pipe, dataset, data.num_frames, data.size, data.sampling,
                                         cache_seed(config), config.progress, dtype))
        caches[-1].save(paths[0])
    return LatentCache.concat(caches)

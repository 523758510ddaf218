"""Pre-encoded inputs of the flow stage (``flowrvs cache CONFIG``, ``data.cache_latents``).

Latents: one file per dataset of the run (see :func:`flowrvs.training.data.cache_paths`): one
fixed clip per video, its VAE posterior (normalised mean and std, so SPA still samples a fresh
start point each step) and the latent of each distinct mask. Text (``data.cache_text``, unless
the text encoder trains): the umT5 embeddings of the real tokens of every sentence, ``(n, D)``
each, in shards of :data:`TEXT_SHARD` sentences, ``text-<key>/shard-XXXXX.safetensors`` plus an
``index.json`` written last. Both are built once and reused by any run with the same data
settings and weights; with both in place a flow step runs neither umT5 nor the VAE encoder,
which are then freed (:func:`free_encoders`); when the text cache is on disk before the run
starts, a model folder's umT5 is not even loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from flowrvs.training.config import TrainConfig
from flowrvs.training.data import build_datasets, cache_paths, cache_seed
from flowrvs.runtime.distributed import Process, barrier

logger = logging.getLogger(__name__)

TEXT_SHARD = 1024
"""Sentences per text-embedding shard (about 120 MB of umT5 bf16 embeddings at 15 tokens each)."""


def uses_text_cache(config: TrainConfig) -> bool:
    return config.data.cache_latents and config.data.cache_text and not config.model.train_text_encoder


def dataset_sentences(config: TrainConfig) -> list[str]:
    """Every expression's sentence of ``data.datasets`` (read from the annotations only)."""
    return [e.sentence for dataset, _ in build_datasets(config) for e in dataset.all_expressions()]


def text_cache_ready(config: TrainConfig) -> bool:
    """Whether the run's text embeddings are on disk, so its model can load without umT5."""
    return (config.stage == "flow" and uses_text_cache(config)
            and (text_cache_dir(config, dataset_sentences(config)) / "index.json").is_file())


def load_or_build_caches(config: TrainConfig, pipe, process: Process = Process()):
    """``(latents, text)``: the :class:`~flowrvs.training.latent_cache.LatentCache` of all ``data.datasets``
    (concatenated, ``group`` = dataset position) and ``{cleaned sentence: (n, D) embedding}``
    (None without a text cache). Missing files are encoded and written by rank 0 while the other
    processes wait, then read."""
    if not process.distributed:
        return read_caches(config, pipe, build=True)
    caches = read_caches(config, pipe, build=True) if process.main else None
    barrier(process)
    return caches if caches is not None else read_caches(config, pipe, build=False)


def read_caches(config: TrainConfig, pipe, build: bool = True, progress: bool | None = None):
    """``(latents, text)`` as :func:`load_or_build_caches`; a missing file is encoded and written
    when ``build``, else a FlowRVSError."""
    from flowrvs.errors import FlowRVSError
    from flowrvs.training.latent_cache import LatentCache, StaleCacheError, build_latent_cache

    data = config.data
    dtype = getattr(torch, data.cache_dtype)
    caches = []
    for spec, (dataset, _) in zip(data.datasets, build_datasets(config)):
        paths = cache_paths(config, spec, pipe.vae, pipe.config.mask_latent_normalized)
        path = next((p for p in paths if p.is_file()), None)
        if path is not None:
            try:
                caches.append(LatentCache.load(path, dtype))
                continue
            except StaleCacheError as err:  # a cache that cannot be trusted is a miss: rebuilt below
                logger.warning("%s; rebuilding it", err)
        if not build:
            raise FlowRVSError(f"no latent cache for dataset {spec.type} {spec.root}; run `flowrvs cache` first")
        caches.append(build_latent_cache(pipe, dataset, data.num_frames, data.size, data.sampling,
                                         cache_seed(config), config.progress if progress is None else progress, dtype,
                                         data.resize_rule))
        caches[-1].save(paths[0])
    latents = LatentCache.concat(caches)
    text = None
    if uses_text_cache(config):
        folder = text_cache_dir(config, latents.sentence)
        if not (folder / "index.json").is_file():
            if not build:
                raise FlowRVSError(f"no text-embedding cache {folder}; run `flowrvs cache` first")
            build_text_cache(pipe, latents.sentence, folder, dtype)
        text = read_text_cache(folder)
    return latents, text


def text_cache_dir(config: TrainConfig, sentences: list[str]) -> Path:
    """The folder of the text embeddings of ``sentences``, named by where the text encoder's
    weights come from (the fingerprint of ``model.init``'s files, or the random preset and its
    seed), the text length, the weights' dtype and the sentences: found without loading umT5."""
    import hashlib

    from flowrvs.models.text import clean_prompt
    from flowrvs.loading.model_folder import model_fingerprint
    from flowrvs.loading.resolve import resolve_model_dir

    model = config.model
    source = (f"init:{model_fingerprint(resolve_model_dir(model.init))}" if model.init is not None
              else f"preset:{model.preset}:{model.vocabulary}:{config.seed}")
    settings = {"source": source, "text_len": model.text_len, "dtype": config.dtype,
                "sentences": sorted({clean_prompt(s) for s in sentences})}
    if model.method != "flowrvs":  # another random text encoder and tokenizer length (flowrvs' names unchanged)
        settings["method"] = model.method
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(config.data.cache_dir or Path(config.output_dir) / "cache")
    return folder / f"text-{digest}"


@torch.no_grad()
def build_text_cache(pipe, sentences: list[str], folder: Path, dtype: torch.dtype, batch: int = 32) -> Path:
    """Encode each distinct cleaned sentence once and write the shards, then ``index.json``."""
    from safetensors.torch import save_file

    from flowrvs.io.atomic import atomic_path, write_json
    from flowrvs.models.text import clean_prompt

    unique = sorted({clean_prompt(s) for s in sentences})
    encoder = pipe.prompt_encoder
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for start in range(0, len(unique), TEXT_SHARD):
        chunk = unique[start : start + TEXT_SHARD]
        tensors = {}
        for b in range(0, len(chunk), batch):
            for j, emb in enumerate(encoder._embed(chunk[b : b + batch])):
                tensors[f"text.{b + j}"] = emb.detach().to("cpu", dtype).contiguous()
        name = f"shard-{len(shards):05d}.safetensors"
        with atomic_path(folder / name) as tmp:
            save_file(tensors, str(tmp), metadata={"sentences": json.dumps(chunk)})
        shards.append(name)
    write_json(folder / "index.json", {"shards": shards, "sentences": len(unique), "text_len": pipe.config.text_len})
    return folder


def read_text_cache(folder: Path) -> dict[str, torch.Tensor]:
    """``{cleaned sentence: (n, D) embedding}`` of a text cache folder."""
    from safetensors import safe_open

    index = json.loads((folder / "index.json").read_text())
    text: dict[str, torch.Tensor] = {}
    for name in index["shards"]:
        with safe_open(str(folder / name), framework="pt") as fh:
            for j, sentence in enumerate(json.loads(fh.metadata()["sentences"])):
                text[sentence] = fh.get_tensor(f"text.{j}")
    return text


def free_encoders(pipe) -> None:
    """Free umT5 and the VAE encoder (their inputs are cached): their weights go to ``meta``."""
    if pipe.text_encoder is not None:
        pipe.text_encoder.to("meta")
    for part in (pipe.vae.encoder, pipe.vae.quant_conv):
        part.to("meta")

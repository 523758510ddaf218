"""`flowrvs cache CONFIG.yaml [key=value ...]`: pre-encode a flow stage's inputs once.

Reads a training config (the one ``flowrvs train`` will run) and writes, under
``data.cache_dir`` (default ``output_dir/cache``), the latents of one fixed clip per video of
every dataset (VAE posterior mean and std, so Start-Point Augmentation still samples) and, with
``data.cache_text`` (set here unless the text encoder trains), the umT5 embeddings of every
sentence in sharded safetensors. A training run with ``data.cache_latents=true`` then finds
them and never runs umT5 or the VAE encoder. Files already there are reused.
"""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("cache", help="pre-encode video latents and text embeddings for the flow stage",
                            description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    parser.add_argument("config", help="training config (YAML) of the flow stage")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. data.cache_dir=cache/")
    parser.add_argument("--no-text", action="store_true", help="latents only (the run keeps umT5)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from flowrvs.errors import FlowRVSError
    from flowrvs.runtime.precision import resolve_device_dtype
    from flowrvs.training.config import load_config
    from flowrvs.training.stages import load_model
    from flowrvs.training.cache import read_caches, text_cache_dir, uses_text_cache
    from flowrvs.training.data import cache_paths

    config = load_config(args.config, [*args.overrides, "data.cache_latents=true",
                                       f"data.cache_text={'false' if args.no_text else 'true'}"])
    if config.stage != "flow":
        raise FlowRVSError(f"flowrvs cache pre-encodes the flow stage's inputs; this config is stage {config.stage}")
    device, dtype = resolve_device_dtype(config.device, config.dtype)
    torch.manual_seed(config.seed)
    pipe = load_model(config.model, config.seed, device, dtype)
    latents, text = read_caches(config, pipe, build=True)
    for spec in config.data.datasets:
        path = next(p for p in cache_paths(config, spec, pipe.vae, pipe.config.mask_latent_normalized) if p.is_file())
        print(f"latents of {spec.type} {spec.split}: {path}")
    if text is not None:
        print(f"text embeddings of {len(text)} sentences: {text_cache_dir(config, latents.sentence)}")
    elif not args.no_text and not uses_text_cache(config):
        print("no text cache: model.train_text_encoder is set (the embeddings change as it trains)")
    print(f"{len(latents)} expressions of {len(latents.video_mean)} videos; train with data.cache_latents=true"
          + ("" if text is None else " data.cache_text=true"))
    return 0

"""Training FlowRVS: ``flowrvs train CONFIG.yaml [key=value ...]``, on one process or many.

One concern per module:

``config``        the schema (dataclasses), YAML + dotted overrides through OmegaConf, checks
``data``          the clips of every step, shared out by rank; cached latents
``latent_cache``  pre-encoded clips (video and mask latents) in one file per dataset
``cache``         the latent and text caches of a run (``flowrvs cache``)
``losses``        the flow-matching objective and the VAE stages' mask losses
``stages``        autoencoder -> mask_decoder -> flow: what trains and what a stage exports
``ema``           diffusers ``EMAModel`` shadows
``checkpoint``    safetensors checkpoints, exact resume, export to a model folder
``tensorboard``   scalars and predicted-mask images
``trainer``       :class:`~flowrvs.training.trainer.Trainer` (small ``_setup_*`` steps, ``run()``)
                  and :func:`~flowrvs.training.trainer.train`, the entry of ``flowrvs train``

Processes, DDP / FSDP2 wrapping and collectives live in :mod:`flowrvs.runtime.distributed`.
"""

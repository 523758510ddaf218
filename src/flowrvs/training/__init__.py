"""Training FlowRVS: ``flowrvs train CONFIG.yaml [key=value ...]``, on one process or many.

One concern per module:

``config``       the schema (dataclasses), YAML + dotted overrides through OmegaConf, checks
``data``         the clips of every step, shared out by rank; cached latents
``losses``       the flow-matching objective and the VAE stages' mask losses
``stages``       autoencoder -> mask_decoder -> flow: what trains and what a stage exports
``ema``          diffusers ``EMAModel`` shadows
``checkpoint``   safetensors checkpoints, exact resume, export to a model folder
``distributed``  process group, DDP / FSDP2 wrapping, collectives
``tensorboard``  scalars and predicted-mask images
``cache``        pre-encoded latents (``flowrvs cache``)
``loop``         :func:`train`
"""

from flowrvs.training.checkpoint import export_checkpoint, list_checkpoints, load_checkpoint, read_checkpoint, save_checkpoint
from flowrvs.training.config import (
    DataConfig,
    DatasetConfig,
    DistConfig,
    EmaConfig,
    FlowConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TensorBoardConfig,
    TrainConfig,
    config_from_dict,
    dump_config,
    load_config,
    validate_config,
)
from flowrvs.training.data import random_crop
from flowrvs.training.loop import TrainResult, lr_at, step_seed, train
from flowrvs.training.stages import STAGE_CLASSES, load_model, to_mask_vae, to_rgb_vae

__all__ = [
    "DataConfig", "DatasetConfig", "DistConfig", "EmaConfig", "FlowConfig", "LossConfig", "ModelConfig",
    "OptimConfig", "TensorBoardConfig", "TrainConfig", "TrainResult", "STAGE_CLASSES",
    "config_from_dict", "dump_config", "export_checkpoint", "list_checkpoints", "load_checkpoint", "load_config",
    "load_model", "lr_at", "random_crop", "read_checkpoint", "save_checkpoint", "step_seed", "to_mask_vae",
    "to_rgb_vae", "train", "validate_config",
]

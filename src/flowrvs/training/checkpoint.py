"""Training checkpoints: one safetensors file per saved step, written atomically by rank 0.

``output_dir/checkpoints/step-XXXXXXXX.safetensors`` holds the trainable weights
``model.<name>``, the EMA shadows ``ema.<name>``, the AdamW state tensors
``optim.<name>.<exp_avg|exp_avg_sq>``, the torch CPU RNG state ``rng.torch_cpu`` (uint8), and
in the safetensors metadata (JSON strings): ``step``, ``stage``, ``config``, ``optimizer``
(per-parameter step counts and the param-group hyper-parameters), ``ema`` (the EMA's update
count and settings), ``rng.numpy``, ``rng.python``. Tensors are whole (gathered from the shards
under FSDP), so a checkpoint resumes at any world size and with either strategy.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import torch

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.training.config import TrainConfig, config_from_dict
from flowrvs.runtime.distributed import Process, full_tensor, shard_like
from flowrvs.runtime.precision import DTYPES
from flowrvs.training.ema import EMA

CHECKPOINT_FORMAT = "flowrvs-train-checkpoint/1"
CHECKPOINT_RE = re.compile(r"^step-(\d{8})\.safetensors$")


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:08d}.safetensors"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(step, path), ...]`` of ``output_dir/checkpoints``, oldest first."""
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = CHECKPOINT_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def _rng_metadata() -> dict[str, str]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "rng.numpy": json.dumps([np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]),
        "rng.python": json.dumps([py_state[0], list(py_state[1]), py_state[2]]),
    }


def _restore_rng(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    if "rng.torch_cpu" in tensors:
        torch.set_rng_state(tensors["rng.torch_cpu"])
    if "rng.torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.torch_cuda"])
    if "rng.numpy" in meta:
        name, keys, pos, has_gauss, cached = json.loads(meta["rng.numpy"])
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "rng.python" in meta:
        version, state, gauss = json.loads(meta["rng.python"])
        random.setstate((version, tuple(state), gauss))


def _whole(t: torch.Tensor) -> torch.Tensor:
    return full_tensor(t).detach().cpu().contiguous().clone()


def save_checkpoint(path: Path, step: int, config: TrainConfig, named, optimizer: torch.optim.Optimizer,
                    ema: EMA | None, process: Process = Process()) -> None:
    """Write one training checkpoint as safetensors, atomically (temp file + rename).

    Every process calls it (sharded tensors are gathered); only rank 0 writes.
    """
    from safetensors.torch import save_file

    from flowrvs.io.atomic import atomic_path

    names = [n for n, _ in named]
    tensors: dict[str, torch.Tensor] = {f"model.{name}": _whole(p) for name, p in named}
    if ema is not None:
        tensors.update({f"ema.{name}": s.contiguous() for name, s in ema.full_shadows().items()})
    state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, entry in sorted(state["state"].items()):
        name = names[index]
        for key, value in entry.items():
            if torch.is_tensor(value) and value.ndim > 0:
                tensors[f"optim.{name}.{key}"] = _whole(value)
            else:
                scalars.setdefault(name, {})[key] = float(value.item() if torch.is_tensor(value) else value)
    if not process.main:
        return
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.torch_cuda"] = torch.cuda.get_rng_state()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "step": str(step),
        "stage": config.stage,
        "config": json.dumps(config.to_dict()),
        "optimizer": json.dumps({"param_names": names, "state": scalars, "param_groups": groups}),
        **_rng_metadata(),
    }
    if ema is not None:
        metadata["ema"] = json.dumps({k: v for k, v in ema.state_dict().items() if k != "shadow_params"})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_checkpoint(path: Path, prefixes: tuple[str, ...] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a flowrvs training checkpoint (only keys with ``prefixes``, if given)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys() if prefixes is None or k.startswith(prefixes)}
    except (OSError, SafetensorError) as err:  # unreadable, or not a safetensors file
        raise FlowRVSError(f"cannot read checkpoint {path}: {first_line(err)}") from err
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FlowRVSError(f"{path} is not a flowrvs training checkpoint")
    return tensors, meta


@torch.no_grad()
def copy_weights(path: Path, tensors: dict[str, torch.Tensor], named, use_ema: bool) -> None:
    """Copy a checkpoint's ``model.`` (or, where present, ``ema.``) weights into ``named`` parameters."""
    for name, p in named:
        src = tensors.get(f"ema.{name}") if use_ema else None
        src = tensors.get(f"model.{name}") if src is None else src
        if src is None:
            raise FlowRVSError(f"checkpoint {path} lacks {name} (another model or stage?)")
        if tuple(src.shape) != tuple(p.shape):
            raise FlowRVSError(f"checkpoint {path}: {name} has shape {tuple(src.shape)}, the model {tuple(p.shape)}")
        p.copy_(shard_like(src.to(p.dtype), p))


def load_checkpoint(path: Path, config: TrainConfig, named, optimizer: torch.optim.Optimizer, ema: EMA | None) -> int:
    """Restore weights, optimizer, EMA and RNG states from ``path`` (every process reads it);
    returns its step."""
    tensors, meta = read_checkpoint(path)
    if meta.get("stage") != config.stage:
        raise FlowRVSError(f"checkpoint {path} is of stage {meta.get('stage')}, this run is stage {config.stage}")
    opt_meta = json.loads(meta["optimizer"])
    names = [n for n, _ in named]
    if len(opt_meta["param_groups"]) != len(optimizer.param_groups):
        raise FlowRVSError(f"checkpoint {path} has {len(opt_meta['param_groups'])} optimizer parameter group(s), "
                           f"this run {len(optimizer.param_groups)} (was optim.no_decay changed?)")
    if opt_meta["param_names"] != names:
        raise FlowRVSError(f"checkpoint {path} trains other parameters than this run (another model or stage?)")
    copy_weights(path, tensors, named, use_ema=False)
    step = int(meta["step"])
    if ema is not None:
        shadows = {n: tensors.get(f"ema.{n}", tensors[f"model.{n}"]) for n in names}
        ema.load_shadows(shadows, json.loads(meta.get("ema", "{}")).get("optimization_step", step))
    params = dict(named)
    state: dict[int, dict] = {}
    for index, name in enumerate(names):
        entry = {}
        prefix = f"optim.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                entry[key[len(prefix) :]] = shard_like(value, params[name])
        for key, value in opt_meta["state"].get(name, {}).items():
            entry[key] = torch.tensor(value, dtype=torch.float32)
        if entry:
            state[index] = entry
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in opt_meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    _restore_rng(meta, tensors)
    return step


def export_checkpoint(checkpoint: str | Path, out: str | Path, use_ema: bool = True) -> Path:
    """Turn one training checkpoint into a model folder, as the run would have written at that step.

    The run's config travels in the checkpoint; its ``model.init`` folder must still exist
    (the weights a stage does not train come from there). ``use_ema`` picks the EMA weights
    when the checkpoint holds them. Returns the folder, written atomically.
    """
    from flowrvs.training.stages import load_model, stage_class

    path = Path(checkpoint)
    if not path.is_file():
        raise FlowRVSError(f"no such checkpoint: {path}")
    tensors, meta = read_checkpoint(path, ("ema.", "model.") if use_ema else ("model.",))
    config = config_from_dict(json.loads(meta["config"]))
    pipe = load_model(config.model, config.seed, torch.device("cpu"), DTYPES[config.dtype])
    stage = stage_class(config)(config, pipe)
    copy_weights(path, tensors, stage.named_trainable(), use_ema)
    stage.export(Path(out))
    return Path(out)


def release_checkpoint(checkpoint: str | Path) -> dict:
    """A flow-stage checkpoint in the public release's layout: ``{"model": DiT state dict,
    "ema_model": diffusers EMAModel state dict}`` (``shadow_params`` in parameter order), the
    file ``flowrvs convert --dit`` reads. Only for runs that train the DiT alone."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FlowRVSError(f"no such checkpoint: {path}")
    tensors, meta = read_checkpoint(path, ("model.", "ema."))
    config = json.loads(meta["config"])
    if meta.get("stage") != "flow" or config.get("model", {}).get("train_text_encoder"):
        raise FlowRVSError(f"checkpoint {path}: a release file holds a DiT alone (stage flow, no text encoder training)")
    names = json.loads(meta["optimizer"])["param_names"]
    out: dict = {"model": {n: tensors[f"model.{n}"] for n in names}}
    if "ema" in meta:
        out["ema_model"] = {**json.loads(meta["ema"]), "shadow_params": [tensors[f"ema.{n}"] for n in names]}
    return out

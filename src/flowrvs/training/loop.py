"""The training loop: one stage, any number of processes, exact resume.

Determinism: the samples of step ``s`` and every random draw of sample ``i`` of it (BBS
time, SPA noise, noise start point, crop window, VAE posterior sample) are functions of
``(seed, s, i)`` only, ``i`` the sample's index in the global batch. So a run interrupted after
a checkpoint and resumed reproduces the uninterrupted run step for step, and N processes
(each a share of the batch, gradients averaged) train as one process does.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from flowrvs.errors import FlowRVSError
from flowrvs.runtime import distributed
from flowrvs.training.checkpoint import checkpoint_path, export_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from flowrvs.training.config import OptimConfig, TrainConfig, check_world_size, dump_config, validate_config
from flowrvs.training.data import sample_indices
from flowrvs.training.ema import EMA
from flowrvs.training.stages import STAGE_CLASSES, load_model

MODEL_DIR = "model"
LOG_FILE = "train.log"
CONFIG_FILE = "config.yaml"


@dataclass
class TrainResult:
    """What a run did: ``losses`` maps each step run in this call to its loss (the mean over
    the global batch)."""

    stage: str
    step: int
    losses: dict[int, float]
    model_dir: Path
    checkpoint: Path | None
    seconds: float


def step_seed(seed: int, step: int, index: int = 0) -> int:
    """The seed of the random draws of sample ``index`` of ``step`` (and, with index 0, of the
    step's global RNG state)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(index)]).generate_state(1, np.uint64)[0] >> 1)


def sample_generators(seed: int, step: int, indices: list[int], device: torch.device) -> list[torch.Generator]:
    """One generator per sample, keyed by its index in the global batch."""
    return [torch.Generator(device=device).manual_seed(step_seed(seed, step, i)) for i in indices]


def lr_at(optim: OptimConfig, step: int) -> float:
    """Learning rate of (1-based) ``step``: linear warmup, then constant or cosine to zero."""
    if optim.warmup_steps and step <= optim.warmup_steps:
        return optim.lr * step / optim.warmup_steps
    if optim.schedule == "cosine":
        start = max(optim.warmup_steps, optim.decay_start or 0)
        progress = min(1.0, max(0, step - start) / max(1, optim.steps - start))
        return optim.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return optim.lr


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _log(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text + "\n")


def _memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    except (ImportError, OSError):
        return 0.0


def train(
    config: TrainConfig,
    rank: int | None = None,
    world_size: int | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Run (or resume) one stage as ``config`` says; returns a :class:`TrainResult`.

    Under torchrun (``WORLD_SIZE`` > 1) the process group starts here, unless one is up already;
    ``rank``/``world_size`` default to the environment's. Only rank 0 writes logs, checkpoints
    and the model folder. ``callback(step, loss)`` runs after every step (tests use it to
    interrupt a run).
    """
    from tqdm.auto import tqdm

    from flowrvs.runtime.precision import resolve_device_dtype

    validate_config(config)
    process = distributed.from_environment()
    if rank is not None or world_size is not None:
        process = distributed.Process(rank or 0, world_size or 1, process.local_rank)
    check_world_size(config, process.world_size)
    started = time.perf_counter()
    device, dtype = resolve_device_dtype(config.device, config.dtype)
    device = distributed.process_device(device, process)
    owns_group = distributed.setup(process, device, config.dist.backend)
    try:
        return _train(config, process, device, dtype, started, callback, tqdm)
    finally:
        if owns_group:
            distributed.teardown()


def _train(config, process, device, dtype, started, callback, tqdm) -> TrainResult:
    out = Path(config.output_dir)
    checkpoints = list_checkpoints(out)
    if checkpoints and not config.resume:
        raise FlowRVSError(
            f"{out} already holds checkpoints (last: step {checkpoints[-1][0]}); "
            "pass --resume (resume=true) to continue, or choose another output_dir"
        )
    main = process.main
    sharded = process.distributed and config.dist.strategy == "fsdp"

    _seed_everything(config.seed)
    from flowrvs.training.cache import text_cache_ready

    no_umt5 = not config.tensorboard.image_every and text_cache_ready(config)  # mask images need the encoder
    pipe = load_model(config.model, config.seed, device, dtype, text_encoder=not no_umt5)
    stage = STAGE_CLASSES[config.stage](config, pipe)
    if not stage.named_trainable():
        raise FlowRVSError(f"stage {config.stage} has nothing to train")
    model = distributed.wrap(stage, config.dist.strategy, process, device)
    named = stage.named_trainable()  # after wrapping: FSDP's parameters are the sharded ones
    params = [p for _, p in named]
    optimizer = torch.optim.AdamW(
        params, lr=config.optim.lr, betas=tuple(config.optim.betas), eps=config.optim.eps,
        weight_decay=config.optim.weight_decay,
    )
    ema = EMA(named, config.ema.decay, config.ema.warmup) if config.ema.enabled else None

    start = 0
    last_checkpoint = None
    if config.resume and checkpoints:
        start = load_checkpoint(checkpoints[-1][1], config, named, optimizer, ema)
        last_checkpoint = checkpoints[-1][1]
        if start > config.optim.steps:
            raise FlowRVSError(f"checkpoint is at step {start}, past optim.steps={config.optim.steps}")
        if config.stop_at is not None and start > config.stop_at:
            raise FlowRVSError(f"checkpoint is at step {start}, past stop_at={config.stop_at}")
    for group in optimizer.param_groups:  # the config's hyper-parameters win over a checkpoint's
        group.update(weight_decay=config.optim.weight_decay, betas=tuple(config.optim.betas), eps=config.optim.eps)

    log_path = out / LOG_FILE
    board = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        from flowrvs.io.atomic import atomic_path

        with atomic_path(out / "config.yaml") as tmp:
            tmp.write_text(dump_config(config))
            tmp.chmod(0o644)
        _log(log_path, f"# stage={config.stage} start_step={start} steps={config.optim.steps} "
                       f"device={device.type} dtype={str(dtype).replace('torch.', '')} "
                       f"processes={process.world_size} strategy={config.dist.strategy if process.distributed else 'none'} "
                       f"trainable={sum(p.numel() for p in params)}")
        if config.tensorboard.enabled:
            from flowrvs.training.tensorboard import Board

            board = Board(config, stage, device, images=not sharded)

    end = config.optim.steps if config.stop_at is None else config.stop_at
    batches = stage.batches(start, process.rank, process.world_size) if start < end else iter(())
    parts = sample_indices(config, process.rank, process.world_size)
    amp = (
        (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16))
        if config.amp == "bfloat16"
        else contextlib.nullcontext
    )
    losses: dict[int, float] = {}
    window: list[float] = []
    bar = tqdm(total=end, initial=start, desc=f"train {config.stage}", unit="step",
               disable=(not main) or (None if config.progress is None else not config.progress))
    step_started = time.perf_counter()
    try:
        for step in range(start + 1, end + 1):
            micro_batches = next(batches)
            _seed_everything(step_seed(config.seed, step))
            lr = lr_at(config.optim, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for m, (batch, indices) in enumerate(zip(micro_batches, parts)):
                generators = sample_generators(config.seed, step, indices, device)
                with distributed.no_gradient_sync(model, m == len(parts) - 1):
                    with amp():
                        loss = model(batch, generators) / len(parts)
                    loss.backward()
                total += float(loss.detach())
            value = distributed.mean_over_processes(total, process, device)
            if not math.isfinite(value):
                raise FlowRVSError(
                    f"loss is {value} at step {step}; lower optim.lr (now {config.optim.lr:g}) "
                    "or check the data and optim.grad_clip"
                )
            grad_norm = None
            if config.optim.grad_clip > 0:
                grad_norm = float(distributed.full_tensor(torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)))
            optimizer.step()
            if ema is not None:
                ema.update()
            losses[step] = value
            window.append(value)
            bar.update()
            bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.2g}")
            if step % config.log_every == 0 or step == end:
                now = time.perf_counter()
                rate = len(window) * config.optim.batch_size / max(now - step_started, 1e-9)
                if main:
                    _log(log_path, f"step={step} loss={sum(window) / len(window):.6g} lr={lr:.3e} "
                                   f"seconds={now - started:.2f}")
                if board is not None:
                    board.scalars(step, sum(window) / len(window), lr, grad_norm, rate, _memory_gib(device))
                window, step_started = [], now
            if board is not None and config.tensorboard.image_every and step % config.tensorboard.image_every == 0:
                board.images(step, ema)
            if step % config.checkpoint_every == 0 or step == end:
                last_checkpoint = checkpoint_path(out, step)
                save_checkpoint(last_checkpoint, step, config, named, optimizer, ema, process)
                if main and config.keep_last:
                    for _, old in list_checkpoints(out)[: -config.keep_last]:
                        old.unlink(missing_ok=True)
            if callback is not None:
                callback(step, value)
    finally:
        bar.close()
        if board is not None:
            board.close()

    model_dir = out / MODEL_DIR
    use_ema = ema is not None and config.ema.use_at_save
    if sharded or stage.encoders_freed:  # the whole model is in the checkpoint only: rank 0 builds the folder from it
        distributed.barrier(process)
        if main:
            if last_checkpoint is None:
                last_checkpoint = list_checkpoints(out)[-1][1]
            export_checkpoint(last_checkpoint, model_dir, use_ema=use_ema)
    elif main:
        with (ema.applied() if use_ema else contextlib.nullcontext()):
            stage.export(model_dir)
    if main:
        _log(log_path, f"# wrote {model_dir} (ema={use_ema}) seconds={time.perf_counter() - started:.2f}")
    distributed.barrier(process)
    return TrainResult(stage=config.stage, step=end, losses=losses, model_dir=model_dir,
                       checkpoint=last_checkpoint, seconds=time.perf_counter() - started)

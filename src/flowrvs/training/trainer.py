"""The trainer: one stage, any number of processes, exact resume.

Determinism: the samples of step ``s`` and every random draw of sample ``i`` of it (BBS
time, SPA noise, noise start point, crop window, VAE posterior sample) are functions of
``(seed, s, i)`` only, ``i`` the sample's index in the global batch. So a run interrupted after
a checkpoint and resumed reproduces the uninterrupted run step for step, and N processes
(each a share of the batch, gradients averaged) train as one process does.

:class:`Trainer` sets a run up in small steps (process, device and precision, model, optimizer,
EMA, checkpoint resume, logging, data) and :meth:`Trainer.run` runs the steps;
:func:`train` is the entry of ``flowrvs train``.
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
from tqdm.auto import tqdm

from flowrvs.errors import FlowRVSError
from flowrvs.io.atomic import atomic_path
from flowrvs.runtime import distributed
from flowrvs.runtime.precision import resolve_device_dtype
from flowrvs.training.cache import text_cache_ready
from flowrvs.training.checkpoint import checkpoint_path, export_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from flowrvs.training.config import OptimConfig, TrainConfig, check_world_size, dump_config, validate_config
from flowrvs.training.data import sample_indices
from flowrvs.training.ema import EMA
from flowrvs.training.stages import load_model, stage_class
from flowrvs.training.tensorboard import Board

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
    """Learning rate of (1-based) ``step``: linear warmup, then constant, cosine to zero, or one
    drop by ``decay_factor`` after ``decay_start`` (``step``)."""
    if optim.warmup_steps and step <= optim.warmup_steps:
        return optim.lr * step / optim.warmup_steps
    if optim.schedule == "step":
        return optim.lr * (optim.decay_factor if step > optim.decay_start else 1.0)
    if optim.schedule == "cosine":
        start = max(optim.warmup_steps, optim.decay_start or 0)
        progress = min(1.0, max(0, step - start) / max(1, optim.steps - start))
        return optim.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return optim.lr


def param_groups(named, optim: OptimConfig) -> tuple[list, list[dict]]:
    """``(named, groups)``: the trainable ``(name, parameter)`` pairs in the optimizer's order
    (those that decay, then those ``optim.no_decay`` exempts) and AdamW's parameter groups (one
    when nothing is exempt; a checkpoint's optimizer state is stored by that order)."""
    exempt = [(n, p) for n, p in named if any(part in n for part in optim.no_decay)]
    decay = [(n, p) for n, p in named if not any(part in n for part in optim.no_decay)]
    groups = [{"params": [p for _, p in decay], "weight_decay": optim.weight_decay}]
    if exempt:
        groups.append({"params": [p for _, p in exempt], "weight_decay": 0.0})
    return decay + exempt, groups


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _memory_gib(device: torch.device) -> float:
    """Peak memory of this process in GiB: allocated on cuda, the resident set on cpu."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    try:
        import resource  # not on Windows
    except ImportError:
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


class Trainer:
    """Trains one stage as ``config`` says, on this process's share of every global batch.

    Under torchrun (``WORLD_SIZE`` > 1) :meth:`run` starts the process group unless one is up
    already; ``rank``/``world_size`` default to the environment's. Only rank 0 writes logs,
    checkpoints and the model folder. ``callback(step, loss)`` runs after every step (tests use
    it to interrupt a run).
    """

    def __init__(
        self,
        config: TrainConfig,
        rank: int | None = None,
        world_size: int | None = None,
        callback: Callable[[int, float], None] | None = None,
    ):
        validate_config(config)
        self.config = config
        self.callback = callback
        self.out = Path(config.output_dir)
        self.log_path = self.out / LOG_FILE
        self._setup_process(rank, world_size)
        self.started = time.perf_counter()
        self._setup_device()

    # ------------------------------------------------------------------ setup steps

    def _setup_process(self, rank: int | None, world_size: int | None) -> None:
        process = distributed.from_environment()
        if rank is not None or world_size is not None:
            process = distributed.Process(rank or 0, world_size or 1, process.local_rank)
        check_world_size(self.config, process.world_size)
        self.process = process
        self.main = process.main
        self.sharded = process.distributed and self.config.dist.strategy == "fsdp"

    def _setup_device(self) -> None:
        """The device of this process, the dtype of the weights, and the autocast context."""
        device, self.dtype = resolve_device_dtype(self.config.device, self.config.dtype)
        self.device = distributed.process_device(device, self.process)
        if self.config.amp == "bfloat16":
            self.amp = lambda: torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        else:
            self.amp = contextlib.nullcontext

    def _setup_components(self) -> None:
        checkpoints = self._check_output()
        _seed_everything(self.config.seed)
        self._setup_model()
        self._setup_optimizer()
        self._setup_ema()
        self._resume(checkpoints)
        self._setup_logging()
        self._setup_data()

    def _check_output(self) -> list[tuple[int, Path]]:
        """The checkpoints already in the output folder; refused unless the run resumes."""
        checkpoints = list_checkpoints(self.out)
        if checkpoints and not self.config.resume:
            raise FlowRVSError(
                f"{self.out} already holds checkpoints (last: step {checkpoints[-1][0]}); "
                "pass --resume (resume=true) to continue, or choose another output_dir"
            )
        return checkpoints

    def _setup_model(self) -> None:
        """The stage's model, wrapped for DDP/FSDP, and its trainable parameters."""
        config = self.config
        no_umt5 = not config.tensorboard.image_every and text_cache_ready(config)  # mask images need the encoder
        pipe = load_model(config.model, config.seed, self.device, self.dtype, text_encoder=not no_umt5)
        self.stage = stage_class(config)(config, pipe)
        if not self.stage.named_trainable():
            raise FlowRVSError(f"stage {config.stage} has nothing to train")
        self.model = distributed.wrap(self.stage, config.dist.strategy, self.process, self.device)
        # after wrapping: FSDP's parameters are the sharded ones; in the optimizer's order
        self.named, self.groups = param_groups(self.stage.named_trainable(), config.optim)
        self.params = [p for _, p in self.named]

    def _setup_optimizer(self) -> None:
        optim = self.config.optim
        self.optimizer = torch.optim.AdamW(self.groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)

    def _setup_ema(self) -> None:
        ema = self.config.ema
        self.ema = EMA(self.named, ema.decay, ema.warmup) if ema.enabled else None

    def _resume(self, checkpoints: list[tuple[int, Path]]) -> None:
        """Weights, optimizer, EMA and RNG state from the last checkpoint when resuming."""
        config = self.config
        self.start = 0
        self.last_checkpoint = None
        if config.resume and checkpoints:
            self.start = load_checkpoint(checkpoints[-1][1], config, self.named, self.optimizer, self.ema)
            self.last_checkpoint = checkpoints[-1][1]
            if self.start > config.optim.steps:
                raise FlowRVSError(f"checkpoint is at step {self.start}, past optim.steps={config.optim.steps}")
            if config.stop_at is not None and self.start > config.stop_at:
                raise FlowRVSError(f"checkpoint is at step {self.start}, past stop_at={config.stop_at}")
        for group, built in zip(self.optimizer.param_groups, self.groups):  # the config's hyper-parameters win
            group.update(weight_decay=built["weight_decay"], betas=tuple(config.optim.betas), eps=config.optim.eps)

    def _setup_logging(self) -> None:
        """On rank 0: the config file, the log's header line and the TensorBoard writer."""
        config, process = self.config, self.process
        self.board = None
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.out / CONFIG_FILE) as tmp:
            tmp.write_text(dump_config(config))
            tmp.chmod(0o644)
        strategy = config.dist.strategy if process.distributed else "none"
        self._log(f"# stage={config.stage} start_step={self.start} steps={config.optim.steps} "
                  f"device={self.device.type} dtype={str(self.dtype).replace('torch.', '')} "
                  f"processes={process.world_size} strategy={strategy} "
                  f"trainable={sum(p.numel() for p in self.params)}")
        if config.tensorboard.enabled:
            self.board = Board(config, self.stage, self.device, images=not self.sharded)

    def _setup_data(self) -> None:
        """The last step of this call, this process's batches from the first step to run, and
        the global-batch indices of its micro-batches."""
        config, process = self.config, self.process
        self.end = config.optim.steps if config.stop_at is None else config.stop_at
        if self.start < self.end:
            self.batches = self.stage.batches(self.start, process.rank, process.world_size)
        else:
            self.batches = iter(())
        self.parts = sample_indices(config, process.rank, process.world_size)

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        """Run (or resume) the stage to ``stop_at`` (else ``optim.steps``) and export the model."""
        owns_group = distributed.setup(self.process, self.device, self.config.dist.backend)
        try:
            self._setup_components()
            losses = self._run_steps()
            model_dir = self._export()
            return TrainResult(stage=self.config.stage, step=self.end, losses=losses, model_dir=model_dir,
                               checkpoint=self.last_checkpoint, seconds=time.perf_counter() - self.started)
        finally:
            if owns_group:
                distributed.teardown()

    def _run_steps(self) -> dict[int, float]:
        config = self.config
        losses: dict[int, float] = {}
        window: list[float] = []
        disable = (not self.main) or (None if config.progress is None else not config.progress)
        bar = tqdm(total=self.end, initial=self.start, desc=f"train {config.stage}", unit="step", disable=disable)
        window_started = time.perf_counter()
        try:
            for step in range(self.start + 1, self.end + 1):
                value, lr, grad_norm = self._step(step)
                losses[step] = value
                window.append(value)
                bar.update()
                bar.set_postfix(loss=f"{value:.4g}", lr=f"{lr:.2g}")
                if step % config.log_every == 0 or step == self.end:
                    window_started = self._log_window(step, window, lr, grad_norm, window_started)
                    window = []
                if self.board is not None and config.tensorboard.image_every and step % config.tensorboard.image_every == 0:
                    self.board.images(step, self.ema)
                if step % config.checkpoint_every == 0 or step == self.end:
                    self._save_checkpoint(step)
                if self.callback is not None:
                    self.callback(step, value)
        finally:
            bar.close()
            if self.board is not None:
                self.board.close()
        return losses

    def _step(self, step: int) -> tuple[float, float, float | None]:
        """One optimizer step: ``(loss averaged over the global batch, lr, gradient norm or None)``."""
        config = self.config
        micro_batches = next(self.batches)
        _seed_everything(step_seed(config.seed, step))
        lr = lr_at(config.optim, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for m, (batch, indices) in enumerate(zip(micro_batches, self.parts)):
            generators = sample_generators(config.seed, step, indices, self.device)
            with distributed.no_gradient_sync(self.model, m == len(self.parts) - 1):
                with self.amp():
                    loss = self.model(batch, generators) / len(self.parts)
                loss.backward()
            total += float(loss.detach())
        value = distributed.mean_over_processes(total, self.process, self.device)
        if not math.isfinite(value):
            raise FlowRVSError(
                f"loss is {value} at step {step}; lower optim.lr (now {config.optim.lr:g}) "
                "or check the data and optim.grad_clip"
            )
        grad_norm = None
        if config.optim.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, config.optim.grad_clip)
            grad_norm = float(distributed.full_tensor(norm))
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        return value, lr, grad_norm

    def _log_window(self, step: int, window: list[float], lr: float, grad_norm: float | None, since: float) -> float:
        """The mean loss of the steps since the last log line, to the log and TensorBoard; returns
        the time it was logged at (the start of the next window)."""
        now = time.perf_counter()
        mean = sum(window) / len(window)
        if self.main:
            self._log(f"step={step} loss={mean:.6g} lr={lr:.3e} seconds={now - self.started:.2f}")
        if self.board is not None:
            rate = len(window) * self.config.optim.batch_size / max(now - since, 1e-9)
            self.board.scalars(step, mean, lr, grad_norm, rate, _memory_gib(self.device))
        return now

    def _save_checkpoint(self, step: int) -> None:
        """Checkpoint ``step`` (every process takes part) and keep the last ``keep_last``."""
        self.last_checkpoint = checkpoint_path(self.out, step)
        save_checkpoint(self.last_checkpoint, step, self.config, self.named, self.optimizer, self.ema, self.process)
        if self.main and self.config.keep_last:
            for _, old in list_checkpoints(self.out)[: -self.config.keep_last]:
                old.unlink(missing_ok=True)

    def _export(self) -> Path:
        """Write the model folder (with the EMA weights when ``ema.use_at_save``) and return it."""
        model_dir = self.out / MODEL_DIR
        use_ema = self.ema is not None and self.config.ema.use_at_save
        if self.sharded or self.stage.encoders_freed:  # the whole model is in the checkpoint only: rank 0 builds the folder from it
            distributed.barrier(self.process)
            if self.main:
                if self.last_checkpoint is None:
                    self.last_checkpoint = list_checkpoints(self.out)[-1][1]
                export_checkpoint(self.last_checkpoint, model_dir, use_ema=use_ema)
        elif self.main:
            with (self.ema.applied() if use_ema else contextlib.nullcontext()):
                self.stage.export(model_dir)
        if self.main:
            self._log(f"# wrote {model_dir} (ema={use_ema}) seconds={time.perf_counter() - self.started:.2f}")
        distributed.barrier(self.process)
        return model_dir

    def _log(self, text: str) -> None:
        with open(self.log_path, "a") as fh:
            fh.write(text + "\n")


def train(
    config: TrainConfig,
    rank: int | None = None,
    world_size: int | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Run (or resume) one stage as ``config`` says; see :class:`Trainer`."""
    return Trainer(config, rank, world_size, callback).run()

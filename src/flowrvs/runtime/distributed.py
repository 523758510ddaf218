"""Many processes with ``torch.distributed``: which process this is, the process group, DDP and
FSDP2 wrapping, barriers and the few collectives training needs.

Launch with ``torchrun --nproc_per_node N -m flowrvs train CONFIG`` (or ``evaluate``,
``segment-batch``): torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
address, :func:`from_environment` reads them and :func:`setup` starts the group (nccl on cuda,
gloo on cpu unless ``backend`` says otherwise). One process is the plain single-process run:
nothing is wrapped and no collective runs. :class:`Process` is the one description of "this
process" that training, ``evaluate`` and ``segment-batch`` share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from flowrvs.errors import FlowRVSError


@dataclass(frozen=True)
class Process:
    """This process: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def from_environment() -> Process:
    """The process torchrun describes in ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (else a single one).

    Raises FlowRVSError when one of them is not an integer, or ``RANK`` is outside ``[0, WORLD_SIZE)``.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return Process()
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as err:
        raise FlowRVSError(f"bad RANK/WORLD_SIZE/LOCAL_RANK in the environment: {err}") from err
    if not 0 <= rank < world:
        raise FlowRVSError(f"RANK {rank} is outside 0..{world - 1} (WORLD_SIZE {world})")
    return Process(rank, world, local_rank)


def setup(process: Process, device: torch.device, backend: str | None = None) -> bool:
    """Start the default process group when there are several processes and none is up yet;
    returns whether this call started it (then :func:`teardown` ends it)."""
    if not process.distributed or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend or ("nccl" if device.type == "cuda" else "gloo"),
                            rank=process.rank, world_size=process.world_size)
    return True


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def process_device(device: torch.device, process: Process) -> torch.device:
    """One cuda device per process (``LOCAL_RANK``); cpu stays cpu."""
    if device.type == "cuda" and process.distributed:
        return torch.device("cuda", process.local_rank)
    return device


def wrap(stage: torch.nn.Module, strategy: str, process: Process, device: torch.device) -> torch.nn.Module:
    """The module the loop calls: ``stage`` itself (one process), DDP of it (``ddp``), or
    ``stage`` with its DiT sharded by FSDP2 ``fully_shard``, one unit per transformer block and
    one for the rest (``fsdp``)."""
    if not process.distributed:
        return stage
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in stage.pipe.transformer.blocks:
            fully_shard(block)
        fully_shard(stage)
        return stage
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(stage, device_ids=ids)


def no_gradient_sync(module: torch.nn.Module, sync: bool):
    """A context in which backward accumulates gradients without all-reducing them (``sync``
    false: a micro-batch before the last of a step)."""
    import contextlib

    if sync:
        return contextlib.nullcontext()
    if hasattr(module, "no_sync"):  # DDP
        return module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):  # FSDP2

        @contextlib.contextmanager
        def unsynced():
            module.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                module.set_requires_gradient_sync(True)

        return unsynced()
    return contextlib.nullcontext()


def mean_over_processes(value: float, process: Process, device: torch.device) -> float:
    """The mean of ``value`` over all processes (itself with one)."""
    if not process.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / process.world_size


def barrier(process: Process) -> None:
    """Wait until every process gets here (nothing with one process; the group must be up)."""
    if process.distributed:
        dist.barrier()


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded DTensor (a collective: every process calls it), else ``t``."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``full`` laid out as ``like`` is: this process's shard for a DTensor (every process calls
    it with the same ``full``), else ``full`` on ``like``'s device."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(like, DTensor):
        return distribute_tensor(full.to(like.device_mesh.device_type), like.device_mesh, like.placements)
    return full.to(like.device)

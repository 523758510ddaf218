"""EMA of the trainable weights: diffusers' ``EMAModel``, float32 shadows.

``ema.warmup``: ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (diffusers' default),
else ``d = decay`` from the second update on. :meth:`EMA.state_dict` is ``EMAModel``'s
(``shadow_params`` in parameter order), the ``ema_model`` entry of the public FlowRVS
release, which :func:`flowrvs.loading.convert.dit_state_dict` reads.
"""

from __future__ import annotations

import contextlib

import torch

from flowrvs.runtime.distributed import full_tensor, shard_like


class EMA:
    """Shadow copies of ``named`` parameters (``[(name, parameter), ...]``), kept in float32.

    Sharded (FSDP) parameters have sharded shadows; :meth:`full_shadows` gathers them (every
    process must call it).
    """

    def __init__(self, named: list[tuple[str, torch.nn.Parameter]], decay: float, warmup: bool = True):
        from diffusers.training_utils import EMAModel

        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.model = EMAModel(self.params, decay=decay, min_decay=0.0 if warmup else decay)
        self.model.to(dtype=torch.float32)

    @property
    def step_count(self) -> int:
        return int(self.model.optimization_step)

    def update(self) -> None:
        self.model.step(self.params)

    def full_shadows(self) -> dict[str, torch.Tensor]:
        """``{name: shadow}`` as whole CPU tensors."""
        return {n: full_tensor(s).detach().cpu() for n, s in zip(self.names, self.model.shadow_params)}

    @torch.no_grad()
    def load_shadows(self, tensors: dict[str, torch.Tensor], step_count: int) -> None:
        """Set the shadows from whole tensors ``{name: tensor}`` (and the update count)."""
        for name, shadow in zip(self.names, self.model.shadow_params):
            shadow.copy_(shard_like(tensors[name].to(torch.float32), shadow))
        self.model.optimization_step = int(step_count)

    def state_dict(self) -> dict:
        """diffusers ``EMAModel.state_dict()`` (``shadow_params`` in parameter order)."""
        return self.model.state_dict()

    @contextlib.contextmanager
    def applied(self):
        """Swap the shadow weights into the parameters for the duration of the block."""
        self.model.store(self.params)
        self.model.copy_to(self.params)
        try:
            yield
        finally:
            self.model.restore(self.params)

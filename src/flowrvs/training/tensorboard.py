"""TensorBoard logs of a run (rank 0 only), under ``output_dir/tensorboard``.

Scalars every ``log_every`` steps: ``train/loss`` (mean over the steps since the last log),
``train/lr``, ``train/grad_norm`` (before clipping), ``train/samples_per_s`` (global batch),
``train/memory_gib`` (peak cuda memory of rank 0, or peak RSS on cpu). For the flow stage,
every ``tensorboard.image_every`` steps: for a few fixed clips, the frames, the ground truth
and the predicted masks (EMA weights when the run keeps them) side by side, one image per clip
(middle frame), tagged ``masks/<i>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flowrvs.training.config import TrainConfig


class Board:
    """A ``SummaryWriter`` and the fixed clips whose predicted masks it shows."""

    def __init__(self, config: TrainConfig, stage, device: torch.device, images: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        self.config = config
        self.stage = stage
        self.device = device
        self.writer = SummaryWriter(str(Path(config.output_dir) / "tensorboard"))
        self.clips = None
        self.show = images and config.stage == "flow" and config.tensorboard.image_every > 0

    def scalars(self, step: int, loss: float, lr: float, grad_norm: float | None, samples_per_s: float,
                memory_gib: float) -> None:
        w = self.writer
        w.add_scalar("train/loss", loss, step)
        w.add_scalar("train/lr", lr, step)
        if grad_norm is not None:
            w.add_scalar("train/grad_norm", grad_norm, step)
        w.add_scalar("train/samples_per_s", samples_per_s, step)
        w.add_scalar("train/memory_gib", memory_gib, step)
        w.flush()

    def _fixed_clips(self) -> list:
        """The first ``image_clips`` clips of the first dataset's ``image_split`` (epoch 0, no flip)."""
        import dataclasses

        from flowrvs.data.sampling import ClipDataset
        from flowrvs.training.config import clip_frames
        from flowrvs.training.data import build_datasets

        tb = self.config.tensorboard
        spec = self.config.data.datasets[0]
        first = dataclasses.replace(spec, split=tb.image_split or spec.split, weight=1.0)
        config = dataclasses.replace(self.config, data=dataclasses.replace(self.config.data, datasets=[first]))
        clips = ClipDataset(build_datasets(config), num_frames=clip_frames(config.data, first), size_box=tuple(config.data.size),
                            hflip_p=0.0, seed=config.seed, mode=config.data.sampling, length=tb.image_clips,
                            resize_rule=config.data.resize_rule)
        return [clips[i] for i in range(len(clips))]

    @torch.no_grad()
    def images(self, step: int, ema=None) -> None:
        """Predicted masks of the fixed clips (a pipeline call each), logged as images."""
        import contextlib

        if not self.show:
            return
        if self.clips is None:
            self.clips = self._fixed_clips()
        pipe = self.stage.pipe
        root = self.stage.root
        was_training = root.training
        root.eval()
        try:
            with (ema.applied() if ema is not None else contextlib.nullcontext()):
                if self.config.model.train_text_encoder:  # the cache holds embeddings of older weights
                    pipe.prompt_encoder.clear_cache()
                pipe.set_progress_bar_config(disable=True)
                for i, clip in enumerate(self.clips):
                    result = pipe(clip.frames, [clip.sentence], num_inference_steps=self.config.tensorboard.image_steps)
                    self.writer.add_image(f"masks/{i}", panel(clip.frames, clip.mask, result.masks[0]), step,
                                          dataformats="HWC")
        finally:
            root.train(was_training)
            if self.config.model.train_text_encoder:
                pipe.prompt_encoder.clear_cache()
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def panel(frames: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The middle frame, its ground truth and the predicted mask side by side, ``(H, 3W, 3)`` uint8.

    frames: ``(T, H, W, 3)`` uint8; truth, predicted: ``(T, H, W)``, nonzero = object.
    """
    t = len(frames) // 2
    grey = lambda m: np.repeat((np.asarray(m[t]) > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)
    return np.concatenate([np.asarray(frames[t], np.uint8), grey(truth), grey(predicted)], axis=1)

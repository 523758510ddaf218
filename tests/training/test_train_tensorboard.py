"""TensorBoard logs of a training run: scalars every log_every steps, predicted masks as images."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from flowrvs.data.synth.writer import write_split
from flowrvs.training.config import config_from_dict
from flowrvs.training.trainer import train


def test_scalars_and_mask_images(tmp_path):
    write_split(tmp_path / "synth", "train", videos=2, frames=5, size=(32, 48), seed=0, progress=False)
    config = config_from_dict({
        "output_dir": str(tmp_path / "run"), "device": "cpu", "progress": False, "log_every": 2,
        "model": {"preset": "tiny", "vocabulary": "synth", "text_len": 16},
        "data": {"datasets": [{"type": "mevis", "root": str(tmp_path / "synth"), "split": "train"}],
                 "num_frames": 5, "size": [32, 48]},
        "optim": {"steps": 4, "lr": 1e-3, "batch_size": 2},
        "tensorboard": {"image_every": 2, "image_clips": 2},
    })
    losses = train(config).losses
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/memory_gib"} <= set(tags["scalars"])
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [2, 4]
    assert loss[0].value == pytest.approx((losses[1] + losses[2]) / 2, rel=1e-5)
    assert all(e.value > 0 for e in events.Scalars("train/samples_per_s"))
    assert set(tags["images"]) == {"masks/0", "masks/1"}
    image = events.Images("masks/0")
    assert [e.step for e in image] == [2, 4] and (image[0].width, image[0].height) == (3 * 48, 32)

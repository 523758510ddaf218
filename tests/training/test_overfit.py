"""A tiny FlowRVS overfits one clip through the trainer: mask_decoder stage, then flow stage.

The flow loss must fall by 10x, and the mask that the pipeline samples in one Euler step from
the video must match the training mask (IoU > 0.9).
"""

import numpy as np
import pytest

from flowrvs.pipelines.loader import load_pipeline
from flowrvs.training.config import config_from_dict
from flowrvs.training.trainer import train
from helpers.clips import H, SENTENCE, T, W, one_clip


def stage_config(out, root, stage, steps, init=None, **sections):
    return config_from_dict({
        "output_dir": str(out),
        "stage": stage,
        "seed": 0,
        "device": "cpu",
        "dtype": "float32",
        "progress": False,
        "checkpoint_every": 10_000,
        "model": {"preset": "tiny", "init": None if init is None else str(init), "vocabulary": "synth", "text_len": 16},
        "data": {
            "datasets": [{"type": "mevis", "root": str(root), "split": "train"}],
            "num_frames": T,
            "size": [H, W],
            "hflip_p": 0.0,
            "sampling": "local",
        },
        "optim": {"steps": steps, "lr": 3e-3},
        "ema": {"enabled": False},
        **sections,
    })


@pytest.mark.slow  # about 100 s on 2 cores: 210 training steps
def test_tiny_model_overfits_one_clip(tmp_path):
    frames, mask = one_clip(tmp_path / "data")

    decoder = train(stage_config(tmp_path / "dec", tmp_path / "data", "mask_decoder", 60))
    dec_losses = list(decoder.losses.values())
    assert np.mean(dec_losses[-5:]) < 0.2 * np.mean(dec_losses[:5])

    flow = train(stage_config(
        tmp_path / "flow", tmp_path / "data", "flow", 150, init=decoder.model_dir,
        flow={"bbs_p": 0.5, "spa_strength": 0.0},
    ))
    losses = list(flow.losses.values())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last * 10 < first, (first, last)  # measured: 50-150x on seeds 0-3

    pipe = load_pipeline(flow.model_dir, device="cpu", dtype="float32")
    assert pipe.config.size == (H, W)
    predicted = pipe(frames, [SENTENCE], num_inference_steps=1).masks[0]
    iou = (predicted & mask).sum() / (predicted | mask).sum()
    assert iou > 0.9, iou  # measured: 0.985-0.996

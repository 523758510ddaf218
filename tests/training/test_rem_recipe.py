"""What the REM recipe (configs/rem-wan14b-ytvos.yaml) needs of the trainer beyond REM's
objective: its inference geometry in training (``data.resize_rule``)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from flowrvs.pipelines.pipeline_rem import REMPipeline
from flowrvs.training.config import config_from_dict, load_config
from flowrvs.training.data import video_batches
from helpers.clips import H, T, W, one_clip

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "rem-wan14b-ytvos.yaml"


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("rem-recipe") / "data"
    one_clip(root)
    return root


def _config(root: Path, out: Path, **data) -> dict:
    return {
        "output_dir": str(out), "device": "cpu", "progress": False,
        "model": {"preset": "tiny", "method": "rem", "vocabulary": "synth"},
        "data": {"datasets": [{"type": "mevis", "root": str(root), "split": "train"}],
                 "num_frames": T, "hflip_p": 0.0, "sampling": "local", **data},
        "optim": {"steps": 2, "batch_size": 1},
        "ema": {"enabled": False}, "tensorboard": {"enabled": False},
    }


def test_the_recipe_trains_on_rem_inference_geometry():
    config = load_config(RECIPE)
    params = inspect.signature(REMPipeline.__init__).parameters  # REM's inference defaults
    assert config.data.resize_rule == params["resize_rule"].default == "exact"
    assert tuple(config.data.size) == tuple(params["size"].default) == (512, 512)


@pytest.mark.parametrize("rule, size", [("exact", (64, 64)), ("oriented", (48, 64))])
def test_resize_rule_sets_the_training_clip_size(clip_root, tmp_path, rule, size):
    # the 32x48 clip in a 64x64 box: stretched to the box (exact), or the box turned to the
    # frame and the aspect kept (oriented, the FlowRVS default)
    config = config_from_dict(_config(clip_root, tmp_path, size=[64, 64], resize_rule=rule))
    (batch,) = next(video_batches(config, 0))
    assert tuple(batch["video"].shape[-2:]) == tuple(batch["mask"].shape[-2:]) == size


def test_flowrvs_keeps_its_training_resize_by_default(clip_root, tmp_path):
    assert config_from_dict(_config(clip_root, tmp_path)).data.resize_rule == "oriented"

"""What the REM recipe (configs/rem-wan14b-ytvos.yaml) needs of the trainer beyond REM's
objective: its inference geometry in training (``data.resize_rule``), biases and norms without
weight decay (``optim.no_decay``)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.pipeline_rem import REMPipeline
from flowrvs.training.config import config_from_dict, load_config
from flowrvs.training.data import video_batches
from flowrvs.training.trainer import train
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


# --------------------------------------------------------------------------- weight decay
def _groups(checkpoint: Path) -> list[tuple[float, list[str]]]:
    """``[(weight_decay, parameter names), ...]`` of a checkpoint's optimizer groups."""
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="pt") as fh:
        opt = json.loads(fh.metadata()["optimizer"])
    return [(g["weight_decay"], [opt["param_names"][i] for i in g["params"]]) for g in opt["param_groups"]]


def _run(root: Path, out: Path, steps: int, **optim) -> dict:
    raw = _config(root, out, size=[32, 48])
    raw["optim"].update(steps=steps, lr=1e-3, weight_decay=0.5, **optim)
    raw.update(checkpoint_every=2, keep_last=0, log_every=1)
    return raw


def test_no_decay_exempts_rems_biases_and_norms(clip_root, tmp_path):
    recipe = load_config(RECIPE).optim
    train(config_from_dict(_run(clip_root, tmp_path / "run", 2, no_decay=list(recipe.no_decay))))
    (decay, decayed), (none, exempt) = _groups(tmp_path / "run" / "checkpoints" / "step-00000002.safetensors")
    assert (decay, none) == (0.5, 0.0)
    assert exempt and all(n.endswith(".bias") or "norm" in n for n in exempt)
    assert decayed and not any(n.endswith(".bias") or "norm" in n for n in decayed)
    assert any(".norm2." in n for n in exempt) and any(".norm_q." in n for n in exempt)  # the DiT's layer and RMS norms
    assert recipe.weight_decay == 1e-5 and {".bias", "norm"} <= set(recipe.no_decay)


def test_two_groups_resume_as_the_uninterrupted_run(clip_root, tmp_path):
    exempt = {"no_decay": [".bias", "norm"]}
    whole = train(config_from_dict(_run(clip_root, tmp_path / "whole", 4, **exempt)))
    train(config_from_dict(_run(clip_root, tmp_path / "cut", 4, **exempt) | {"stop_at": 2}))
    resumed = train(config_from_dict(_run(clip_root, tmp_path / "cut", 4, **exempt) | {"resume": True}))
    assert resumed.losses == {s: whole.losses[s] for s in (3, 4)}
    with pytest.raises(FlowRVSError, match="no_decay"):  # resumed with another split of the parameters
        train(config_from_dict(_run(clip_root, tmp_path / "cut", 5) | {"resume": True}))


def test_an_empty_no_decay_entry_is_refused(clip_root, tmp_path):
    with pytest.raises(FlowRVSError, match="optim.no_decay"):
        config_from_dict(_run(clip_root, tmp_path, 2, no_decay=[""]))

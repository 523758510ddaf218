"""What the REM recipe (configs/rem-wan14b-ytvos.yaml) needs of the trainer beyond REM's
objective: its inference geometry in training (``data.resize_rule``), biases and norms without
weight decay (``optim.no_decay``), steps of RefCOCO images alternating with steps of video clips
(``data.mixing: alternate``)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.pipeline_rem import REMPipeline
from flowrvs.training.config import clip_frames, config_from_dict, dataset_groups, load_config
from flowrvs.training.data import video_batches
from flowrvs.training.trainer import train
from helpers.clips import SENTENCE, T, one_clip
from helpers.refcoco import make_coco
from helpers.releases import write_wan_base

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


# --------------------------------------------------------------------------- data.mixing
COCO_SENTENCES = {"the white square", "square in the middle", "red car on the left"}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return make_coco(tmp_path_factory.mktemp("rem-coco") / "coco")


def _alternating(clip_root: Path, coco_root: Path, out: Path, **data) -> dict:
    raw = _config(clip_root, out, size=[32, 48], mixing="alternate", **data)
    raw["data"]["datasets"] = [
        {"type": "refcoco", "name": "refcoco", "root": str(coco_root), "split": "train", "num_frames": 1, "group": 0},
        {"type": "mevis", "root": str(clip_root), "split": "train", "group": 1},
    ]
    raw["optim"].update(steps=4, batch_size=2)
    return raw


def test_alternate_mixing_takes_whole_steps_from_each_group_in_turn(clip_root, coco_root, tmp_path):
    config = config_from_dict(_alternating(clip_root, coco_root, tmp_path))
    steps = [batches[0] for batches in video_batches(config, 0)]
    assert [b["video"].shape[2] for b in steps] == [1, T, 1, T]  # REM: an image step, then a video step
    assert all(set(b["prompts"]) <= COCO_SENTENCES for b in steps[0::2])
    assert all(set(b["prompts"]) == {SENTENCE} for b in steps[1::2])
    resumed = [batches[0] for batches in video_batches(config, 1)]  # a resumed run draws the same steps
    assert [b["prompts"] for b in resumed] == [b["prompts"] for b in steps[1:]]
    halves = zip(video_batches(config, 0, rank=0, world_size=2), video_batches(config, 0, rank=1, world_size=2))
    for whole, (first, second) in zip(steps, halves):  # 2 processes share each step's batch
        assert torch.equal(torch.cat([first[0]["video"], second[0]["video"]]), whole["video"])


def test_rem_trains_on_alternating_image_and_video_steps(clip_root, coco_root, tmp_path):
    result = train(config_from_dict(_alternating(clip_root, coco_root, tmp_path / "run")))
    assert sorted(result.losses) == [1, 2, 3, 4] and all(np.isfinite(v) for v in result.losses.values())


@pytest.mark.parametrize("change, match", [
    ({"mixing": "weighted", "datasets.1.group": 0}, "one clip length"),  # 1-frame and 5-frame clips in a batch
    ({"cache_latents": True}, "cache_latents"),
    ({"datasets.1.group": 2}, "no dataset is in group 1"),
])
def test_mixing_that_cannot_batch_is_refused_in_one_line(clip_root, coco_root, tmp_path, change, match):
    raw = _alternating(clip_root, coco_root, tmp_path)
    for key, value in change.items():
        if key.startswith("datasets."):
            raw["data"]["datasets"][int(key.split(".")[1])]["group"] = value
        else:
            raw["data"][key] = value
    with pytest.raises(FlowRVSError, match=match):
        config_from_dict(raw)


def test_a_group_without_alternate_mixing_is_refused(clip_root, tmp_path):
    raw = _config(clip_root, tmp_path)
    raw["data"]["datasets"][0]["group"] = 1
    with pytest.raises(FlowRVSError, match="data.datasets.0.group applies to data.mixing=alternate"):
        config_from_dict(raw)


def test_the_recipe_alternates_refcoco_images_and_ytvos_clips():
    data = load_config(RECIPE).data
    assert data.mixing == "alternate"
    image, video = dataset_groups(data)  # group 0 takes the first step, as REM's iteration 0
    assert {data.datasets[i].type for i in image} == {"refcoco"} and {data.datasets[i].type for i in video} == {"ytvos"}
    assert {clip_frames(data, data.datasets[i]) for i in image} == {1}
    assert {clip_frames(data, data.datasets[i]) for i in video} == {17}


# --------------------------------------------------------------------------- the stock Wan start
@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return write_wan_base(tmp_path_factory.mktemp("wan") / "Wan2.1-T2V-Diffusers")


def test_rem_trains_from_the_stock_wan_folder(wan, clip_root, tmp_path):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    raw = _config(clip_root, tmp_path / "run", size=[32, 48])
    raw["model"] = {"method": "rem", "init": str(wan)}
    raw["optim"].update(steps=2, lr=1e-3)
    result = train(config_from_dict(raw))
    pipe = REMPipeline.from_pretrained(result.model_dir)
    assert pipe.vae.config.out_channels == 3 and pipe.config.text_len == 77  # REM's decoder and settings
    stock_vae = AutoencoderKLWan.from_pretrained(str(wan / "vae")).state_dict()
    assert all(torch.equal(v, pipe.vae.state_dict()[k]) for k, v in stock_vae.items())
    stock, trained = WanTransformer3DModel.from_pretrained(str(wan / "transformer")).state_dict(), pipe.transformer.state_dict()
    assert torch.equal(stock["patch_embedding.weight"], trained["patch_embedding.weight"])  # frozen, as in REM
    assert not torch.equal(stock["blocks.0.attn1.to_q.weight"], trained["blocks.0.attn1.to_q.weight"])


def test_flowrvs_starts_from_the_stock_wan_folder_with_a_mask_vae_and_dvi(wan):
    from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
    from flowrvs.training.config import ModelConfig
    from flowrvs.training.stages import load_model

    pipe = load_model(ModelConfig(init=str(wan)), 0, torch.device("cpu"), torch.float32, text_encoder=False)
    assert type(pipe) is FlowRVSPipeline and pipe.vae.config.out_channels == 1 and pipe.dvi


def test_the_recipe_starts_from_the_stock_wan_14b_folder():
    assert Path(load_config(RECIPE).model.init).name == "Wan2.1-T2V-14B-Diffusers"

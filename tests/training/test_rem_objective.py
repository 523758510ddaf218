"""`flowrvs train` with ``model.method: rem``: REM's objective through the same trainer.

At tiny size: the REM loss falls on one fixed clip, the parts REM keeps frozen (VAE, text
encoder, the DiT's ``patch_embedding`` and ``condition_embedder``) come out unchanged and stay
out of the optimizer, the mask latent is REM's {0, 1} picture, and 2 processes (FSDP) train as 1.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.pipeline_rem import REMPipeline
from flowrvs.presets import build_pipeline
from flowrvs.training.config import config_from_dict, load_config
from flowrvs.training.losses import rem_loss, rem_mask_latent
from flowrvs.training.stages import synth_vocabulary
from flowrvs.training.trainer import train
from helpers.clips import H, T, W, one_clip

STEPS = 30
SHARED = 6  # the steps the 2-process run takes (stop_at), checkpointed by both runs
FROZEN = ("patch_embedding.", "condition_embedder.")


def rem_config(out: Path, root: Path, steps: int = STEPS, **sections) -> dict:
    return {
        "output_dir": str(out), "seed": 0, "device": "cpu", "progress": False,
        "checkpoint_every": SHARED, "log_every": 1, "keep_last": 0,
        "model": {"preset": "tiny", "method": "rem", "vocabulary": "synth", "text_len": 16},
        "data": {"datasets": [{"type": "mevis", "root": str(root), "split": "train"}],
                 "num_frames": T, "size": [H, W], "hflip_p": 0.0, "sampling": "local"},
        "optim": {"steps": steps, "lr": 3e-3, "batch_size": 2},
        "ema": {"enabled": False},
        "tensorboard": {"enabled": False},
        **sections,
    }


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("rem") / "data"
    one_clip(root)
    return root


@pytest.fixture(scope="module")
def trained(clip):
    """The 1-process reference run (also the run the 2-process one must equal)."""
    out = clip.parent / "one"
    return train(config_from_dict(rem_config(out, clip))), out


def test_rem_loss_falls_on_one_clip(trained):
    result, _ = trained
    losses = list(result.losses.values())
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last * 10 < first, (first, last)  # measured: 0.41 -> 0.0072 (58x)


def test_rem_run_writes_a_rem_model_with_the_frozen_parts_unchanged(trained):
    result, out = trained
    start = build_pipeline("tiny", method="rem", seed=0, words=synth_vocabulary(), text_len=16)
    pipe = REMPipeline.from_pretrained(result.model_dir, keep_text_encoder=True)
    assert isinstance(pipe, REMPipeline) and pipe.config.text_len == 16
    for part in ("vae", "text_encoder"):
        before, after = getattr(start, part).state_dict(), getattr(pipe, part).state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), part
    before, after = start.transformer.state_dict(), pipe.transformer.state_dict()
    frozen = [k for k in before if k.startswith(FROZEN)]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    trainable = [k for k in before if not k.startswith(FROZEN)]
    assert all(not torch.equal(before[k], after[k]) for k in trainable if k.endswith("weight"))
    names = {k[len("model."):] for k in load_file(str(result.checkpoint)) if k.startswith("model.")}
    assert names == set(trainable)  # the frozen parts are not in the optimizer or the checkpoint


def test_rem_mask_latent_is_the_zero_one_picture(trained):
    """REM encodes the mask as a {0, 1} picture (not flowrvs' {-1, 1} one), and the loss is the
    MSE of the DiT's t=0 output on the video's posterior mean against its normalised latent."""
    pipe = build_pipeline("tiny", method="rem", seed=0)
    mask = torch.zeros(1, T, H, W)
    mask[:, :, 8:24, 8:40] = 1
    z = rem_mask_latent(pipe.vae, mask)
    picture = mask[:, None].expand(-1, 3, -1, -1, -1)
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        expected = (pipe.vae.encode(picture).latent_dist.mean - mean) / std
        wrong = (pipe.vae.encode(picture * 2 - 1).latent_dist.mean - mean) / std
    assert torch.allclose(z, expected) and not torch.allclose(z, wrong, atol=1e-3)
    video = torch.rand(1, 3, T, H, W) * 2 - 1
    embeds = torch.randn(1, 16, pipe.transformer.config.text_dim)
    with torch.no_grad():
        z_video = (pipe.vae.encode(video).latent_dist.mean - mean) / std
        out = pipe.transformer(hidden_states=z_video, timestep=torch.zeros(1), encoder_hidden_states=embeds,
                               return_dict=False)[0]
        loss = rem_loss(pipe, {"video": video, "mask": mask, "text_embeds": embeds})
    assert loss.item() == pytest.approx(((out - z) ** 2).mean().item(), rel=1e-5)


def test_rem_trains_on_cached_latents_as_on_frames(trained, clip):
    """``data.cache_latents`` with REM caches REM's mask latent: the one fixed clip gives the
    uncached run's first loss (a FlowRVS {-1, 1} mask latent would not)."""
    result, _ = trained
    cached = train(config_from_dict(rem_config(clip.parent / "cached", clip, steps=2, checkpoint_every=2,
                                               data={**rem_config(clip, clip)["data"], "cache_latents": True,
                                                     "cache_dtype": "float32"})))
    assert cached.losses[1] == pytest.approx(result.losses[1], rel=1e-4)
    assert list((clip.parent / "cached" / "cache").glob("latents-*.safetensors"))


@pytest.mark.parametrize("override, key", [
    ("model.method=reem", "model.method"),
    ("stage=mask_decoder", "model.method=rem"),
    ("model.prediction=velocity", "model.prediction"),
    ("model.train_text_encoder=true", "model.train_text_encoder"),
])
def test_rem_config_mistakes_are_one_line(tmp_path, override, key):
    with pytest.raises(FlowRVSError) as err:
        config_from_dict(rem_config(tmp_path, tmp_path), [override])
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow  # about 40 s on 2 cores: two torchrun workers start and train 6 steps
def test_two_processes_train_rem_as_one(trained, clip):
    """torchrun, 2 processes, FSDP (the DiT sharded; frozen parts inside the shards), its first
    :data:`SHARED` steps: the losses, weights and optimizer state are the 1-process run's."""
    result, one = trained
    run = clip.parent / "fsdp"
    path = clip.parent / "fsdp.yaml"
    path.write_text(yaml.safe_dump(rem_config(run, clip, stop_at=SHARED, dist={"strategy": "fsdp"})))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "flowrvs", "train", str(path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "processes=2 strategy=fsdp" in (run / "train.log").read_text()
    logged = {int(s): float(v) for s, v in re.findall(r"^step=(\d+) loss=(\S+)", (run / "train.log").read_text(), re.M)}
    assert sorted(logged) == list(range(1, SHARED + 1)) and len(set(logged.values())) == SHARED
    for step in logged:
        assert logged[step] == pytest.approx(result.losses[step], abs=1e-5, rel=0), step
    name = f"checkpoints/step-{SHARED:08d}.safetensors"
    ours, theirs = load_file(str(run / name)), load_file(str(one / name))
    keys = [k for k in theirs if k.startswith(("model.", "optim."))]
    assert keys and sorted(keys) == sorted(k for k in ours if k.startswith(("model.", "optim.")))
    for key in keys:
        # Adam turns float-rounding differences of near-zero gradients into steps of up to lr
        # (3e-3): measured at most 1.2e-5 apart; a missed gradient average would be ~1e-3
        assert torch.allclose(ours[key], theirs[key], atol=1e-4, rtol=0), key
    assert isinstance(REMPipeline.from_pretrained(run / "model"), REMPipeline)


def test_committed_rem_recipe_is_rem():
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "rem-wan14b-ytvos.yaml")
    assert config.model.method == "rem" and config.stage == "flow" and config.dist.strategy == "fsdp"
    assert (config.data.num_frames, tuple(config.data.size), config.dtype, config.amp) == (17, (512, 512), "bfloat16", "bfloat16")
    assert (config.optim.lr, config.optim.schedule, config.optim.decay_start, config.optim.decay_factor) == (1e-5, "step", 3500, 0.1)
    assert (config.optim.batch_size, config.optim.weight_decay, config.optim.grad_clip, config.ema.enabled) == (6, 1e-5, 0.0, False)

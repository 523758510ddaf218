"""Pieces of flowrvs.training that need no training run: EMA format, sharding of a step's batch."""

import pytest
import torch

from flowrvs.loading.convert import apply_ema, dit_state_dict
from flowrvs.errors import FlowRVSError
from flowrvs.presets import build_pipeline
from flowrvs.training.config import TrainConfig, config_from_dict
from flowrvs.training.config import check_world_size
from flowrvs.training.data import cached_batches, sample_indices
from flowrvs.training.ema import EMA


def test_ema_state_dict_reads_as_the_public_release_ema_model():
    transformer = build_pipeline("tiny", seed=0).transformer.requires_grad_(True)
    named = list(transformer.named_parameters())
    ema = EMA(named, decay=0.5, warmup=False)
    with torch.no_grad():
        for _, p in named:
            p.add_(1.0)
    ema.update()  # first update copies (diffusers: decay 0 at the first step)
    with torch.no_grad():
        for _, p in named:
            p.add_(2.0)
    ema.update()  # then d = decay: shadow = 0.5 * (w + 1) + 0.5 * (w + 3)
    release = {"model": transformer.state_dict(), "ema_model": ema.state_dict()}
    state, shadows = dit_state_dict(release)
    applied = apply_ema(transformer, state, shadows)
    name, p = named[0]
    assert torch.allclose(applied[name], p.detach() - 1.0, atol=1e-6)
    assert ema.state_dict()["optimization_step"] == 2 and ema.state_dict()["min_decay"] == 0.5


def test_global_batch_is_shared_out_by_rank():
    config = TrainConfig()
    config.optim.batch_size, config.optim.grad_accum = 8, 2
    assert check_world_size(config, 2) == 2
    shares = [sample_indices(config, r, 2) for r in range(2)]
    assert shares == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    assert sample_indices(config, 0, 1) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(FlowRVSError, match=r"global batch: it must be a multiple of processes x optim.grad_accum \(3 x 2\)"):
        check_world_size(config, 3)
    with pytest.raises(FlowRVSError, match="optim.grad_accum"):
        config_from_dict({"optim": {"batch_size": 3, "grad_accum": 2}})


def test_cached_batches_of_ranks_make_the_step_of_one_process():
    from flowrvs.training.latent_cache import LatentCache

    cache = LatentCache()
    for v in range(5):
        cache.video_mean.append(torch.full((16, 1, 2, 2), float(v)))
        cache.video_std.append(torch.ones(16, 1, 2, 2))
        for e in range(3):
            cache.mask_index.append(len(cache.mask))
            cache.mask.append(torch.full((16, 1, 2, 2), float(e)))
            cache.sentence.append(f"{v}.{e}")
            cache.video.append(v)
            cache.group.append(0)
    config = config_from_dict({"data": {"datasets": [{"root": "x"}], "cache_latents": True, "sentences_per_video": 2},
                               "optim": {"steps": 3, "batch_size": 4}})
    one = [step[0]["prompts"] for step in cached_batches(config, cache, 0)]
    ranks = zip(*(cached_batches(config, cache, 0, r, 2) for r in range(2)))
    two = [step_of_rank0[0]["prompts"] + step_of_rank1[0]["prompts"] for step_of_rank0, step_of_rank1 in ranks]
    assert len(one) == 3 and all(len(p) == 4 for p in one)
    assert two == one
    assert len({tuple(p) for p in one}) > 1
    assert all(p[0].split(".")[0] == p[1].split(".")[0] for p in one)  # two sentences of one video


def test_export_release_file_reads_as_the_public_release(tmp_path):
    """`flowrvs export --release` writes {model, ema_model} as the public .pth does; the
    converter loads the EMA weights of the run from it."""
    import json as _json

    from flowrvs.loading.convert import convert_transformer
    from flowrvs.apps.cli import main
    from flowrvs.presets import preset_config
    from flowrvs.data.synth.writer import write_split
    from flowrvs.training.trainer import train
    from safetensors.torch import load_file

    write_split(tmp_path / "synth", "train", videos=2, frames=5, size=(32, 48), seed=0, progress=False)
    config = config_from_dict({
        "output_dir": str(tmp_path / "run"), "device": "cpu", "progress": False,
        "model": {"preset": "tiny", "vocabulary": "synth", "text_len": 16},
        "data": {"datasets": [{"type": "mevis", "root": str(tmp_path / "synth"), "split": "train"}],
                 "num_frames": 5, "size": [32, 48]},
        "optim": {"steps": 2, "lr": 1e-2}, "ema": {"decay": 0.5}, "tensorboard": {"enabled": False},
    })
    train(config)
    assert main(["export", str(tmp_path / "run"), "--release", "--out", str(tmp_path / "dit.pth")]) == 0
    (tmp_path / "wan" / "transformer").mkdir(parents=True)
    (tmp_path / "wan" / "transformer" / "config.json").write_text(_json.dumps(preset_config("tiny", "transformer")))
    converted = convert_transformer(tmp_path / "wan", tmp_path / "dit.pth").state_dict()
    saved = load_file(str(tmp_path / "run" / "checkpoints" / "step-00000002.safetensors"))
    assert all(torch.equal(converted[n], saved[f"ema.{n}"]) for n in converted)
    assert not all(torch.equal(saved[f"ema.{n}"], saved[f"model.{n}"]) for n in converted)

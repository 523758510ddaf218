"""`flowrvs cache`: latents and text embeddings pre-encoded once; the flow stage then trains
without running umT5 or the VAE encoder, and trains as it would have with them."""

import json

import pytest
import torch
import yaml

from flowrvs.apps.cli import main
from flowrvs.data.synth.writer import write_split
from flowrvs.training.config import config_from_dict
from flowrvs.training.trainer import train


@pytest.fixture()
def config_file(tmp_path):
    write_split(tmp_path / "synth", "train", videos=2, frames=5, size=(32, 48), seed=0, progress=False)
    raw = {
        "output_dir": str(tmp_path / "run"), "device": "cpu", "progress": False, "checkpoint_every": 3,
        "model": {"preset": "tiny", "vocabulary": "synth", "text_len": 16},
        "data": {"datasets": [{"type": "mevis", "root": str(tmp_path / "synth"), "split": "train"}],
                 "num_frames": 5, "size": [32, 48], "cache_dir": str(tmp_path / "cache"), "cache_dtype": "float32"},
        "optim": {"steps": 3, "lr": 1e-3, "batch_size": 2},
        "tensorboard": {"enabled": False},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, raw


def test_cache_then_train_without_the_encoders(tmp_path, config_file, capsys, monkeypatch):
    path, raw = config_file
    assert main(["cache", str(path)]) == 0
    out = capsys.readouterr().out
    assert "text embeddings of" in out and "latents of mevis train" in out
    (latents,) = (tmp_path / "cache").glob("latents-*.safetensors")
    (text,) = (tmp_path / "cache").glob("text-*")
    index = json.loads((text / "index.json").read_text())
    assert index["shards"] == ["shard-00000.safetensors"] and index["sentences"] > 0

    # a run on the caches never calls the text encoder or the VAE encoder
    from flowrvs.models.text import PromptEncoder

    def forbidden(*args, **kwargs):
        raise AssertionError("umT5 ran")

    monkeypatch.setattr(PromptEncoder, "_embed", forbidden)
    cached = train(config_from_dict(raw, [f"output_dir={tmp_path / 'cached'}", "data.cache_latents=true",
                                          "data.cache_text=true"]))
    assert latents.stat().st_mtime_ns == next((tmp_path / "cache").glob("latents-*")).stat().st_mtime_ns
    assert (cached.model_dir / "model_index.json").is_file()  # built from the last checkpoint
    monkeypatch.undo()
    # ... and trains as the run that encodes its sentences each step
    plain = train(config_from_dict(raw, [f"output_dir={tmp_path / 'plain'}", "data.cache_latents=true"]))
    for step, loss in plain.losses.items():
        assert cached.losses[step] == pytest.approx(loss, abs=1e-5, rel=0)
    from flowrvs.pipelines.loader import load_pipeline

    a = load_pipeline(cached.model_dir).transformer.state_dict()
    b = load_pipeline(plain.model_dir).transformer.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_cache_refuses_other_stages(config_file, capsys):
    path, _ = config_file
    assert main(["cache", str(path), "stage=mask_decoder"]) == 2
    assert "stage mask_decoder" in capsys.readouterr().err


def test_a_model_folder_run_on_cached_text_loads_no_text_encoder(tmp_path, config_file, monkeypatch):
    from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
    from flowrvs.presets import build_pipeline
    from flowrvs.training.stages import synth_vocabulary

    path, raw = config_file
    build_pipeline("tiny", seed=0, words=synth_vocabulary(), text_len=16).save_pretrained(tmp_path / "init")
    overrides = [f"model.init={tmp_path / 'init'}"]
    assert main(["cache", str(path), *overrides]) == 0
    loads = []
    original = FlowRVSPipeline.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        loads.append(kwargs.get("keep_text_encoder"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(FlowRVSPipeline, "from_pretrained", classmethod(spy))
    run = train(config_from_dict(raw, overrides + [f"output_dir={tmp_path / 'run2'}", "data.cache_latents=true",
                                                   "data.cache_text=true"]))
    assert loads[0] is False  # the run's model: no umT5
    assert (run.model_dir / "model_index.json").is_file()

"""REM's release: its one pickle converted (weights only, one allowed class), by path and by hub
name offline, and run by every command with no REM-specific flag."""

from __future__ import annotations

import argparse
import json
import pathlib
import socket

import numpy as np
import pytest
import torch
from helpers.releases import put_in_hub_cache, write_rem_checkpoint, write_wan_base
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.loading import hub
from flowrvs.loading.convert import convert_rem
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.pipelines.pipeline_rem import REMPipeline

BASE_FILES = ("model_index.json", "transformer/config.json", "vae", "text_encoder", "tokenizer")
DROPPED = "blocks.0.attn1.to_q.bias"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("rem-release")
    base = write_wan_base(root / "base")
    expected = write_rem_checkpoint(root / "rem_wan14b.pth", base)
    partial = write_rem_checkpoint(root / "partial.pth", base, drop=(DROPPED,))
    return root, base, expected, partial


def _weights_match(pipe, expected: dict) -> bool:
    dit, vae = pipe.transformer.state_dict(), pipe.vae.state_dict()
    return all(torch.equal(dit[k], v) for k, v in expected["dit"].items()) and \
        all(torch.equal(vae[k], v) for k, v in expected["vae"].items())


def test_convert_takes_the_checkpoint_over_the_base_and_fills_what_it_lacks(release, tmp_path):
    root, base, expected, partial = release
    pipe = load_pipeline(convert_rem(base, root / "rem_wan14b.pth", tmp_path / "model"), device="cpu", dtype="float32")
    assert type(pipe) is REMPipeline and _weights_match(pipe, expected)
    assert json.loads((tmp_path / "model" / "model_index.json").read_text())["_class_name"] == "REMPipeline"
    filled = load_pipeline(convert_rem(base, root / "partial.pth", tmp_path / "partial"), device="cpu", dtype="float32")
    assert _weights_match(filled, partial)  # the dropped tensor is the base's


def test_anything_but_a_namespace_in_the_pickle_is_refused_in_one_line(release, tmp_path, capsys):
    _, base, _, _ = release
    bad = tmp_path / "bad.pth"
    write_rem_checkpoint(bad, base, args=argparse.Namespace(output_dir=pathlib.PosixPath("/runs")))
    code = main(["convert", "--method", "rem", "--wan", str(base), "--dit", str(bad), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "PosixPath" in err and "weights only" in err
    assert not (tmp_path / "m").exists()


def test_a_tensor_the_stock_dit_lacks_is_refused(release, tmp_path):
    _, base, _, _ = release
    odd = tmp_path / "odd.pth"
    write_rem_checkpoint(odd, base, extra={"backbone.dit.mask_head.weight": torch.zeros(2)})
    with pytest.raises(FlowRVSError, match="mask_head"):
        convert_rem(base, odd, tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    from huggingface_hub import constants

    def use(cache):
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "flowrvs-cache"))

    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("a network call was made"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return use


def _hub(tmp_path, release, files: dict, base_weights: bool = False):
    root, base, _, _ = release
    cache = tmp_path / "hf"
    put_in_hub_cache(cache, hub.REM_REPO, {name: root / src for name, src in files.items()})
    base_files = BASE_FILES[:1] + (("transformer",) if base_weights else ("transformer/config.json",)) + BASE_FILES[2:]
    put_in_hub_cache(cache, hub.REM_BASE_REPO, {rel: base / rel for rel in base_files})
    return cache


def test_the_hub_name_takes_the_repositorys_wan_checkpoint_offline(release, tmp_path, offline):
    _, _, expected, partial = release
    offline(_hub(tmp_path, release, {"README.md": "base/model_index.json", "checkpoints/rem_wan14b.pth": "rem_wan14b.pth"}))
    pipe = load_pipeline(hub.REM_REPO, device="cpu", dtype="float32")
    assert type(pipe) is REMPipeline and _weights_match(pipe, expected)
    assert [p.name.split("--")[0] for p in (tmp_path / "flowrvs-cache" / "models").iterdir()] == ["anuragba"]


def test_a_checkpoint_lacking_dit_tensors_fetches_the_bases(release, tmp_path, offline):
    _, _, _, partial = release
    offline(_hub(tmp_path, release, {"rem_wan_partial.pth": "partial.pth"}, base_weights=True))
    assert _weights_match(load_pipeline(hub.REM_REPO, device="cpu", dtype="float32"), partial)


def test_two_wan_checkpoints_need_dit_file(release, tmp_path, offline):
    _, _, expected, _ = release
    offline(_hub(tmp_path, release, {"rem_wan14b.pth": "rem_wan14b.pth", "rem_wan_old.pth": "partial.pth"}))
    with pytest.raises(FlowRVSError, match="--dit-file"):
        load_pipeline(hub.REM_REPO, device="cpu")
    pipe = load_pipeline(hub.REM_REPO, device="cpu", dtype="float32", dit_file="rem_wan14b.pth")
    assert _weights_match(pipe, expected)


def test_segment_runs_a_rem_folder_with_no_rem_flag(release, tmp_path):
    root, base, _, _ = release
    model = convert_rem(base, root / "rem_wan14b.pth", tmp_path / "model")
    video = tmp_path / "video"
    video.mkdir()
    for i, f in enumerate(np.random.default_rng(0).integers(0, 256, (12, 24, 40, 3), dtype=np.uint8)):
        Image.fromarray(f).save(video / f"{i:05d}.png")
    out = tmp_path / "out"
    assert main(["segment", str(video), "-p", "the dog", "--model", str(model), "--out", str(out), "--size", "32x32",
                 "--device", "cpu", "--dtype", "float32", "--no-overlay"]) == 0
    assert sorted(p.name for p in (out / "0").iterdir()) == [f"{i:05d}.png" for i in range(12)]

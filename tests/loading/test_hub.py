"""Models by hub name, offline, from a Hugging Face cache laid out as huggingface_hub lays one out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.releases import put_in_hub_cache, write_dit_checkpoint, write_tuned_vae, write_wan_base

from flowrvs.loading import hub
from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.loader import load_pipeline

BASE_FILES = ("model_index.json", "transformer/config.json", "vae", "text_encoder", "tokenizer")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """The release's files: a Wan base folder, a no-DVI DiT with EMA (2026), a DVI DiT (2025), the tuned VAE."""
    root = tmp_path_factory.mktemp("release")
    base = write_wan_base(root / "base")
    expected_2026 = write_dit_checkpoint(root / "FlowRVS_dit_mevis.pth", dvi=False, ema=True)
    expected_2025 = write_dit_checkpoint(root / "mevis_dit.pth", dvi=True, ema=False, prefix="module.")
    write_tuned_vae(root / "tuned_vae.pth")
    return root, base, expected_2026, expected_2025


def _cache(tmp_path: Path, parts, dit_names=("FlowRVS_dit_mevis.pth",)) -> Path:
    root, base, _, _ = parts
    cache = tmp_path / "hf"
    put_in_hub_cache(cache, "xmz111/FlowRVS", {**{n: root / n for n in dit_names}, "tuned_vae.pth": root / "tuned_vae.pth"})
    # the base's DiT weights are not needed (the release replaces them) and are not in the cache
    put_in_hub_cache(cache, hub.BASE_REPO, {rel: base / rel for rel in BASE_FILES})
    return cache


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Point huggingface_hub at a test cache, flowrvs at a test cache root, and forbid sockets."""
    from huggingface_hub import constants

    def use(cache: Path):
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "flowrvs-cache"))

    def no_network(*args, **kwargs):
        raise AssertionError("a network call was made")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return use


def test_release_by_name_converts_once_and_loads_offline(parts, tmp_path, offline, monkeypatch):
    _, _, expected, _ = parts
    offline(_cache(tmp_path, parts))
    pipe = load_pipeline("xmz111/FlowRVS", device="cpu")
    assert not pipe.dvi and pipe.config.text_len == 256 and not pipe.config.mask_latent_normalized
    state = pipe.transformer.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())  # EMA weights applied
    converted = list((tmp_path / "flowrvs-cache" / "models").iterdir())
    assert len(converted) == 1 and converted[0].name.startswith("xmz111--FlowRVS--")

    monkeypatch.setattr(hub, "convert_release", lambda *a, **k: pytest.fail("converted twice"))
    again = load_pipeline("xmz111/FlowRVS", device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (5, 40, 56, 3), dtype=np.uint8)
    a = pipe(frames, "the red circle", return_logits=True, size=(32, 48))
    b = again(frames, "the red circle", return_logits=True, size=(32, 48))
    assert np.array_equal(a.logits[0], b.logits[0])


def test_older_dit_name_and_a_named_dit_file(parts, tmp_path, offline):
    _, _, _, expected = parts
    offline(_cache(tmp_path, parts, dit_names=("mevis_dit.pth",)))
    pipe = load_pipeline("xmz111/FlowRVS", device="cpu")
    assert pipe.dvi
    state = pipe.transformer.state_dict()
    assert all(torch.equal(state[k.removeprefix("module.")], v) for k, v in expected.items())
    named = load_pipeline("xmz111/FlowRVS", device="cpu", dit_file="mevis_dit.pth")
    assert torch.equal(named.transformer.patch_embedding.weight, pipe.transformer.patch_embedding.weight)


def test_a_repository_holding_a_model_folder_loads_directly(tiny_pipe, tmp_path, offline):
    tiny_pipe.save_pretrained(tmp_path / "folder")
    cache = tmp_path / "hf"
    put_in_hub_cache(cache, "someone/flowrvs-tiny", {p.name: p for p in (tmp_path / "folder").iterdir()})
    offline(cache)
    pipe = load_pipeline("someone/flowrvs-tiny", device="cpu")
    frames = np.random.default_rng(1).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    a = pipe(frames, "a dog", return_logits=True, size=(32, 48))
    b = tiny_pipe(frames, "a dog", return_logits=True, size=(32, 48))
    assert np.array_equal(a.logits[0], b.logits[0])
    assert not (tmp_path / "flowrvs-cache" / "models").exists()  # nothing converted


def test_offline_without_the_files_is_one_line_and_exit_2(tmp_path, offline, capsys):
    offline(tmp_path / "empty-cache")
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (48, 32)).save(frames / "00000.png")
    code = main(["segment", str(frames), "-p", "a dog", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    for needed in ("xmz111/FlowRVS", "FlowRVS_dit_mevis.pth", "tuned_vae.pth", hub.BASE_REPO, "flowrvs convert"):
        assert needed in err
    assert not (tmp_path / "out").exists()


def test_segment_uses_the_release_by_default_in_a_fresh_offline_process(parts, tmp_path):
    cache = _cache(tmp_path, parts)
    frames = np.random.default_rng(2).integers(0, 256, (5, 40, 56, 3), dtype=np.uint8)
    video = tmp_path / "video"
    video.mkdir()
    from PIL import Image

    for i, f in enumerate(frames):
        Image.fromarray(f).save(video / f"{i:05d}.png")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "FLOWRVS_CACHE": str(tmp_path / "fc")}
    run = subprocess.run([sys.executable, "-m", "flowrvs", "segment", str(video), "-p", "the red circle",
                          "--out", str(tmp_path / "out"), "--size", "32x48", "--no-overlay"],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "0").iterdir()) == [f"{i:05d}.png" for i in range(5)]


def test_no_network_without_the_offline_flag_answers_at_once_from_the_cache(parts, tmp_path, offline, monkeypatch):
    """A machine with no network (and HF_HUB_OFFLINE unset) is treated as offline after one
    failed connection, not after huggingface_hub's retries for every file."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    hub.hub_reachable.cache_clear()
    try:
        offline(_cache(tmp_path, parts))
        assert not hub.hub_reachable()
        assert not load_pipeline("xmz111/FlowRVS", device="cpu").dvi  # from the cache
        offline(tmp_path / "empty")
        with pytest.raises(FlowRVSError, match="cannot be reached"):
            load_pipeline("xmz111/FlowRVS", device="cpu")
    finally:
        hub.hub_reachable.cache_clear()

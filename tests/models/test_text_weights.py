"""The bf16 copy of a streamed text encoder's float32 layers (flowrvs.models.text_weights)."""

import json
import logging
import threading

import pytest
import torch

from flowrvs.models import text_weights
from flowrvs.models.text import encode_sentences, load_streamed_text_encoder

SENTENCES = ["the red circle", "a dog"]


@pytest.fixture
def source(tiny_pipe, tmp_path, monkeypatch):
    """A float32 umT5 in shards, and a fresh cache folder."""
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "text_encoder"
    tiny_pipe.text_encoder.save_pretrained(folder, max_shard_size="100KB")
    return folder


def embed(tiny_pipe, folder, dtype=torch.bfloat16):
    encoder = load_streamed_text_encoder(folder, dtype=dtype)
    return encode_sentences(SENTENCES, lambda: (tiny_pipe.tokenizer, encoder), None, 16, "m")


def copies(tmp_path):
    return sorted(p for p in (tmp_path / "cache" / "text-encoders").glob("*") if p.is_dir())


def count_writes(monkeypatch) -> list:
    writes = []
    original = text_weights._write_copy
    monkeypatch.setattr(text_weights, "_write_copy", lambda *a: writes.append(a[0]) or original(*a))
    return writes


def test_copy_is_bf16_gives_identical_embeddings_and_is_written_once(tiny_pipe, source, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWRVS_CACHE", "off")
    expected = embed(tiny_pipe, source)  # cast layer by layer from the float32 shards
    assert copies(tmp_path) == []
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "cache"))
    writes = count_writes(monkeypatch)
    assert torch.equal(embed(tiny_pipe, source), expected)
    assert torch.equal(embed(tiny_pipe, source), expected)
    assert len(writes) == 1 and copies(tmp_path) == writes
    manifest = json.loads((writes[0] / "manifest.json").read_text())
    assert manifest["dtype"] == "bfloat16" and "shared.weight" not in manifest["tensors"]  # the table is read by rows
    from safetensors import safe_open

    stored = set()
    for path in source.glob("model-*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            stored |= set(f.keys())
    assert set(manifest["tensors"]) == stored - {"shared.weight"}
    for part in manifest["parts"]:
        with safe_open(str(writes[0] / part), framework="pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}


def test_index_points_at_the_copy_except_the_token_table(source):
    from safetensors import safe_open

    index = {}
    for path in sorted(source.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            index.update({k: {"safetensors_file": str(path), "weight_name": k, "dtype": "bfloat16"} for k in f.keys()})
    out = text_weights.layers_in_dtype(index, torch.bfloat16, skip=frozenset({"shared.weight"}))
    assert out["shared.weight"] == index["shared.weight"]
    moved = [k for k in index if out[k]["safetensors_file"] != index[k]["safetensors_file"]]
    assert set(moved) == set(index) - {"shared.weight"}
    assert text_weights.layers_in_dtype(index, torch.float32) is index  # nothing stored wider than float32


def test_changed_source_rewrites_the_copy(tiny_pipe, source, tmp_path, monkeypatch, caplog):
    embed(tiny_pipe, source)
    shard = sorted(source.glob("model-*.safetensors"))[0]
    stat = shard.stat()
    import os

    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    writes = count_writes(monkeypatch)
    with caplog.at_level(logging.WARNING):
        embed(tiny_pipe, source)
    assert len(writes) == 1 and "stale" in caplog.text
    assert len(copies(tmp_path)) == 1  # rewritten in place, no orphan


@pytest.mark.parametrize("damage", ["truncate", "bad name", "no manifest", "other tensor"])
def test_damaged_copy_is_rewritten_and_never_read(tiny_pipe, source, tmp_path, monkeypatch, caplog, damage):
    from safetensors.torch import save_file

    expected = embed(tiny_pipe, source)
    folder = copies(tmp_path)[0]
    manifest = json.loads((folder / "manifest.json").read_text())
    part = folder / sorted(manifest["parts"])[0]
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:-8])
    elif damage == "bad name":
        manifest["parts"]["../escape.safetensors"] = 1
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "no manifest":
        (folder / "manifest.json").unlink()
    else:  # same size, valid safetensors, another tensor's shape
        key = next(k for k, p in manifest["tensors"].items() if p == part.name)
        save_file({key: torch.zeros(1, dtype=torch.bfloat16)}, str(part))
        manifest["parts"][part.name] = part.stat().st_size
        (folder / "manifest.json").write_text(json.dumps(manifest))
    writes = count_writes(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(embed(tiny_pipe, source), expected)
    assert len(writes) == 1 and "writing it again" in caplog.text


def test_unwritable_cache_or_full_disk_streams_from_the_source(tiny_pipe, source, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FLOWRVS_CACHE", "off")
    expected = embed(tiny_pipe, source)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "a-file"))  # the cache cannot be a folder
    with caplog.at_level(logging.WARNING):
        assert torch.equal(embed(tiny_pipe, source), expected)
    assert "streaming them from" in caplog.text

    caplog.clear()
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(text_weights.shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    with caplog.at_level(logging.WARNING):
        assert torch.equal(embed(tiny_pipe, source), expected)
    assert "GB free" in caplog.text and copies(tmp_path) == []


def test_concurrent_loads_write_one_copy(tiny_pipe, source, tmp_path, monkeypatch):
    writes = count_writes(monkeypatch)
    results, errors = [], []

    def load():
        try:
            results.append(embed(tiny_pipe, source))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(writes) == 1 and len(results) == 3
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # building on meta left no global state behind
    assert all(torch.equal(r, results[0]) for r in results)

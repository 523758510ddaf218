"""benchmarks/fullsize.py end to end at the tiny preset, and the full-size layout on ``meta``."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fullsize.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("fullsize_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(bench, tmp_path, capsys):
    folder, out = tmp_path / "model", tmp_path / "figures.json"
    argv = ["--preset", "tiny", "--folder", str(folder), "--frames", "5", "--size", "32x64",
            "--in-process", "--json", str(out), "--parts", "text,text-loaded,vae-encode,dit,vae-decode,segment"]
    assert bench.main(argv) == 0
    # a model folder laid out as a real one, loadable part by part
    for part in ("transformer", "vae", "text_encoder", "tokenizer"):
        assert (folder / part).is_dir(), part
    assert json.loads((folder / "model_index.json").read_text())["text_len"] == 32  # the preset's settings
    dit_file = next((folder / "transformer").glob("*.safetensors"))
    from safetensors import safe_open

    with safe_open(str(dit_file), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}  # stored as the released DiT is

    figures = json.loads(out.read_text())
    assert figures["header"]["torch"] == torch.__version__ and figures["header"]["machine"]
    results = {r["part"]: r for r in figures["results"]}
    assert set(results) == {"text", "text-loaded", "vae-encode", "dit", "vae-decode", "segment"}
    assert results["text"]["out_shape"] == [1, 32, 32] and results["text-loaded"]["out_shape"] == [1, 32, 32]
    assert results["vae-encode"]["out_shape"] == [1, 16, 2, 4, 8]
    assert results["dit"]["out_shape"] == [1, 16, 2, 4, 8]
    assert results["vae-decode"]["out_shape"] == [1, 1, 5, 32, 64]
    assert all(r["finite"] for p, r in results.items() if p != "segment")
    assert results["segment"]["masks"] == 5 and results["segment"]["peak_rss_bytes"] > 0
    assert "segment / sum of parts" in capsys.readouterr().out

    # a second run reuses the complete folder instead of building it again
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert bench.main(argv[:8] + ["--parts", "dit"]) == 0
    assert (folder / "model_index.json").stat().st_mtime_ns == stamp


def test_full_size_parts_fit_the_real_weight_maps(bench):
    from flowrvs.presets import build_text_encoder, build_transformer

    for part, model, prefix in (
        ("transformer", build_transformer("wan2.1-1.3b", dvi=False, device="meta"), "diffusion_pytorch_model"),
        ("text_encoder", build_text_encoder("wan2.1-1.3b", device="meta"), "model"),
    ):
        reference = bench._reference_map("wan2.1-1.3b", part)
        assert reference, part
        shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
        assert bench._shard_plan(shapes, torch.float32, prefix, reference, 2 << 30) == reference


def test_shards_by_size_bound_memory(bench, tmp_path):
    model = torch.nn.ModuleDict({"proj": torch.nn.Linear(64, 64), "norm": torch.nn.LayerNorm(64), "out": torch.nn.Linear(64, 8)})
    total = bench.write_random_shards(model, tmp_path, torch.float32, "model", max_shard_bytes=64 * 64 * 4)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == total == sum(p.numel() * 4 for p in model.parameters())
    assert set(index["weight_map"]) == {n for n, _ in model.named_parameters()}
    assert len(set(index["weight_map"].values())) == 2  # the first matrix fills a shard alone
    from safetensors.torch import load_file

    loaded = {}
    for shard in set(index["weight_map"].values()):
        loaded.update(load_file(tmp_path / shard))
    assert torch.equal(loaded["norm.weight"], torch.ones(64)) and torch.equal(loaded["proj.bias"], torch.zeros(64))
    model.load_state_dict(loaded)  # every tensor, the right shapes

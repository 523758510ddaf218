"""benchmarks/fullsize.py end to end at the tiny preset, and the full-size layout on ``meta``."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from helpers.benchmarks import import_benchmark

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fullsize.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("fullsize_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FLOWRVS_CACHE", "")  # main sets it for its runs (FOLDER-cache); restored after the test
    folder, out, peaks = tmp_path / "model", tmp_path / "figures.json", tmp_path / "peaks.json"
    kernel_peak = import_benchmark("kernel_peak")
    assert kernel_peak.main(["--preset", "tiny", "--frames", "5", "--size", "32x64", "--repeats", "1",
                             "--json", str(peaks)]) == 0
    argv = ["--preset", "tiny", "--folder", str(folder), "--frames", "5", "--size", "32x64",
            "--in-process", "--json", str(out), "--parts", "text,text-loaded,vae-encode,dit,vae-decode,segment",
            "--profile", "--peaks", str(peaks), "--segment-runs", "2"]
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
    assert results["vae-decode"]["out_shape"] == [1, 5, 32, 64]  # mask logits, as the pipeline decodes them
    assert all(r["finite"] for p, r in results.items() if p != "segment")
    assert results["segment"]["masks"] == 5 and results["segment"]["peak_rss_bytes"] > 0
    # two runs of segment on the same frames; the second's masks are compared with the first's: the same
    segments = [r for r in figures["results"] if r["part"] == "segment"]
    assert [r["run"] for r in segments] == [0, 1] and "agreement" not in segments[0]
    assert segments[1]["agreement"]["differ"] == 0 and segments[1]["agreement"]["pixels"] == 5 * 64 * 128  # frames of twice the size
    printed = capsys.readouterr().out
    walls = sorted(r["wall_s"] for r in segments)
    assert f"segment over 2 runs: {walls[0]:.1f} / {sum(walls) / 2:.1f} / {walls[1]:.1f} s" in printed
    assert "segment (median) / sum of parts" in printed and "of layers alone" in printed

    # each part's FLOPs are cost.py's count of the same configuration; its fraction of the kernel peaks
    # is the seconds at those peaks over the seconds it took
    counted = {c.part: c for c in import_benchmark("cost").part_costs("tiny", 5, 32, 64, len(bench.SENTENCE.split()) + 1)}
    measured_by_dtype = json.loads(peaks.read_text())["peaks"]
    rows = {r["part"]: r for r in figures["efficiency"]}
    assert set(rows) == {"text", "vae-encode", "dit", "vae-decode"}
    for part, row in rows.items():
        cost = counted[bench.COST_PART[part]]
        assert row["flops"] == cost.flops == sum(cost.flops_by_kind.values()) > 0
        measured = measured_by_dtype[row["dtype"]]
        ideal = sum(f / measured[k] for k, f in cost.flops_by_kind.items() if f and k in measured)
        assert row["ideal_s"] == pytest.approx(ideal) and row["fraction_of_peak"] == pytest.approx(ideal / row["run_s"])
        steady = json.loads(peaks.read_text())["sustained"][row["dtype"]]
        at_steady = sum(f / steady[k] for k, f in cost.flops_by_kind.items() if f and k in steady)
        assert row["fraction_of_sustained"] == pytest.approx(at_steady / row["run_s"])
        assert row["fraction_of_sustained"] >= row["fraction_of_peak"]
    assert rows["vae-encode"]["flops_by_kind"]["conv"] > 0 and rows["dit"]["flops_by_kind"]["attention"] > 0
    # and against the faster of the peaks of its own kernel kinds measured just before and after it, in its process
    for part, row in rows.items():
        before, after = (results[part]["peaks_around"][when][row["dtype"]] for when in ("before", "after"))
        assert set(before) == set(after) == set(bench.PART_KINDS[part])
        ideal = sum(f / max(before[k], after[k]) for k, f in counted[bench.COST_PART[part]].flops_by_kind.items() if f and k in after)
        assert row["fraction_of_peak_around"] == pytest.approx(ideal / row["run_s"])
    # with --peaks, the streamed umT5 also reads all its layers alone: every stored tensor but the token table,
    # in the compute dtype
    itemsize = torch.finfo(getattr(torch, rows["text"]["dtype"])).bits // 8
    layers = 0
    for shard in (folder / "text_encoder").glob("*.safetensors"):
        with safe_open(str(shard), framework="pt") as f:
            layers += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if k != "shared.weight")
    read = rows["text"]["layers_read"]
    assert read["bytes"] == layers * itemsize and read["tensors"] > 0 and read["seconds"] > 0
    # umT5's float32 layers were copied once, before the timed parts, into FOLDER-cache when it computes narrower
    assert figures["header"]["text_copy"]["cache"] == str(tmp_path / "model-cache")
    manifests = list((tmp_path / "model-cache" / "text-encoders").glob("*/manifest.json"))
    narrower = rows["text"]["dtype"] != "float32"
    assert len(manifests) == narrower and all(json.loads(m.read_text())["dtype"] == rows["text"]["dtype"] for m in manifests)
    # the profile sorts each part's operators into kernel kinds: the VAE's time is mostly in convolutions
    for part in ("vae-encode", "dit", "vae-decode"):
        spent = results[part]["profile_s"]
        assert set(spent) <= {"gemm", "conv", "attention", "copy", "other"} and sum(spent.values()) > 0
    assert max(results["vae-encode"]["profile_s"], key=results["vae-encode"]["profile_s"].get) == "conv"

    # a second run reuses the complete folder instead of building it again
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert bench.main(argv[:9] + ["--parts", "dit"]) == 0  # in-process: no second start-up
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


def test_rem_layout_plan_and_memory_on_meta(bench, tmp_path, capsys):
    """``--method rem`` at tiny size: counted parameters, REM's plan, and every memory plan's peak
    the largest of its stages, each stage the weights it holds plus the part's activations."""
    out = tmp_path / "rem.json"
    assert bench.main(["--method", "rem", "--preset", "tiny", "--frames", "20", "--size", "32x32", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    cost = bench.load_cost()
    parts = cost.build_rem_parts("tiny")
    params = figures["parameters"]
    assert params["dit"] == sum(p.numel() for p in parts["dit"].parameters())
    assert params["vae"] == sum(p.numel() for p in parts["vae"].parameters())
    assert params["text encoder"] == sum(p.numel() for p in parts["text encoder"].parameters())
    assert params["total"] == sum(p.numel() for m in parts.values() for p in m.parameters())
    assert f"**{params['total']:,}**" in printed
    plan, settings = figures["plan"], cost.rem_settings()
    assert plan["clip_frames"] == 17 and plan["clips"] == [[0, 17, 0], [3, 20, 14]]
    assert plan["text_len"] == settings["text_len"] and plan["timestep"] == 0 and plan["latent_shape"] == [1, 16, 5, 4, 4]
    assert "one DiT pass at timestep 0" in printed and "2 clip(s) of 17 frames" in printed
    rows = {r["plan"]: r for r in figures["memory"]}
    assert list(rows) == list(bench.MEMORY_PLANS)
    for row in rows.values():
        assert row["peak_bytes"] == max(row["stages_bytes"].values()) == row["stages_bytes"][row["peak_stage"]]
        assert f"| {row['plan']} | {row['precision']} |" in printed
    w = rows["resident"]["weights_bytes"]
    activations = {s: rows["resident"]["stages_bytes"][s] - (w["text"] + w["vae"] + w["dit"]) for s in bench.STAGE_PART}
    assert all(v > 0 for v in activations.values())
    assert rows["default"]["stages_bytes"]["dit"] == w["vae"] + w["dit"] + activations["dit"]
    assert rows["cpu-offload"]["stages_bytes"]["dit"] == w["dit"] + activations["dit"]
    assert rows["group-offload"]["stages_bytes"]["dit"] == w["dit_outside_blocks"] + w["dit_block"] + activations["dit"]
    peaks = [rows[p]["peak_bytes"] for p in ("group-offload", "cpu-offload", "default", "resident")]
    assert peaks == sorted(peaks)
    assert rows["layerwise"]["weights_bytes"]["dit_cast"] > 0 == w["dit_cast"]


def test_rem_precisions_are_the_package_plans(bench, monkeypatch):
    """The estimates assume exactly what choose_precision plans on CUDA and on a CPU without native bf16."""
    from flowrvs.runtime import precision

    plans = bench.rem_precisions()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setenv(precision.ENV_OVERRIDE, "0")
    precision.cpu_has_native_bf16.cache_clear()
    try:
        for key, device in (("cuda-bf16", "cuda"), ("cpu-layerwise", "cpu")):
            chosen = precision.choose_precision(device, "auto")
            assert [chosen.part(p) for p in precision.PARTS] == [plans[key].part(p) for p in precision.PARTS], key
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_rem_full_size_layout_on_meta(bench):
    """The 14B layout REM runs: the stock Wan2.1-T2V-14B DiT (16 input channels, 5120 wide, 40 layers)."""
    cost = bench.load_cost()
    counts = bench.rem_parameters(cost, "wan2.1-14b")
    dit = cost.build_rem_parts("wan2.1-14b")["dit"]
    assert dit.config.in_channels == 16 and dit.config.num_layers == 40
    assert dit.config.num_attention_heads * dit.config.attention_head_dim == 5120
    assert counts["dit"] == sum(p.numel() for p in dit.parameters())
    assert counts["total"] == counts["dit"] + counts["vae"] + counts["text encoder"]


@pytest.mark.parametrize("argv", [["--method", "rem", "--size", "30x32"], ["--method", "rem", "--frames", "0"],
                                  ["--method", "rem", "--dvi"], ["--frames", "17"]])
def test_bad_input_exits_2_in_one_line(bench, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(argv)
    assert exit_.value.code == 2
    assert len([line for line in capsys.readouterr().err.splitlines() if "error:" in line]) == 1


def test_mask_agreement_counts_differing_pixels(bench, tmp_path):
    import numpy as np
    from PIL import Image

    masks = np.zeros((2, 4, 6), dtype=np.uint8)
    masks[:, 1:3, 2:5] = 255
    for root, flip in (("a", False), ("b", True)):
        (tmp_path / root / "0").mkdir(parents=True)
        for t, frame in enumerate(masks.copy()):
            if flip and t == 1:
                frame[0, 0] = 255 - frame[0, 0]  # one pixel differs
            Image.fromarray(frame).save(tmp_path / root / "0" / f"{t:05d}.png")
    agreement = bench.mask_agreement(tmp_path / "a", tmp_path / "b")
    assert agreement == {"pixels": 48, "differ": 1, "fraction": 1 - 1 / 48, "foreground": 12 / 48}
    (tmp_path / "b" / "0" / "00001.png").unlink()
    with pytest.raises(SystemExit, match="same mask files"):
        bench.mask_agreement(tmp_path / "a", tmp_path / "b")

"""benchmarks/kernel_peak.py at tiny size, and the kernel kinds cost.py sorts operators into."""

import json

import pytest

from helpers.benchmarks import import_benchmark

kernel_peak = import_benchmark("kernel_peak")
cost = import_benchmark("cost")


@pytest.mark.parametrize("name, kind", [("aten::addmm", "gemm"), ("aten.mm.default", "gemm"), ("aten::bmm", "gemm"),
                                        ("aten::mkldnn_convolution", "conv"), ("aten.convolution.default", "conv"),
                                        ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
                                        ("aten::copy_", "copy"), ("aten::cat", "copy"), ("aten::mul", "other"),
                                        ("aten::native_layer_norm", "other")])
def test_kind_of(name, kind):
    assert cost.kind_of(name) == kind


def test_peaks_are_the_best_shape_of_each_kind(tmp_path):
    out = tmp_path / "peaks.json"
    assert kernel_peak.main(["--preset", "tiny", "--frames", "5", "--size", "32x48", "--repeats", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    shapes = kernel_peak.dit_shapes("tiny", 5, (32, 48))
    assert shapes["tokens"] == 2 * 2 * 3  # 2 latent frames of 4x6, 2x2 patches
    for run in result["runs"]:
        assert run["flops_per_s"] == pytest.approx(run["flops"] / run["seconds"])
        assert run["sustained_flops_per_s"] == pytest.approx(run["flops"] / run["median_seconds"])
        assert run["sustained_flops_per_s"] <= run["flops_per_s"]
        if run["kind"] == "gemm":
            rows, k, n = (int(x) for x in run["shape"].replace(" @ ", "x").split("x")[:2] + [run["shape"].split("x")[-1]])
            assert run["flops"] == 2 * rows * k * n
    for dtype in ("bfloat16", "float32"):
        for kind in ("gemm", "conv", "attention"):
            best = max(r["flops_per_s"] for r in result["runs"] if r["dtype"] == dtype and r["kind"] == kind)
            assert result["peaks"][dtype][kind] == best
            steady = max(r["sustained_flops_per_s"] for r in result["runs"] if r["dtype"] == dtype and r["kind"] == kind)
            assert result["sustained"][dtype][kind] == steady <= best
    levels = kernel_peak.vae_levels("tiny", (32, 48))
    assert [c for c, _, _ in levels] == [8, 16, 32, 32] and levels[-1][1:] == (4, 6)
    assert {r["layout"] for r in result["runs"] if r["kind"] == "conv"} == {"NCDHW", "NDHWC"}


def test_counted_flops_split_by_kind():
    parts = {p.part: p for p in cost.part_costs("tiny", 5, 32, 48, 6)}
    for part in parts.values():
        assert sum(part.flops_by_kind.values()) == part.flops
    assert set(parts["VAE encoder"].flops_by_kind) >= {"conv"} and parts["DiT step"].flops_by_kind["gemm"] > 0
    assert parts["DiT step"].flops_by_kind["attention"] > 0 and "conv" in parts["DiT step"].flops_by_kind  # patch embedding


def test_each_clock_reading_waits_for_the_device():
    events = []
    best, median = kernel_peak.timed(lambda: events.append("call"), 3, sync=lambda: events.append("sync"))
    assert events == ["call", "sync"] * 4  # the warm-up, then each repeat, each followed by the wait
    assert 0 <= best <= median


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "meta"])
def test_a_device_that_is_not_one_is_refused(device, capsys):
    with pytest.raises(SystemExit) as exit_info:
        kernel_peak.main(["--preset", "tiny", "--device", device])
    assert exit_info.value.code == 2 and "--device" in capsys.readouterr().err


def test_peaks_name_their_device():
    result = kernel_peak.measure_peaks("tiny", 5, (32, 48), ["float32"], 1, kinds=("gemm",), device="cpu")
    assert result["device"] == "cpu" and set(result["peaks"]["float32"]) == {"gemm"}

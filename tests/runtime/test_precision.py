import copy
import logging

import pytest
import torch
import torch.nn.functional as F

from flowrvs.runtime import precision
from flowrvs.errors import FlowRVSError
from flowrvs.runtime.precision import (
    SLOW_BF16_WARNING,
    PartPrecision,
    apply_part_precision,
    apply_precision,
    choose_precision,
    cpu_has_native_bf16,
)

BF16, FP32 = torch.bfloat16, torch.float32
LEAN = PartPrecision(BF16, FP32)


@pytest.fixture
def native_bf16(monkeypatch):
    """Set what the CPU 'can do': call with True or False."""

    def set_(value: bool):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)

    return set_


def test_cpuinfo_flags_detect_native_bf16(tmp_path, monkeypatch):
    def detect(flags: str, capability: str = "AVX2") -> bool:
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
        monkeypatch.setattr(precision, "_cpuinfo_flags", lambda: original(str(info)))
        monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        cpu_has_native_bf16.cache_clear()
        return cpu_has_native_bf16()

    original = precision._cpuinfo_flags
    monkeypatch.delenv(precision.ENV_OVERRIDE, raising=False)
    try:
        assert detect("fpu sse avx2 fma") is False
        assert detect("fpu avx512f avx512bw avx512vl") is False  # AVX-512 alone is not native bf16
        assert detect("fpu avx512f avx512_bf16") is True
        assert detect("fpu avx2 amx_bf16 amx_tile") is True
        assert detect("fpu avx2", capability="AMX") is True
        monkeypatch.setenv(precision.ENV_OVERRIDE, "0")
        assert detect("fpu avx512_bf16") is False  # the user's word wins
    finally:
        cpu_has_native_bf16.cache_clear()


def test_auto_on_cpu_without_native_bf16_computes_in_float32(native_bf16):
    native_bf16(False)
    plan = choose_precision("cpu")
    assert plan.vae == PartPrecision(FP32, FP32)  # never the naive bf16 Conv3d
    assert plan.transformer == LEAN and plan.text_encoder == LEAN
    assert plan.latent_dtype == FP32 and plan.warning is None
    plain = choose_precision("cpu", bf16_storage=False)
    assert all(plain.part(p) == PartPrecision(FP32, FP32) for p in precision.PARTS)
    assert "text_encoder bfloat16->float32" in plan.describe()


def test_auto_on_cpu_with_native_bf16_computes_in_bfloat16(native_bf16):
    native_bf16(True)
    plan = choose_precision("cpu", "auto")
    assert all(plan.part(p) == PartPrecision(BF16, BF16) for p in precision.PARTS)
    assert plan.warning is None


def test_forced_bfloat16_on_slow_cpu_warns_once(native_bf16, caplog):
    native_bf16(False)
    with caplog.at_level(logging.WARNING, logger="flowrvs.runtime.precision"):
        plan = choose_precision("cpu", "bfloat16")
    assert all(plan.part(p) == PartPrecision(BF16, BF16) for p in precision.PARTS)  # still honoured
    assert plan.warning == SLOW_BF16_WARNING
    assert [r.getMessage() for r in caplog.records] == [SLOW_BF16_WARNING]
    assert "\n" not in SLOW_BF16_WARNING and "6x" in SLOW_BF16_WARNING and "200x" in SLOW_BF16_WARNING
    caplog.clear()
    native_bf16(True)
    with caplog.at_level(logging.WARNING, logger="flowrvs.runtime.precision"):
        assert choose_precision("cpu", torch.bfloat16).warning is None
    assert not caplog.records


def test_forced_float32_and_bad_requests(native_bf16):
    native_bf16(True)
    plan = choose_precision("cpu", "float32")
    assert all(plan.part(p) == PartPrecision(FP32, FP32) for p in precision.PARTS)
    for bad in ("float64", "half", torch.int8):
        with pytest.raises(FlowRVSError):
            choose_precision("cpu", bad)
    with pytest.raises(FlowRVSError, match="float16 is not supported on cpu"):
        choose_precision("cpu", "float16")
    with pytest.raises(FlowRVSError, match="unknown device"):
        choose_precision("gpu-ish")


def test_plan_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    plan = choose_precision()  # cuda is the default device when available
    assert plan.device.type == "cuda"
    assert all(plan.part(p) == PartPrecision(BF16, BF16) for p in precision.PARTS)  # the VAE in bf16 too
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    old_gpu = choose_precision("cuda")
    assert old_gpu.transformer.compute == torch.float16 and old_gpu.text_encoder.compute == FP32
    with pytest.raises(FlowRVSError, match="bfloat16 is not supported"):
        choose_precision("cuda", "bfloat16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(FlowRVSError, match="CUDA is not available"):
        choose_precision("cuda")


def _float32_twin(reference, lean):
    """``reference`` with the weights that ``lean`` stores in bf16 rounded the same way."""
    stored = dict(lean.named_parameters())
    for name, p in reference.named_parameters():
        if stored[name].dtype == BF16:
            p.data = stored[name].data.to(FP32)
    return reference


@pytest.fixture
def conv3d_dtypes(monkeypatch):
    """Record (input dtype, weight dtype) of every conv3d call."""
    seen = []
    original = F.conv3d

    def spy(inp, weight, *args, **kwargs):
        seen.append((inp.dtype, weight.dtype))
        return original(inp, weight, *args, **kwargs)

    monkeypatch.setattr(F, "conv3d", spy)
    return seen


def test_layerwise_casting_matches_float32_on_tiny_models(tiny_pipe, conv3d_dtypes):
    torch.manual_seed(0)
    parts = {name: copy.deepcopy(getattr(tiny_pipe, name)) for name in precision.PARTS}
    references = {name: copy.deepcopy(m) for name, m in parts.items()}
    for name, module in parts.items():
        apply_part_precision(module, LEAN)
        _float32_twin(references[name], module)
    # weights really are stored in bf16 (large ones), everything else in float32
    for name, module in parts.items():
        dtypes = {p.dtype for p in module.parameters()}
        assert BF16 in dtypes, name
        assert FP32 in dtypes, name  # norms and skipped layers compute in float32

    ids = torch.tensor([[5, 6, 7, 1]])
    out = parts["text_encoder"](ids).last_hidden_state
    ref = references["text_encoder"](ids).last_hidden_state
    assert out.dtype == FP32
    # umT5's feed-forward rounds its activations to the stored dtype of ``wo`` before calling it
    # (transformers' code), so this part is close, not equal; a whole-bf16 encoder is further off
    error = (out - ref).abs().max()
    assert error < 1e-2 * ref.abs().max()
    whole_bf16 = copy.deepcopy(references["text_encoder"]).to(BF16)
    assert error < (whole_bf16(ids).last_hidden_state.float() - ref).abs().max()

    config = tiny_pipe.transformer.config
    x = torch.randn(1, config.in_channels, 2, 8, 8)
    t, text = torch.tensor([500.0]), torch.randn(1, 16, config.text_dim)
    out = parts["transformer"](x, t, text).sample
    torch.testing.assert_close(out, references["transformer"](x, t, text).sample, atol=1e-5, rtol=1e-5)

    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    conv3d_dtypes.clear()
    latent = parts["vae"].encode(video).latent_dist.mean
    assert conv3d_dtypes and set(conv3d_dtypes) == {(FP32, FP32)}  # never a bf16 Conv3d on the CPU
    torch.testing.assert_close(latent, references["vae"].encode(video).latent_dist.mean, atol=1e-5, rtol=1e-5)
    with pytest.raises(FlowRVSError, match="already has layerwise casting"):
        apply_part_precision(parts["vae"], LEAN)


def test_apply_precision_follows_the_plan(tiny_pipe, native_bf16, conv3d_dtypes):
    native_bf16(False)
    plan = choose_precision("cpu")
    parts = {name: copy.deepcopy(getattr(tiny_pipe, name)) for name in ("transformer", "vae")}
    for module in parts.values():
        module.to(BF16)  # loaded in bf16, as a released checkpoint is
    apply_precision(plan, text_encoder=None, **parts)
    assert {p.dtype for p in parts["vae"].parameters()} == {FP32}
    parts["vae"].encode(torch.zeros(1, 3, 1, 16, 16))
    assert set(conv3d_dtypes) == {(FP32, FP32)}
    assert BF16 in {p.dtype for p in parts["transformer"].parameters()}
    with pytest.raises(TypeError, match="unknown part"):
        apply_precision(plan, unet=parts["vae"])


def test_a_model_load_plans_once_and_keeps_a_small_model_exact(monkeypatch):
    calls = []
    original = precision.choose_precision
    monkeypatch.setattr(precision, "choose_precision", lambda *a, **k: calls.append(a) or original(*a, **k))
    small = precision.plan_model_precision("cpu", "auto", large_model=False)
    assert small.transformer == small.vae == small.text_encoder == PartPrecision(torch.float32, torch.float32)
    assert len(calls) == 1
    monkeypatch.setenv("FLOWRVS_CPU_BF16", "0")
    precision.cpu_has_native_bf16.cache_clear()
    try:
        large = precision.plan_model_precision("cpu", None, large_model=True)
    finally:
        precision.cpu_has_native_bf16.cache_clear()
    assert large.transformer.storage == torch.bfloat16 and large.transformer.compute == torch.float32
    assert precision.plan_model_precision("cpu", "bfloat16", large_model=False).vae.compute == torch.bfloat16

"""Precision per part and per machine: which dtype each model part is stored and computed in.

On CUDA everything runs in bfloat16 (the VAE too, as the public code runs it). On a CPU,
bfloat16 is fast only where the CPU has native bf16 instructions (AVX-512 BF16, AMX-BF16, or
Arm's BF16 extension); elsewhere PyTorch runs bf16 Conv3d through its naive ``slow_conv3d`` on
one core and bf16 matmuls slowly (measured on a 2-core AMD EPYC without AVX-512: the DiT 6x
slower than float32, the VAE encoder 200x). There the plan computes in float32 and keeps the
large weights (umT5-XXL's 5.7 B parameters, the DiT's 1.4 B) *stored* in bfloat16, cast to
float32 one layer at a time while it runs (diffusers' layerwise casting hooks), so memory
stays near bf16's and speed near float32's.

Use :func:`choose_precision` to make a :class:`PrecisionPlan`, load each part in its
``storage`` dtype, then :func:`apply_precision` (or :func:`apply_part_precision` for one
module) to put it in its compute dtype.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from flowrvs.errors import FlowRVSError

logger = logging.getLogger(__name__)

PARTS = ("transformer", "vae", "text_encoder")
REQUESTS = ("auto", "float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 flags; "bf16" is Arm's Features entry
ENV_OVERRIDE = "FLOWRVS_CPU_BF16"  # "1"/"0": trust the user over detection
SLOW_BF16_WARNING = (
    "bfloat16 on this CPU (no AVX-512 BF16/AMX) runs in software: ~6x slower than float32 for the "
    "DiT, up to 200x for the VAE; dtype 'auto' computes in float32 here, with bfloat16-stored weights"
)


# ---- what the machine can do ---------------------------------------------------------------
def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags of Linux's ``/proc/cpuinfo`` (x86 ``flags``, Arm ``Features``)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def _darwin_bf16() -> bool:
    try:
        out = subprocess.run(
            ["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=2
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return out == "1"


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (so bf16 is faster than float32, not 6-200x slower).

    Reads ``/proc/cpuinfo`` flags (``avx512_bf16``, ``amx_bf16``, Arm ``bf16``), macOS's
    ``hw.optional.arm.FEAT_BF16``, and PyTorch's CPU capability (``AMX``/``BF16`` variants);
    ``FLOWRVS_CPU_BF16=1`` or ``0`` overrides detection. Cached: it costs one file read.
    """
    override = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if override in ("1", "true", "yes"):
        return True
    if override in ("0", "false", "no"):
        return False
    flags = _cpuinfo_flags()
    if flags and any(f in flags for f in NATIVE_BF16_FLAGS):
        return True
    if platform.system() == "Darwin" and platform.machine() == "arm64" and _darwin_bf16():
        return True
    try:
        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    except (AttributeError, RuntimeError):
        capability = ""
    return bool(re.search(r"AMX|BF16", capability))


# ---- the plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartPrecision:
    """Dtypes of one model part: ``storage`` (its weights at rest) and ``compute`` (its arithmetic).

    When they differ, weights are cast from storage to compute one layer at a time.
    """

    storage: torch.dtype
    compute: torch.dtype

    @property
    def layerwise(self) -> bool:
        return self.storage != self.compute


@dataclass(frozen=True)
class PrecisionPlan:
    """Per-part precision for one device.

    ``requested``: what the user asked (``auto`` or a dtype name); ``reason``: one line saying
    why this plan; ``warning``: one line when the plan will be slow (forced bf16 on a CPU
    without native bf16), else ``None``.
    """

    device: torch.device
    transformer: PartPrecision
    vae: PartPrecision
    text_encoder: PartPrecision
    requested: str = "auto"
    reason: str = ""
    warning: str | None = None

    def part(self, name: str) -> PartPrecision:
        if name not in PARTS:
            raise KeyError(f"unknown part {name!r}; parts are {', '.join(PARTS)}")
        return getattr(self, name)

    @property
    def latent_dtype(self) -> torch.dtype:
        """The dtype latents travel in between parts: the DiT's compute dtype."""
        return self.transformer.compute

    def describe(self) -> str:
        """``transformer bfloat16->float32, vae float32, ...`` (storage->compute)."""

        def name(d: torch.dtype) -> str:
            return str(d).removeprefix("torch.")

        items = []
        for part in PARTS:
            p = self.part(part)
            items.append(f"{part} {name(p.storage)}->{name(p.compute)}" if p.layerwise else f"{part} {name(p.compute)}")
        return ", ".join(items)


def _uniform(dtype: torch.dtype) -> PartPrecision:
    return PartPrecision(dtype, dtype)


def resolve_device(device=None) -> torch.device:
    """``device`` as a :class:`torch.device` (default: cuda when available, else cpu)."""
    try:
        return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise FlowRVSError(f"unknown device {device!r}: {err}") from err


def plan_model_precision(device=None, requested: str | torch.dtype | None = "auto", large_model: bool = True) -> PrecisionPlan:
    """The plan a model is loaded with: :func:`choose_precision`, decided once per load.

    Storing weights in bfloat16 and computing in float32 pays off for large models only
    (``large_model``: weights over :data:`flowrvs.loading.model_folder.LARGE_MODEL_BYTES`), so a
    small one keeps its exact float32 weights; and ``"auto"`` on a CPU computes a small model in
    float32 (bf16 gains it nothing there and costs it accuracy).
    """
    device = resolve_device(device)
    requested = "auto" if requested is None else requested
    if requested == "auto" and not large_model and device.type == "cpu":
        requested = "float32"
    return choose_precision(device, requested, bf16_storage=large_model)


def choose_precision(device=None, requested: str | torch.dtype | None = "auto", bf16_storage: bool = True) -> PrecisionPlan:
    """The precision plan for ``device`` (default: cuda when available, else cpu).

    requested: ``"auto"`` (or ``None``) chooses per part and per machine; a dtype name or
    ``torch.dtype`` forces that dtype on every part. bf16_storage: with ``auto`` on a CPU without
    native bf16, store the text encoder and the DiT in bfloat16 and compute in float32 (about
    half the memory; the released DiT is bf16 anyway); ``False`` keeps everything in float32.
    A forced ``bfloat16`` on a CPU without native bf16 logs one warning line.
    Raises :class:`FlowRVSError` for an unknown dtype or device, or one the device cannot run.
    """
    device = resolve_device(device)
    if isinstance(requested, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        if requested not in names:
            raise FlowRVSError(f"unsupported dtype {requested}; choose one of {', '.join(REQUESTS)}")
        requested = names[requested]
    requested = requested or "auto"
    if requested not in REQUESTS:
        raise FlowRVSError(f"unknown dtype {requested!r}; choose one of {', '.join(REQUESTS)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlowRVSError("device cuda asked for, but CUDA is not available on this machine")
    if device.type == "cpu" and requested == "float16":
        raise FlowRVSError("float16 is not supported on cpu (Conv3d has no half kernels there); use auto, bfloat16 or float32")
    if device.type == "cuda" and requested == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise FlowRVSError("bfloat16 is not supported on this GPU; use float16 or float32")

    if requested != "auto":
        dtype = DTYPES[requested]
        warning = None
        if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_native_bf16():
            warning = SLOW_BF16_WARNING
            logger.warning(warning)
        part = _uniform(dtype)
        return PrecisionPlan(device, part, part, part, requested, f"{requested} asked for", warning)

    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            bf16 = _uniform(torch.bfloat16)
            return PrecisionPlan(device, bf16, bf16, bf16, "auto", "CUDA: bfloat16 everywhere")
        # umT5 overflows in float16: keep its arithmetic in float32, its weights in float16
        half = _uniform(torch.float16)
        text = PartPrecision(torch.float16, torch.float32)
        return PrecisionPlan(device, half, half, text, "auto", "CUDA without bf16: float16, umT5 computed in float32")
    if device.type == "cpu":
        if cpu_has_native_bf16():
            bf16 = _uniform(torch.bfloat16)
            return PrecisionPlan(device, bf16, bf16, bf16, "auto", "CPU with native bf16: bfloat16 everywhere")
        fp32 = _uniform(torch.float32)
        big = PartPrecision(torch.bfloat16, torch.float32) if bf16_storage else fp32
        reason = "CPU without native bf16: float32 compute" + (", large weights stored in bfloat16" if bf16_storage else "")
        return PrecisionPlan(device, big, fp32, big, "auto", reason)
    fp32 = _uniform(torch.float32)
    return PrecisionPlan(device, fp32, fp32, fp32, "auto", f"{device.type}: float32")


def resolve_device_dtype(device=None, dtype=None) -> tuple[torch.device, torch.dtype]:
    """One device and one dtype for every part (training, tools), checked as :func:`choose_precision`
    checks them; ``dtype=None`` is float32 on a CPU and bfloat16 on CUDA."""
    device = resolve_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    plan = choose_precision(device, dtype)
    return plan.device, plan.transformer.compute


# ---- applying it ---------------------------------------------------------------------------
_LAYERWISE_HOOK = "layerwise_casting"


def _has_layerwise_hook(module: torch.nn.Module) -> bool:
    registry = getattr(module, "_diffusers_hook", None)
    return registry is not None and registry.get_hook(_LAYERWISE_HOOK) is not None


def _cast_inputs(dtype: torch.dtype):
    # T5-style blocks cast activations to a layer's *stored* weight dtype before calling it
    def hook(module, args):
        return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)

    return hook


def _cast_output(dtype: torch.dtype):
    def hook(module, args, output):
        return output.to(dtype)

    return hook


def _keep_in_float32(module: torch.nn.Module) -> tuple[str, ...]:
    """Names a diffusers model keeps in float32 under a half dtype (Wan: time embedder, norms, rope)."""
    from diffusers import ModelMixin

    if not isinstance(module, ModelMixin):
        return ()
    return tuple(getattr(module, "_keep_in_fp32_modules", None) or ())


def _cast(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """``module.to(dtype)``, except what diffusers' ``from_pretrained(torch_dtype=...)`` keeps in float32."""
    keep = _keep_in_float32(module) if dtype in (torch.bfloat16, torch.float16) else ()
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if not tensor.is_floating_point():
            continue
        target = torch.float32 if keep and any(k in name.split(".") for k in keep) else dtype
        if tensor.dtype != target:
            tensor.data = tensor.data.to(target)


def apply_part_precision(module: torch.nn.Module, part: PartPrecision, device=None) -> torch.nn.Module:
    """Put one loaded module into ``part``'s precision (in place; returns it).

    Without layerwise casting: ``module.to(device, part.compute)``, except the modules a diffusers
    model keeps in float32 under a half dtype (as its ``from_pretrained`` does). With it (storage differs
    from compute): Linear and Conv layers keep their weights in ``storage`` and are cast to
    ``compute`` only while they run (diffusers' layerwise casting; a diffusers model's own
    skip patterns are honoured); embedding tables stay in ``storage`` and their *outputs* are
    cast (casting umT5's 1 B-entry table per call would cost 4 GB); every other parameter and
    buffer (norms, biases of skipped layers) moves to ``compute``. Load the module in its
    storage dtype first so that memory never holds it whole in ``compute``.
    """
    from diffusers.hooks import apply_layerwise_casting

    if device is not None:
        module.to(device)
    if not part.layerwise:
        _cast(module, part.compute)
        return module
    if any(_has_layerwise_hook(m) for m in module.modules()):
        raise FlowRVSError(f"{type(module).__name__} already has layerwise casting; apply a precision once")
    patterns = getattr(module, "_skip_layerwise_casting_patterns", None) or ("norm",)
    keep_fp32 = _keep_in_float32(module)
    apply_layerwise_casting(
        module,
        storage_dtype=part.storage,
        compute_dtype=part.compute,
        skip_modules_pattern=tuple(patterns) + keep_fp32,
        skip_modules_classes=(torch.nn.Embedding,),
    )
    for sub in module.modules():
        if _has_layerwise_hook(sub):
            sub.register_forward_pre_hook(_cast_inputs(part.compute))
            continue
        if isinstance(sub, torch.nn.Embedding):
            sub.to(dtype=part.storage)
            sub.register_forward_hook(_cast_output(part.compute))
            continue
        for tensor in list(sub.parameters(recurse=False)) + list(sub.buffers(recurse=False)):
            if tensor.is_floating_point() and tensor.dtype != part.compute:
                tensor.data = tensor.data.to(part.compute)
    return module


def apply_precision(plan: PrecisionPlan, device=None, **parts: torch.nn.Module | None) -> None:
    """Apply ``plan`` to loaded parts, e.g. ``apply_precision(plan, transformer=t, vae=v)``.

    Keys are part names (``transformer``, ``vae``, ``text_encoder``); ``None`` values are
    skipped (a text encoder not loaded yet). ``device`` defaults to the plan's.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise TypeError(f"unknown part(s) {', '.join(unknown)}; parts are {', '.join(PARTS)}")
    for name, module in parts.items():
        if module is not None:
            apply_part_precision(module, plan.part(name), device if device is not None else plan.device)

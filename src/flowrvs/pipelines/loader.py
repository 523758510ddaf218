"""Load a :class:`~flowrvs.pipelines.pipeline_flowrvs.FlowRVSPipeline` in the precision this machine runs best.

The one place that plans precision for inference: :func:`flowrvs.runtime.precision.plan_model_precision`
is decided once per load, each part is loaded in its storage dtype, then put in its compute
dtype on the device (or kept on the CPU under model offload). A VAE that computes in bfloat16
on a CPU is stored channels-last, the layout oneDNN's bf16 convolutions run in without
reordering, and gets leaner norm, padding and upsampling layers
(:func:`flowrvs.models.vae.tune_for_machine`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from flowrvs.loading.model_folder import LARGE_MODEL_BYTES, weights_bytes
from flowrvs.loading.resolve import resolve_model_dir
from flowrvs.loading.model_folder import folder_class_name
from flowrvs.models.vae import tune_for_machine
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.pipeline_rem import REMPipeline
from flowrvs.runtime.precision import PARTS, apply_precision, plan_model_precision


PIPELINES = {cls.__name__: cls for cls in (FlowRVSPipeline, REMPipeline)}


def pipeline_class_of(folder: str | Path) -> type[FlowRVSPipeline]:
    """The pipeline class a model folder names (``_class_name``): the method it runs."""
    return PIPELINES[folder_class_name(folder)]


def load_pipeline(
    model: str | Path,
    *,
    device=None,
    dtype: str | torch.dtype | None = "auto",
    cpu_offload: bool = False,
    keep_text_encoder: bool = False,
    dit_file: str | None = None,
    base: str | None = None,
) -> FlowRVSPipeline:
    """A model folder, shipped model name or hub id, loaded for inference on ``device``.

    device: where it runs (default: CUDA when available). dtype: ``"auto"`` (bfloat16 on CUDA
    and on CPUs with native bf16, else float32 compute with large weights stored in bfloat16;
    see :mod:`flowrvs.runtime.precision`) or one dtype for every part. cpu_offload: keep each
    part on the CPU and move it to the GPU only while it runs (nothing to do without CUDA).
    keep_text_encoder, dit_file, base: as :meth:`FlowRVSPipeline.from_pretrained`. A forced
    bfloat16 on a CPU without native bf16 logs one warning. Raises :class:`FlowRVSError`.
    """
    path = resolve_model_dir(model, dit_file=dit_file, base=base)
    plan = plan_model_precision(device, dtype, large_model=weights_bytes(path) > LARGE_MODEL_BYTES)
    storage = {part: plan.part(part).storage for part in PARTS}
    pipe = pipeline_class_of(path).from_pretrained(path, torch_dtype={**storage, "default": torch.float32},
                                           keep_text_encoder=keep_text_encoder)
    pipe._precision = plan
    offload = cpu_offload and plan.device.type == "cuda"
    apply_precision(plan, device=torch.device("cpu") if offload else plan.device,
                    transformer=pipe.transformer, vae=pipe.vae, text_encoder=pipe.text_encoder)
    tune_for_machine(pipe.vae, plan.device, plan.vae.compute)
    if offload:
        pipe.enable_model_cpu_offload(device=plan.device)
    return pipe

"""The pipeline classes a model folder may name, looked up by the ``_class_name`` of its index.

A model folder's ``model_index.json`` names its class (``FlowRVSPipeline`` or ``REMPipeline``):
the method it runs. Loading dispatches on it, as ``DiffusionPipeline.from_pretrained`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

from flowrvs.errors import FlowRVSError, first_line

PIPELINE_CLASS_NAMES = ("FlowRVSPipeline", "REMPipeline")


def pipeline_class(name: str) -> type:
    """The pipeline class called ``name`` (one of :data:`PIPELINE_CLASS_NAMES`)."""
    if name == "FlowRVSPipeline":
        from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline

        return FlowRVSPipeline
    if name == "REMPipeline":
        from flowrvs.pipelines.pipeline_rem import REMPipeline

        return REMPipeline
    raise FlowRVSError(f"unknown pipeline class {name!r}; flowrvs runs {', '.join(PIPELINE_CLASS_NAMES)}")


def folder_pipeline_class(folder: str | Path) -> type:
    """The pipeline class a model folder's ``model_index.json`` names (a one-line error otherwise)."""
    index_path = Path(folder) / "model_index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FlowRVSError(f"cannot read {index_path}: {first_line(err)}") from err
    name = index.get("_class_name") if isinstance(index, dict) else None
    if not isinstance(name, str):
        raise FlowRVSError(f"{index_path} names no pipeline class (_class_name)")
    try:
        return pipeline_class(name)
    except FlowRVSError as err:
        raise FlowRVSError(f"{index_path}: {err}") from None

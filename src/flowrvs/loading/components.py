"""Loading the parts of a model folder, each by the library class its ``model_index.json`` names.

A part's files (its ``config.json``, weights, tokenizer files, scheduler config) are the user's
data: whatever the library raises while it parses them (a value of the wrong type, a tokenizer
file ``tokenizers`` cannot read, a weights file of the wrong shape) is turned into one
:class:`FlowRVSError` line naming the part's files and the problem. Only that library call is
guarded, so an error in flowrvs itself keeps its traceback. A loaded model with a parameter or
buffer left on the ``meta`` device (a tensor missing from its weights file) is refused, naming
the tensor and the file.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.loading.model_folder import INDEX_FILE

logger = logging.getLogger(__name__)

LIBRARIES = ("diffusers", "transformers")  # where a model folder's parts may come from


def part_class(folder: Path, index: dict, part: str) -> type:
    """The class ``model_index.json`` names for ``part`` (``[library, class]``), from diffusers or
    transformers only, with a ``from_pretrained``; else a one-line error naming the entry."""
    entry = index.get(part)
    cls = None
    if isinstance(entry, list) and len(entry) == 2 and entry[0] in LIBRARIES and isinstance(entry[1], str):
        cls = getattr(importlib.import_module(entry[0]), entry[1], None)
    if not isinstance(cls, type) or not hasattr(cls, "from_pretrained"):
        raise FlowRVSError(f"{folder / INDEX_FILE}: {part} must name a diffusers or transformers class "
                           f"as [library, class], got {entry!r}")
    return cls


def _files(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    return ", ".join(names) or "no files"


def _weights_files(folder: Path) -> str:
    return ", ".join(sorted(p.name for p in folder.glob("*.safetensors"))) or "its weights file"


def refuse_missing(module: torch.nn.Module, missing, folder: Path) -> None:
    """A one-line error naming the first tensor the weights files of a loaded ``module`` lacked
    (``missing``: the library's missing keys; transformers fills them with random values) or
    the first parameter or buffer still on ``meta`` (where diffusers leaves them), and how many."""
    meta = sorted(missing) or [name for name, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if meta:
        more = f" (and {len(meta) - 1} more)" if len(meta) > 1 else ""
        raise FlowRVSError(f"{folder}: the tensor {meta[0]}{more} is missing from {_weights_files(folder)}")


def load_part(folder: Path, part: str, cls: type, dtype: torch.dtype | None):
    """``cls.from_pretrained(folder/part)`` (models in ``dtype``); a one-line :class:`FlowRVSError`
    for anything the library raises while it reads the part's files."""
    where = folder / part
    kwargs: dict = {}
    if issubclass(cls, torch.nn.Module):  # models take a dtype; tokenizers and schedulers do not
        transformers_model = cls.__module__.startswith("transformers")
        kwargs = {"dtype": dtype} if transformers_model else {"torch_dtype": dtype, "low_cpu_mem_usage": True}
        kwargs["output_loading_info"] = True
    try:
        loaded = cls.from_pretrained(str(where), **kwargs)
    except FlowRVSError:
        raise
    except Exception as err:  # the library parsing the user's files: bad values or types, unreadable files
        logger.debug("loading %s failed", where, exc_info=True)
        raise FlowRVSError(f"cannot load the {part} in {where} ({_files(where)}): "
                           f"{type(err).__name__}: {first_line(err)}") from err
    if "output_loading_info" in kwargs:
        loaded, info = loaded
        refuse_missing(loaded, info.get("missing_keys") or [], where)
    return loaded


def part_dtype(torch_dtype: torch.dtype | dict | None, part: str) -> torch.dtype | None:
    """The dtype ``torch_dtype`` (one dtype, or one per part with a ``"default"``) gives ``part``."""
    if isinstance(torch_dtype, dict):
        return torch_dtype.get(part, torch_dtype.get("default"))
    return torch_dtype


def load_parts(folder: Path, index: dict, parts: list[str], torch_dtype=None) -> dict:
    """The parts named (``transformer``, ``vae``, ...), loaded by :func:`load_part`; the
    ``scheduler`` only where the index names one and its folder exists (else ``None``)."""
    loaded = {}
    for part in parts:
        if part == "scheduler" and (not isinstance(index.get(part), list) or None in index[part]
                                    or not (folder / part).is_dir()):
            loaded[part] = None
            continue
        loaded[part] = load_part(folder, part, part_class(folder, index, part), part_dtype(torch_dtype, part))
    return loaded

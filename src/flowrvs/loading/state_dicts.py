"""Weights from files, and checked loading into modules.

``.pth`` files are only ever read with ``torch.load(..., weights_only=True)``: a checkpoint
cannot run code. A state dict is checked against its module before it is loaded, so a wrong
checkpoint fails with a one-line error naming the first missing, unexpected or wrongly shaped
tensor instead of torch's page-long message.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from flowrvs.errors import FlowRVSError, first_line


def load_weights_file(path: str | Path, safe_globals: tuple[type, ...] = (), mmap: bool = False) -> object:
    """Load a ``.safetensors`` file or a weights-only ``.pth``/``.pt``/``.bin`` checkpoint on the CPU.

    safe_globals: the classes (and only those) the unpickler may build besides tensors and
    plain containers (REM's checkpoint holds an ``argparse.Namespace``). mmap: map the tensors'
    storage from the file instead of reading it (what is never touched, an optimizer's state,
    is never read); a checkpoint in torch's older, non-zip format is read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise FlowRVSError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise FlowRVSError(f"checkpoint {path} is not a readable safetensors file ({err})") from err
    import zipfile

    mmap = mmap and zipfile.is_zipfile(path)  # torch maps only its zip format
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise FlowRVSError(
            f"checkpoint {path} cannot be loaded as weights only: it is corrupt or holds objects other than "
            f"tensors and plain containers, and flowrvs refuses to unpickle those ({_unpickler_detail(err)})"
        ) from err
    except EOFError as err:
        raise FlowRVSError(f"checkpoint {path} cannot be loaded: it is empty or cut short") from err
    except (RuntimeError, UnicodeDecodeError, KeyError, ValueError, IndexError) as err:
        # weights_only runs no code: whatever reading a damaged archive or pickle raises is the file's fault
        raise FlowRVSError(f"checkpoint {path} cannot be loaded: it is damaged ({type(err).__name__}: {first_line(err)})") from err


def _unpickler_detail(err: Exception) -> str:
    """The specific reason in torch's long weights-only message (e.g. ``Unsupported global: ...``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for marker in ("Unsupported", "Unpickler error"):
        for line in lines:
            if marker in line and not line.endswith(":"):
                return line[line.index(marker) :].split(". Please")[0]
    return lines[-1] if lines else type(err).__name__


def tensor_dict(obj: object, path: str | Path) -> dict[str, torch.Tensor]:
    """``obj`` if it is a non-empty ``{name: tensor}`` dict, else a one-line error about ``path``."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FlowRVSError(f"checkpoint {path} does not hold a state dict of tensors")
    return obj


def strip_prefix(state: dict, prefix: str) -> dict:
    """Drop ``prefix`` from every key that has it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def check_state_dict(module: torch.nn.Module, state: dict, what: str) -> None:
    """Raise a one-line error naming the first missing, unexpected or wrongly shaped tensor."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    for name, shape in expected.items():
        if name not in state:
            missing = [k for k in expected if k not in state]
            raise FlowRVSError(f"{what} lacks {len(missing)} tensor(s), first {name}")
        if tuple(state[name].shape) != shape:
            raise FlowRVSError(
                f"{what}: tensor {name} has shape {tuple(state[name].shape)}, the model expects {shape}"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise FlowRVSError(f"{what} has {len(extra)} unexpected tensor(s), first {extra[0]}")


def load_checked(module: torch.nn.Module, state: dict, what: str, assign: bool = False) -> torch.nn.Module:
    """:func:`check_state_dict`, then a strict ``load_state_dict`` (``assign``: take the tensors
    as they are, for a module built on the ``meta`` device); returns ``module``."""
    check_state_dict(module, state, what)
    module.load_state_dict(state, strict=True, assign=assign)
    return module

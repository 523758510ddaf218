"""A model's name -> its folder: a path, a model shipped inside the package, or a hub id.

A name is tried in that order: an existing path is a model folder; ``tiny-synthetic`` (any
folder under ``flowrvs/weights/``) is a shipped model; an ``owner/name`` is resolved through
the Hugging Face hub (:mod:`flowrvs.loading.hub`: downloaded, and converted once when it is the
public release). The folder found is checked for every part before anything is loaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flowrvs.errors import FlowRVSError
from flowrvs.loading.hub import looks_like_repo_id, resolve_hub_model
from flowrvs.loading.model_folder import INDEX_FILE, check_model_dir


def shipped_model_dir(name: str) -> Path | None:
    """Folder of a model shipped inside the package (e.g. ``tiny-synthetic``), if there is one."""
    path = Path(str(resources.files("flowrvs") / "weights" / name))
    return path if (path / INDEX_FILE).is_file() else None


def resolve_model_dir(model: str | Path, **hub_options) -> Path:
    """A checked model folder from a path, the name of a shipped model, or a Hugging Face hub id.

    ``hub_options`` go to :func:`flowrvs.loading.hub.resolve_hub_model` (``dit_file``, ``base``).
    """
    path = Path(model)
    if not path.exists():
        shipped = shipped_model_dir(str(model))
        if shipped is not None:
            path = shipped
        elif looks_like_repo_id(str(model)):
            path = resolve_hub_model(str(model), **hub_options)
        else:
            raise FlowRVSError(f"model folder {model} does not exist (and is not a shipped model or a hub id)")
    return check_model_dir(path)

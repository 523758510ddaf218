"""A copy of a streamed text encoder's layers in the dtype it computes in, kept in the cache folder.

umT5-XXL ships its layers in float32: 18.5 GB without the token table. The streamed encoder
(:func:`flowrvs.models.text.load_streamed_text_encoder`) reads all of them on every call and casts
each to the compute dtype; where the page cache cannot keep 18.5 GB beside the DiT (a 24 GB
machine), every call reads them from disk. A bfloat16 copy is half the bytes and needs no cast.
Its values are those of the same cast (``Tensor.to``), so the embeddings are bit-identical.

Layout: ``cache_root()/text-encoders/<key>/`` holds ``part-NNNNN.safetensors`` (about
:data:`PART_BYTES` each) and ``manifest.json`` (format, dtype, the source files' names, sizes and
modification times, each part's size, each tensor's part). ``key`` names the source folder and the
dtype; a changed source makes its copy stale, and it is rebuilt in place. The copy is written
once (:func:`flowrvs.io.atomic.atomic_dir`, under a file lock, so concurrent processes write it
once) and checked structurally when read: manifest, part sizes, and every tensor's name, shape and
dtype against the source. It only saves time: when it cannot be written (no space, a read-only
cache) or ``$FLOWRVS_CACHE`` is off, the source is streamed as before, with one warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from flowrvs.errors import first_line
from flowrvs.io.atomic import atomic_dir, remove_stale_temps, write_json
from flowrvs.runtime.cache import cache_root, speed_caches_enabled

logger = logging.getLogger(__name__)

FORMAT = 1
PART_BYTES = 1 << 30
SPARE_BYTES = 1 << 30  # free space left on the cache's disk after the copy
MANIFEST = "manifest.json"
PART_NAME = re.compile(r"part-\d{5}\.safetensors")
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


@dataclass(frozen=True)
class SourceTensor:
    """One tensor of the source shards, as its safetensors header describes it."""

    file: str
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype | None  # None: not a floating-point tensor (never copied)

    def nbytes(self, dtype: torch.dtype) -> int:
        return torch.Size(self.shape).numel() * dtype.itemsize


def layers_in_dtype(index: dict[str, dict], dtype: torch.dtype, skip: frozenset[str] = frozenset()) -> dict[str, dict]:
    """``index`` (accelerate's offload index: key -> ``safetensors_file``, ``weight_name``,
    ``dtype``) with every floating-point tensor stored wider than ``dtype`` read from a copy in
    ``dtype``, made once; keys in ``skip`` (the token table, read by rows) keep their source.

    Returns ``index`` unchanged when nothing is wider than ``dtype``, when caches are off, or
    when the copy cannot be written (logged once).
    """
    if not speed_caches_enabled():
        return index
    tensors = _source_tensors(index)
    narrowed = {k: t for k, t in tensors.items()
                if k not in skip and t.dtype is not None and t.dtype.itemsize > dtype.itemsize}
    if not narrowed:
        return index
    root = cache_root() / "text-encoders"
    folder = root / _copy_key(narrowed, dtype)
    source = _fingerprint(narrowed)
    try:
        from filelock import FileLock

        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):
            parts = _read_copy(folder, narrowed, dtype, source)
            if parts is None:
                parts = _write_copy(folder, narrowed, dtype, source)
    except OSError as err:
        logger.warning("cannot keep a %s copy of the text encoder's layers in %s (streaming them from %s "
                       "instead): %s", _name(dtype), folder, Path(next(iter(narrowed.values())).file).parent, err)
        return index
    copied = {k: {"safetensors_file": str(folder / parts[k]), "weight_name": k, "dtype": _name(dtype)} for k in narrowed}
    return {**index, **copied}


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _source_tensors(index: dict[str, dict]) -> dict[str, SourceTensor]:
    """Every tensor of ``index`` with its stored shape and dtype (read from the shards' headers)."""
    from safetensors import safe_open

    by_file: dict[str, list[str]] = {}
    for key, info in index.items():
        by_file.setdefault(info["safetensors_file"], []).append(key)
    tensors = {}
    for file, keys in by_file.items():
        with safe_open(file, framework="pt") as f:
            for key in keys:
                name = index[key].get("weight_name", key)
                part = f.get_slice(name)
                tensors[key] = SourceTensor(file, name, tuple(part.get_shape()), DTYPES.get(part.get_dtype()))
    return tensors


def _copy_key(tensors: dict[str, SourceTensor], dtype: torch.dtype) -> str:
    """Names the source folder(s) and the dtype: a changed source rewrites the same copy."""
    folders = sorted({str(Path(t.file).resolve().parent) for t in tensors.values()})
    return hashlib.sha256("\0".join([*folders, _name(dtype), str(FORMAT)]).encode()).hexdigest()[:16]


def _fingerprint(tensors: dict[str, SourceTensor]) -> list[list]:
    """``[[name, size, mtime_ns], ...]`` of the source files."""
    rows = []
    for file in sorted({t.file for t in tensors.values()}):
        stat = Path(file).stat()
        rows.append([Path(file).name, stat.st_size, stat.st_mtime_ns])
    return rows


def _read_copy(folder: Path, tensors: dict[str, SourceTensor], dtype: torch.dtype, source: list[list]) -> dict[str, str] | None:
    """The copy's key -> part file name, or None (logged) when it is missing, stale or damaged."""
    if not folder.is_dir():
        return None
    problem = _copy_problem(folder, tensors, dtype, source)
    if problem is None:
        return json.loads((folder / MANIFEST).read_text())["tensors"]
    logger.warning("the %s copy of the text encoder's layers in %s is %s; writing it again", _name(dtype), folder, problem)
    return None


def _copy_problem(folder: Path, tensors: dict[str, SourceTensor], dtype: torch.dtype, source: list[list]) -> str | None:
    """Why the copy in ``folder`` cannot serve ``tensors``, or None when it can."""
    from safetensors import SafetensorError, safe_open

    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("dtype") != _name(dtype):
            return "of another format"
        if manifest.get("source") != source:
            return "stale (its source files changed)"
        parts, sizes = manifest.get("tensors"), manifest.get("parts")
        if not isinstance(parts, dict) or not isinstance(sizes, dict) or set(parts) != set(tensors) \
                or not set(parts.values()) <= set(sizes):
            return "damaged (its manifest does not list the source's tensors)"
        for part, size in sizes.items():
            if not isinstance(part, str) or not PART_NAME.fullmatch(part):
                return f"damaged (its manifest names a part {part!r})"
            if (folder / part).stat().st_size != size:
                return f"damaged ({part} has another size than written)"
            with safe_open(str(folder / part), framework="pt") as f:
                keys = set(f.keys())
                if keys != {k for k, p in parts.items() if p == part}:
                    return f"damaged ({part} holds other tensors than its manifest lists)"
                for key in keys:
                    stored = f.get_slice(key)
                    if tuple(stored.get_shape()) != tensors[key].shape or DTYPES.get(stored.get_dtype()) != dtype:
                        return f"damaged ({part}: {key} has another shape or dtype than the source)"
    except FileNotFoundError as err:
        return f"incomplete ({Path(err.filename or '').name or err} is missing)"
    except (OSError, ValueError, SafetensorError) as err:  # ValueError: JSON
        return f"unreadable ({type(err).__name__}: {first_line(err)})"
    return None


def _write_copy(folder: Path, tensors: dict[str, SourceTensor], dtype: torch.dtype, source: list[list]) -> dict[str, str]:
    """Write the copy (atomically, replacing a stale one); its key -> part file name."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    remove_stale_temps(folder.parent)
    total = sum(t.nbytes(dtype) for t in tensors.values())
    free = shutil.disk_usage(folder.parent).free
    if free < total + SPARE_BYTES:
        raise OSError(f"{total / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free on its disk")
    logger.warning("flowrvs: writing a %s copy of the text encoder's layers once into %s (%.1f GB)",
                   _name(dtype), folder, total / 1e9)
    parts: dict[str, str] = {}
    sizes: dict[str, int] = {}
    by_file: dict[str, list[str]] = {}
    for key, t in tensors.items():
        by_file.setdefault(t.file, []).append(key)
    with atomic_dir(folder) as tmp, tqdm(total=total, unit="B", unit_scale=True, desc="text encoder copy",
                                   disable=None) as bar:
        shard: dict[str, torch.Tensor] = {}

        def flush() -> None:
            name = f"part-{len(sizes):05d}.safetensors"
            save_file(shard, str(tmp / name))
            sizes[name] = (tmp / name).stat().st_size
            parts.update(dict.fromkeys(shard, name))
            shard.clear()

        for file, keys in by_file.items():
            with safe_open(file, framework="pt") as f:
                for key in keys:
                    tensor = f.get_tensor(tensors[key].name).to(dtype)
                    if shard and sum(x.nbytes for x in shard.values()) + tensor.nbytes > PART_BYTES:
                        flush()
                    shard[key] = tensor
                    bar.update(tensor.nbytes)
        if shard:
            flush()
        write_json(tmp / MANIFEST, {"format": FORMAT, "dtype": _name(dtype), "source": source, "parts": sizes,
                                    "tensors": parts})
    return parts

"""Referring-video datasets, one registry: ``open_dataset(name, root, split)``.

Benchmarks (evaluate/score): mevis, ytvos, davis, long-rvos, revos (the last two scored by
:mod:`flowrvs.eval.score_long_benchmarks`); training data only: refcoco.
Every reader is a :class:`~flowrvs.data.base.ReferringVideoDataset` (videos, frame names,
expressions, frames ``(T, H, W, 3)`` uint8, masks ``(T, H, W)`` {0, 1}). Training, evaluation
and the ``score`` command open datasets here and nowhere else; scoring itself takes arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from flowrvs.errors import FlowRVSError

__all__ = ["DatasetEntry", "REGISTRY", "BENCHMARKS", "DEFAULT_SPLITS", "open_dataset"]


def _mevis(root, split, **_):
    from flowrvs.data.mevis import MeViSDataset

    return MeViSDataset(root, split)


def _ytvos(root, split, **_):
    from flowrvs.data.ytvos import RefYouTubeVOSDataset

    return RefYouTubeVOSDataset(root, split)


def _davis(root, split, **_):
    from flowrvs.data.davis import RefDAVISDataset

    return RefDAVISDataset(root, split)


def _long_rvos(root, split, **_):
    from flowrvs.data.long_rvos import LongRVOSDataset

    return LongRVOSDataset(root, split)


def _revos(root, split, **_):
    from flowrvs.data.revos import ReVOSDataset

    return ReVOSDataset(root, split)


def _refcoco(root, split, variant: str | None = None, num_frames: int = 5, seed: int = 0, **_):
    from flowrvs.data.refcoco import RefCOCODataset

    return RefCOCODataset(root, dataset=variant or "refcoco", split=split, num_frames=num_frames, seed=seed)


@dataclass(frozen=True)
class DatasetEntry:
    """How to open one dataset: ``open(root, split, **options)``, its default split (the one a
    benchmark is evaluated on), and whether it is a video benchmark (evaluate/score) or
    training data only (RefCOCO pseudo-videos)."""

    open: Callable
    default_split: str
    benchmark: bool = True


#: dataset name -> :class:`DatasetEntry`.
REGISTRY: dict[str, DatasetEntry] = {
    "mevis": DatasetEntry(_mevis, "valid_u"),
    "ytvos": DatasetEntry(_ytvos, "valid"),
    "davis": DatasetEntry(_davis, "valid"),
    "refcoco": DatasetEntry(_refcoco, "train", benchmark=False),
    "long-rvos": DatasetEntry(_long_rvos, "valid"),
    "revos": DatasetEntry(_revos, "valid"),
}
BENCHMARKS = tuple(name for name, entry in REGISTRY.items() if entry.benchmark)
DEFAULT_SPLITS = {name: REGISTRY[name].default_split for name in BENCHMARKS}


def open_dataset(name: str, root, split: str | None = None, **options):
    """The reader of ``split`` (default: the dataset's :data:`DEFAULT_SPLITS` entry) of dataset
    ``name`` under ``root``. ``options``: RefCOCO's ``variant`` (refcoco, refcoco+, refcocog),
    ``num_frames`` and ``seed`` of its pseudo-videos; the video datasets take none."""
    entry = REGISTRY.get(str(name).lower())
    if entry is None:
        raise FlowRVSError(f"unknown dataset {name!r}; choose one of {', '.join(REGISTRY)}")
    if not Path(root).is_dir():
        raise FlowRVSError(f"dataset root {root} does not exist")
    return entry.open(root, split or entry.default_split, **options)

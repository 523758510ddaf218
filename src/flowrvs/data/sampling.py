"""Training clip sampling over any :class:`ReferringVideoDataset` (torch-free, read-only)."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from flowrvs.data.base import Clip, ReferringVideoDataset
from flowrvs.data.transforms import fit_size, hflip_clip, resize_clip
from flowrvs.errors import FlowRVSError
from flowrvs.io.frames import RESIZE_RULES, WORKING_BOX

MODES = ("local", "global", "mixed")


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _window(n: int, length: int, anchor: int) -> np.ndarray:
    """``length`` consecutive indices centred on ``anchor``; shifted to stay inside ``[0, n)`` when
    ``n >= length``, else covering the whole video with the border frames repeated."""
    start = anchor - length // 2
    start = min(max(start, min(0, n - length)), max(0, n - length))
    return np.clip(np.arange(start, start + length), 0, n - 1)


def _spread(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` sorted indices in ``[0, n)``: one uniform pick in each of ``count`` near-equal
    integer segments (distinct when ``n >= count``); a shorter video is used whole, evenly repeated."""
    if n < count:
        return np.arange(count) * n // count
    edges = np.arange(count + 1) * n // count
    return edges[:-1] + (rng.random(count) * np.diff(edges)).astype(np.int64)


def sample_clip_indices(num_frames_in_video: int, T: int, rng=None, mode: str = "local") -> list[int]:
    """``T`` frame indices in ``[0, num_frames_in_video)``, in time order (non-decreasing).

    local: a contiguous stride-1 window around a random anchor (shifted at the borders; a video
    shorter than ``T`` is padded by repeating its first/last frames).
    global: ``T`` near-equal segments over the whole video, one random frame from each
    (a video shorter than ``T`` is used whole, each frame repeated evenly).
    mixed: ``T // 2`` consecutive neighbours around a random anchor plus ``T - T // 2`` frames
    spread (with jitter) over the rest of the video, sorted; repeats only if the video is shorter than ``T``.
    ``rng`` is a ``numpy.random.Generator`` or a seed.
    """
    n, T = int(num_frames_in_video), int(T)
    if n <= 0:
        raise FlowRVSError("cannot sample a clip from a video with no frames")
    if T <= 0:
        raise FlowRVSError(f"clip length must be positive, got {T}")
    if mode not in MODES:
        raise FlowRVSError(f"unknown sampling mode {mode!r}; expected one of {', '.join(MODES)}")
    rng = _rng(rng)
    if mode == "local":
        idx = _window(n, T, int(rng.integers(n)))
    elif mode == "global":
        idx = _spread(n, T, rng)
    else:
        n_local = T // 2
        n_global = T - n_local
        local = _window(n, n_local, int(rng.integers(n))) if n_local else np.zeros(0, dtype=np.int64)
        rest = np.setdiff1d(np.arange(n), local)
        if len(rest) >= n_global:
            glob = rest[_spread(len(rest), n_global, rng)]
        else:
            glob = _spread(n, n_global, rng)
        idx = np.concatenate([local, glob])
    return sorted(int(i) for i in idx)


class ClipDataset:
    """Training clips drawn from weighted referring-video datasets.

    ``datasets``: ``[(dataset, weight), ...]``. Item ``i`` (for a given ``seed`` and epoch) is
    deterministic: a dataset is drawn by weight, then an expression uniformly within it, then
    ``num_frames`` indices with :func:`sample_clip_indices` (``mode``), frames and mask are
    loaded, resized with :func:`fit_size` into ``size_box`` by ``resize_rule`` (sides multiples of
    ``multiple``; ``"exact"``: the box itself, aspect not kept) and
    flipped left-right with probability ``hflip_p`` (swapping "left"/"right" in the sentence).
    ``len()`` is ``length`` or the total number of expressions; iterating yields items
    ``0 .. len-1``; :meth:`set_epoch` changes the draw. Nothing on disk is written; a missing
    or corrupt frame raises :class:`FlowRVSError` naming it.
    """

    def __init__(
        self,
        datasets: Sequence[tuple[ReferringVideoDataset, float]],
        num_frames: int,
        size_box: tuple[int, int] = WORKING_BOX,
        hflip_p: float = 0.5,
        seed: int = 0,
        mode: str = "mixed",
        multiple: int = 16,
        length: int | None = None,
        resize_rule: str = "oriented",
    ):
        if not datasets:
            raise FlowRVSError("ClipDataset needs at least one dataset")
        if int(num_frames) <= 0:
            raise FlowRVSError(f"num_frames must be positive, got {num_frames}")
        if mode not in MODES:
            raise FlowRVSError(f"unknown sampling mode {mode!r}; expected one of {', '.join(MODES)}")
        if resize_rule not in RESIZE_RULES:
            raise FlowRVSError(f"unknown resize rule {resize_rule!r}; expected one of {', '.join(RESIZE_RULES)}")
        if not 0.0 <= float(hflip_p) <= 1.0:
            raise FlowRVSError(f"hflip_p must be in [0, 1], got {hflip_p}")
        self.datasets: list[ReferringVideoDataset] = []
        self.expressions: list[list] = []
        weights = []
        for ds, w in datasets:
            w = float(w)
            if not w >= 0:
                raise FlowRVSError(f"dataset weight must be >= 0, got {w}")
            if w == 0:
                continue
            if not getattr(ds, "has_masks", False):
                raise FlowRVSError(f"{type(ds).__name__} has no masks; it cannot be used for training")
            exps = ds.all_expressions()
            if not exps:
                raise FlowRVSError(f"{type(ds).__name__} has no expressions")
            self.datasets.append(ds)
            self.expressions.append(exps)
            weights.append(w)
        if not weights:
            raise FlowRVSError("all dataset weights are zero")
        self.weights = np.asarray(weights) / sum(weights)
        self.num_frames = int(num_frames)
        self.size_box = (int(size_box[0]), int(size_box[1]))
        self.hflip_p = float(hflip_p)
        self.seed = int(seed)
        self.mode = mode
        self.multiple = int(multiple)
        self.resize_rule = resize_rule
        self.length = int(length) if length is not None else sum(len(e) for e in self.expressions)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Clip]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> Clip:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        d = int(rng.choice(len(self.datasets), p=self.weights))
        ds = self.datasets[d]
        exps = self.expressions[d]
        exp = exps[int(rng.integers(len(exps)))]
        names = ds.frame_names(exp.video)
        indices = sample_clip_indices(len(names), self.num_frames, rng, self.mode)
        frames = ds.load_frames(exp.video, indices)
        mask = ds.load_mask(exp, indices)
        if mask is None:
            raise FlowRVSError(f"{type(ds).__name__} returned no mask for {exp.key}")
        if mask.shape != frames.shape[:3]:
            raise FlowRVSError(
                f"{exp.key}: mask shape {mask.shape} does not match frames {frames.shape[:3]}"
            )
        size = fit_size(frames.shape[1], frames.shape[2], self.size_box, self.multiple, rule=self.resize_rule)
        frames, mask = resize_clip(frames, mask, size)
        clip = Clip(
            frames=frames,
            mask=mask,
            sentence=exp.sentence,
            video=exp.video,
            exp_id=exp.exp_id,
            frame_names=[names[i] for i in indices],
        )
        if rng.random() < self.hflip_p:
            clip = hflip_clip(clip)
        return clip

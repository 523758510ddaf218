"""What every referring-video dataset reader gives: videos, expressions, frames and masks."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from flowrvs.errors import FlowRVSError


@dataclass(frozen=True)
class Expression:
    """One referring sentence of one video. ``key`` (``<video>_<exp_id>``) identifies it in results."""

    video: str
    exp_id: str
    sentence: str
    obj_ids: tuple = ()
    anno_ids: tuple = ()

    @property
    def key(self) -> str:
        return f"{self.video}_{self.exp_id}"


@dataclass
class Clip:
    """A training or evaluation clip.

    frames: ``(T, H, W, 3)`` uint8 RGB. mask: ``(T, H, W)`` bool, the union of the referred
    objects, or ``None`` where the split has no masks. frame_names: the dataset's names
    (no extension) of the ``T`` frames.
    """

    frames: np.ndarray
    mask: np.ndarray | None
    sentence: str
    video: str = ""
    exp_id: str = ""
    frame_names: list[str] = field(default_factory=list)


class ReferringVideoDataset(abc.ABC):
    """A split of a referring video dataset on disk, read-only."""

    has_masks: bool

    @abc.abstractmethod
    def videos(self) -> list[str]:
        """Video ids of the split, sorted."""

    @abc.abstractmethod
    def frame_names(self, video: str) -> list[str]:
        """Frame names of ``video`` in time order, without extension."""

    @abc.abstractmethod
    def expressions(self, video: str) -> list[Expression]:
        """The referring expressions of ``video``."""

    @abc.abstractmethod
    def load_frames(self, video: str, indices: list[int] | None = None) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 frames (all, or those at ``indices``)."""

    @abc.abstractmethod
    def load_mask(self, expression: Expression, indices: list[int] | None = None) -> np.ndarray | None:
        """``(T, H, W)`` bool union mask of the referred objects, or ``None`` without annotations."""

    def all_expressions(self) -> list[Expression]:
        return [e for v in self.videos() for e in self.expressions(v)]


class IndexedVideoDataset(ReferringVideoDataset):
    """A reader whose meta file is read into ``_frames`` (video -> frame names) and
    ``_expressions`` (video -> expressions) at construction; ``_videos`` is their sorted keys."""

    _frames: dict[str, list[str]]
    _expressions: dict[str, list[Expression]]
    _videos: list[str]

    def _where(self) -> str:
        """How an error names this split (e.g. ``MeViS valid_u (path)``)."""
        return repr(self)

    def _check_video(self, video: str) -> None:
        if video not in self._frames:
            raise FlowRVSError(f"video {video!r} is not in {self._where()}")

    def videos(self) -> list[str]:
        return list(self._videos)

    def frame_names(self, video: str) -> list[str]:
        self._check_video(video)
        return list(self._frames[video])

    def expressions(self, video: str) -> list[Expression]:
        self._check_video(video)
        return list(self._expressions[video])

    def frame_indices(self, video: str, indices=None) -> list[int]:
        """Frame numbers ``0 <= i < T`` of ``video`` at ``indices`` (all when None); a negative
        index counts from the end. FlowRVSError for an unknown video or an index out of range."""
        n = len(self.frame_names(video))
        if indices is None:
            return list(range(n))
        out = []
        for i in indices:
            i = int(i)
            if not -n <= i < n:
                raise FlowRVSError(f"frame index {i} out of range for video {video!r} ({n} frames)")
            out.append(i % n)
        return out

    def frame_names_at(self, video: str, indices=None) -> list[str]:
        """The names of the frames :meth:`frame_indices` selects."""
        selected = self.frame_indices(video, indices)  # checks the video first
        return [self._frames[video][i] for i in selected]

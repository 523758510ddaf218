"""What a generated video is: its objects (attributes, motion, path) and frames, masks and
expressions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SynthObject:
    """One shape of a video: its attributes, motion and path.

    centers: ``(T, 2)`` float (y, x) of the sprite centre per frame (may lie outside the frame).
    tags: the motion words it satisfies (``left``, ``stops``, ``enters``, ...).
    """

    shape: str
    colour: str
    size: str
    texture: str
    side: int
    motion: str
    centers: np.ndarray
    z: int = 0
    tags: tuple[str, ...] = ()

    def attribute(self, key: str) -> str:
        return getattr(self, key)


@dataclass
class SynthVideo:
    """A generated video.

    frames: ``(T, H, W, 3)`` uint8 RGB. masks: ``(N_obj, T, H, W)`` bool, the visible pixels of
    each object. expressions: ``(sentence, obj_ids)`` pairs, ``obj_ids`` sorted object indices.
    kinds: ``appearance``/``motion``/``relation``/``multi`` per expression.
    """

    frames: np.ndarray
    masks: np.ndarray
    expressions: list[tuple[str, tuple[int, ...]]]
    kinds: list[str] = field(default_factory=list)
    objects: list[SynthObject] = field(default_factory=list)
    name: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def union_mask(self, index: int) -> np.ndarray:
        """``(T, H, W)`` bool union of the objects expression ``index`` refers to."""
        ids = list(self.expressions[index][1])
        return self.masks[ids].any(axis=0)

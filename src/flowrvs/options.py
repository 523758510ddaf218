"""The segmentation options, validated once where they enter and passed down unchanged.

:class:`SegmentOptions` gathers what every way of segmenting a video takes (the ``segment``
command, the pipeline's ``__call__``, :func:`flowrvs.pipelines.streaming.stream_segmentation`):
Euler steps, the box frames are resized into, the mask threshold, the window plan of long
videos and how many sentences share a model pass. ``None`` means "the model's setting" for all
but the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.windows import DEFAULT_OVERLAP, check_window


def _whole_number(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FlowRVSError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SegmentOptions:
    """How one video is segmented.

    num_inference_steps: Euler steps, >= 1 (None: the model's, 1). size: ``(h, w)`` box the
    frames are resized into, both sides >= 16 (None: the model's, 480x832). mask_threshold:
    decoder logit above which a pixel is foreground, finite (None: the model's, 0). window:
    frames per window of a long video, ``4k + 1``; 0 runs the whole video in one pass, as the
    public FlowRVS code does; ``None``: the method's plan (FlowRVS: 17-frame windows sharing 4;
    REM: its clips). overlap: frames neighbouring windows share, ``0 <= overlap <= (window - 1)
    / 2`` (None: 4 with windows, 0 without). batch_size: sentences
    per model pass, >= 1. Invalid values raise :class:`FlowRVSError` on construction.
    """

    num_inference_steps: int | None = None
    size: tuple[int, int] | None = None
    mask_threshold: float | None = None
    window: int | None = None
    overlap: int | None = None
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.num_inference_steps is not None:
            _whole_number("num_inference_steps", self.num_inference_steps, 1)
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2:
                raise FlowRVSError(f"size must be (height, width), got {self.size!r}")
            for side in size:
                _whole_number("each side of size", side, 16)
            object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.mask_threshold is not None:
            try:
                threshold = float(self.mask_threshold)
            except (TypeError, ValueError) as err:
                raise FlowRVSError(f"mask_threshold must be a number, got {self.mask_threshold!r}") from err
            if not math.isfinite(threshold):
                raise FlowRVSError(f"mask_threshold must be a finite number, got {threshold}")
            object.__setattr__(self, "mask_threshold", threshold)
        if self.window is None:
            if self.overlap is not None:
                _whole_number("overlap", self.overlap, 0)
        elif self.window == 0 and not isinstance(self.window, bool):
            object.__setattr__(self, "window", 0)
            object.__setattr__(self, "overlap", 0)
        else:
            object.__setattr__(self, "overlap", check_window(self.window, DEFAULT_OVERLAP if self.overlap is None else self.overlap))
        _whole_number("batch_size", self.batch_size, 1)

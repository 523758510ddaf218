"""Long videos in windows: which frames each window covers, and how overlapping logits blend.

Pure index and tensor code, no model in sight. A video of ``N`` frames is cut into windows of
``window = 4k + 1`` frames (the length the Wan VAE takes without padding); neighbours share at
least ``overlap`` frames, and the mask logits of two neighbours are cross-faded over the
frames they share::

    window i      [s_i ............................ e_i)
    window i + 1                     [s_{i+1} .............. e_{i+1})
    weight of i       1   1   1   1   5/6 4/6 3/6 2/6 1/6   0
    weight of i+1     0   0   0   0   1/6 2/6 3/6 4/6 5/6   1   1

Over a shared run of ``L`` frames the later window's weight is ``(j + 1) / (L + 1)`` at the
``j``-th shared frame and the earlier one's is the rest, so the weights of every frame sum to 1
and both windows count in every shared frame. Windows start every ``window - overlap`` frames;
the last one ends on the last frame, moved back towards full length as far as it can go
without reaching into the window before its neighbour, so no frame is ever covered by three
windows. ``window=None`` (or 0) is one window over the whole video:
exactly what whole-video inference does.

REM's clips (:func:`plan_clips`) are a second kind of plan: non-overlapping clips of one
length from frame 0, and a tail clip re-run on the last full length of frames whose leading
``context`` frames (already covered) get weight 0, so only its new frames count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from flowrvs.errors import FlowRVSError

# Chosen on long synthetic videos with the shipped model (docs/benchmarks.md, "Long videos"):
# 17-frame windows scored above whole-video inference, and an 8-frame overlap added little for
# 25% more compute. 17 frames is also the public code's training clip.
DEFAULT_WINDOW = 17
DEFAULT_OVERLAP = 4
# REM's clip lengths, longest first: a video runs in clips of the longest that fits it
REM_CLIP_LENGTHS = (73, 61, 49, 37, 25, 17, 9)


@dataclass(frozen=True)
class Window:
    """Frames ``[start, stop)`` of the video, the ``index``-th window of its plan.

    context: leading frames the window is run on for context only (already owned by the
    window before it); their logits get weight 0 in the blend.
    """

    index: int
    start: int
    stop: int
    context: int = 0

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def frames(self) -> range:
        return range(self.start, self.stop)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FlowRVSError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def check_window(window: int, overlap: int) -> int:
    """Check a window length (``4k + 1`` frames) and its ``overlap``; return the overlap as an int.

    Raises :class:`FlowRVSError` for a window that is not ``4k + 1`` or an overlap outside
    ``0 <= overlap <= (window - 1) / 2`` (more would let three windows meet on one frame).
    """
    window = _check_int("window", window, 1)
    if (window - 1) % 4:
        raise FlowRVSError(f"window must be 4k+1 frames (5, 9, 17, 33, 65, ...) or 0 for the whole video, got {window}")
    overlap = _check_int("overlap", overlap, 0)
    if 2 * overlap > window - 1:
        raise FlowRVSError(f"overlap must be at most (window - 1) / 2 = {(window - 1) // 2} frames, got {overlap}")
    return overlap


def plan_windows(num_frames: int, window: int | None = None, overlap: int = 0) -> list[Window]:
    """The windows that cover ``num_frames`` frames.

    window: frames per window, ``4k + 1`` (5, 9, 17, 33, 65, ...); ``None`` or 0 means one window
    of all frames. overlap: frames that neighbouring windows share at least, ``0 <= overlap <=
    (window - 1) / 2`` (more would let three windows meet on one frame).

    Windows start every ``window - overlap`` frames and hold ``window`` frames. The last one
    ends on the last frame: moved back to full length where that does not reach into the window
    before its neighbour (it then shares more than ``overlap`` frames with the neighbour), else
    shorter. A short window (also the single window of a video shorter than ``window``) is
    padded to ``4k + 1`` by :func:`flowrvs.io.frames.frames_to_tensor` like any whole video.
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    if window is None or (window == 0 and not isinstance(window, bool)):
        return [Window(0, 0, num_frames)]
    overlap = check_window(window, overlap)
    if num_frames <= window:
        return [Window(0, 0, num_frames)]
    stride = window - overlap
    starts = [0]
    while starts[-1] + window < num_frames:
        starts.append(starts[-1] + stride)
    before_neighbour = starts[-3] + window if len(starts) >= 3 else 0
    starts[-1] = max(min(starts[-1], num_frames - window), before_neighbour)
    return [Window(i, s, min(s + window, num_frames)) for i, s in enumerate(starts)]


def plan_clips(num_frames: int, lengths: Sequence[int] = REM_CLIP_LENGTHS) -> list[Window]:
    """REM's clips of ``num_frames`` frames.

    The clip length ``L`` is the longest of ``lengths`` that is ``<= num_frames`` (the shortest
    when none is: the single window is then padded up to it, see the pipeline's
    ``min_frames``). Clips ``[0, L), [L, 2L), ...`` while they fit; a remainder of ``r`` frames
    is a tail clip of the last ``L`` frames with ``context = L - r``, so only its last ``r``
    frames are kept.
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    fitting = [n for n in lengths if n <= num_frames]
    if not fitting:
        return [Window(0, 0, num_frames)]
    length = max(fitting)
    plan = [Window(i, s, s + length) for i, s in enumerate(range(0, num_frames - length + 1, length))]
    remainder = num_frames - plan[-1].stop
    if remainder:
        plan.append(Window(len(plan), num_frames - length, num_frames, context=length - remainder))
    return plan


def blend_weights(plan: list[Window]) -> list[torch.Tensor]:
    """Per window, the ``(len(window),)`` float32 weights in ``[0, 1]`` of its frames in the blend.

    1 where no other window covers a frame; a linear cross-fade where two neighbours share
    frames (see the module docstring); where the later window holds the shared frames as
    ``context``, 0 for it and 1 for the earlier one. Summed over the windows that cover it,
    every frame's weight is 1.
    """
    weights = [torch.ones(len(w)) for w in plan]
    for i in range(len(plan) - 1):
        a, b = plan[i], plan[i + 1]
        shared = a.stop - b.start
        if shared <= 0:
            continue
        if b.context:
            if b.context != shared:
                raise ValueError(f"window {b.index} has {b.context} context frames but shares {shared} with window {a.index}")
            weights[i + 1][:shared] = 0.0
            continue
        ramp = torch.arange(1, shared + 1, dtype=torch.float32) / (shared + 1)
        weights[i + 1][:shared] *= ramp
        weights[i][len(a) - shared :] *= 1 - ramp
    return weights


class LogitBlender:
    """Blends per-window mask logits into per-frame logits, handing each frame on when final.

    Feed :meth:`add` the logits of the windows of ``plan`` in order; it returns the frames that no
    later window touches, as ``(frame_index, logits (K, H, W))`` in frame order, each frame
    exactly once. Between calls it holds only the frames the next window shares with the last
    one (the overlap), as a running weighted sum.
    """

    def __init__(self, plan: list[Window]):
        if not plan:
            raise ValueError("LogitBlender needs a plan with at least one window")
        self.plan = list(plan)
        self._weights = blend_weights(self.plan)
        self._next = 0
        self._pending: torch.Tensor | None = None  # (K, shared, H, W) weighted sum of the overlap

    @property
    def done(self) -> bool:
        """True once every window has been added (and so every frame handed on)."""
        return self._next == len(self.plan)

    @property
    def held_frames(self) -> int:
        """Frames held between calls (the overlap with the next window)."""
        return 0 if self._pending is None else int(self._pending.shape[1])

    def add(self, logits: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """Take the next window's logits ``(K, T, H, W)`` (K sentences; ``T >= len(window)``,
        trailing 4k+1 padding frames are dropped) and return the frames now final."""
        if self.done:
            raise ValueError(f"all {len(self.plan)} windows were already added")
        win = self.plan[self._next]
        if logits.ndim != 4 or logits.shape[1] < len(win):
            raise ValueError(f"window {win.index} needs logits (K, >={len(win)}, H, W), got {tuple(logits.shape)}")
        logits = logits[:, : len(win)]
        weights = self._weights[self._next]
        if bool((weights == 1).all()):
            weighted = logits  # no neighbour shares its frames (whole-video mode): no copy
        else:
            weighted = logits * weights.to(logits.device, logits.dtype).view(1, -1, 1, 1)
        if self._pending is not None:
            if self._pending.shape[0] != logits.shape[0] or self._pending.shape[2:] != logits.shape[2:]:
                raise ValueError(f"window {win.index} logits {tuple(logits.shape)} do not match the previous window's")
            shared = self._pending.shape[1]
            weighted[:, :shared] += self._pending
        following = self.plan[self._next + 1] if self._next + 1 < len(self.plan) else None
        final_stop = following.start if following is not None else win.stop
        cut = max(final_stop - win.start, 0)
        out = [(win.start + j, weighted[:, j]) for j in range(cut)]
        if following is not None and following.start < win.stop:
            self._pending = weighted[:, cut:].clone()
        else:
            self._pending = None
        self._next += 1
        return out


def iter_windows(
    stream: Iterable[tuple[str, np.ndarray]], plan: Sequence[Window]
) -> Iterator[tuple[Window, np.ndarray]]:
    """Read ``stream``'s frames in the windows of ``plan`` (:func:`plan_windows`).

    Yields ``(window, frames)`` with ``frames`` a new ``(len(window), H, W, 3)`` uint8 array, in
    plan order. Frames are pulled from the stream only as the window being built needs them, and
    between windows only the frames the next window shares with this one are kept, so the
    generator holds at most ``len(window) + overlap`` frames whatever the length of the video.
    """
    frames = iter(stream)
    position = 0  # index of the next frame the stream will give
    carried: np.ndarray | None = None  # frames [carried_start, position) shared with the next window
    carried_start = 0
    for i, win in enumerate(plan):
        if i and win.start < plan[i - 1].start:
            raise ValueError(f"window {i} starts before window {i - 1}: plan out of order")
        out: np.ndarray | None = None
        filled = 0
        if carried is not None and win.start < position:
            keep = carried[win.start - carried_start :]
            filled = len(keep)
            out = np.empty((len(win), *keep.shape[1:]), dtype=np.uint8)
            out[:filled] = keep
        carried = keep = None
        while position < win.stop:
            try:
                _, frame = next(frames)
            except StopIteration as err:
                raise FlowRVSError(
                    f"the video ended after {position} frames; window {i} needs frames up to {win.stop}"
                ) from err
            position += 1
            if position <= win.start:
                continue  # before the window (a plan with gaps)
            if out is None:
                out = np.empty((len(win), *frame.shape), dtype=np.uint8)
            out[filled] = frame
            filled += 1
        following = plan[i + 1] if i + 1 < len(plan) else None
        if following is not None and following.start < win.stop:
            carried_start = max(following.start, win.start)
            carried = out[carried_start - win.start :].copy()
        yield win, out

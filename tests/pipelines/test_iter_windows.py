"""Tests for flowrvs.pipelines.windows.iter_windows: a stream's frames read window by window, lazily."""

from __future__ import annotations

import numpy as np
import pytest

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.windows import iter_windows, plan_windows
from helpers.videos import peak_traced_bytes


class CountingStream:
    """(name, frame) pairs of ``num_frames`` fresh frames whose pixels are the frame index."""

    def __init__(self, num_frames: int, h: int = 64, w: int = 64):
        self.num_frames, self.h, self.w = num_frames, h, w
        self.pulled = 0

    def __iter__(self):
        for i in range(self.num_frames):
            self.pulled += 1
            yield f"{i:05d}", np.full((self.h, self.w, 3), i % 256, dtype=np.uint8)


@pytest.mark.parametrize("num_frames,window,overlap", [(100, 17, 4), (40, 17, 4), (31, 9, 4), (12, 17, 4), (9, None, 0)])
def test_iter_windows_gives_each_windows_frames_reading_lazily(num_frames, window, overlap):
    plan = plan_windows(num_frames, window, overlap)
    stream = CountingStream(num_frames, 4, 4)
    got = []
    for win, frames in iter_windows(stream, plan):
        assert stream.pulled == win.stop  # never reads ahead of the window it builds
        assert frames.shape == (len(win), 4, 4, 3) and frames.dtype == np.uint8
        assert np.array_equal(frames[:, 0, 0, 0], np.arange(win.start, win.stop) % 256)
        got.append(win)
    assert got == plan


def test_iter_windows_holds_a_bounded_number_of_frames_whatever_the_length():
    h = w = 64
    frame_bytes = h * w * 3

    def peak_frames(num_frames: int) -> float:
        plan = plan_windows(num_frames, 17, 4)

        def consume():
            for win, frames in iter_windows(CountingStream(num_frames, h, w), plan):
                assert len(frames) == len(win)
                del frames

        return peak_traced_bytes(consume) / frame_bytes

    short, long = peak_frames(3 * 13 + 4), peak_frames(12 * 13 + 4)  # 3 and 12 windows
    assert long <= 17 + 4 + 2  # one window, the overlap it passes on, the frame being read
    assert long <= short + 0.5  # flat in the number of frames


def test_iter_windows_short_stream_is_an_error():
    with pytest.raises(FlowRVSError, match="ended after 20 frames"):
        list(iter_windows(CountingStream(20, 2, 2), plan_windows(30, 17, 4)))

"""Tests for flowrvs.io.overlay: masks drawn over frames, videos side by side."""

from __future__ import annotations

import numpy as np
import pytest

from flowrvs.io.overlay import PALETTE, overlay_masks, side_by_side
from helpers.videos import distinct_frames, smooth_frames


def test_overlay_colours_differ_and_unmasked_pixels_unchanged():
    frames = smooth_frames(2, 40, 40)
    a = np.zeros((2, 40, 40), bool)
    b = np.zeros((2, 40, 40), bool)
    a[:, 5:15, 5:15] = True
    b[:, 25:35, 25:35] = True
    out = overlay_masks(frames, [a, b], alpha=0.5)
    assert out.shape == frames.shape and out.dtype == np.uint8
    outside = ~(a | b)
    assert np.array_equal(out[outside], frames[outside])
    assert np.array_equal(out[0, 5, 5], np.array(PALETTE[0], np.uint8))  # contour pixel
    assert np.array_equal(out[0, 25, 25], np.array(PALETTE[1], np.uint8))
    inner_a = out[0, 9, 9].astype(int)
    inner_b = out[0, 29, 29].astype(int)
    expect_a = np.rint(0.5 * frames[0, 9, 9] + 0.5 * np.array(PALETTE[0])).astype(int)
    assert np.abs(inner_a - expect_a).max() <= 1
    assert not np.array_equal(inner_a, inner_b)
    assert not np.array_equal(out[0, 9, 9], frames[0, 9, 9])
    assert np.array_equal(frames, smooth_frames(2, 40, 40))  # input untouched


def test_overlay_palette_and_no_masks():
    assert len(PALETTE) >= 10 and len(set(PALETTE)) == len(PALETTE)
    frames = distinct_frames(2, 6, 6)
    assert np.array_equal(overlay_masks(frames, []), frames)
    masks = [np.ones((2, 6, 6), bool) for _ in range(len(PALETTE) + 1)]
    out = overlay_masks(frames, masks, alpha=1.0)
    # the last prompt, number len(PALETTE), wraps round to colour 0 and is drawn on top
    assert np.array_equal(out[0, 3, 3], np.array(PALETTE[0], np.uint8))


def test_side_by_side():
    a = distinct_frames(3, 5, 4)
    b = distinct_frames(3, 5, 7)
    out = side_by_side(a, b)
    assert out.shape == (3, 5, 11, 3)
    assert np.array_equal(out[:, :, :4], a) and np.array_equal(out[:, :, 4:], b)
    with pytest.raises(ValueError):
        side_by_side(a, distinct_frames(2, 5, 4))




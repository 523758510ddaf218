"""Generating one synthetic video in memory (`flowrvs.data.synth.generate`)."""

from __future__ import annotations

import numpy as np
import pytest

from flowrvs.data.synth.generate import DEFAULT_FRAMES, DEFAULT_SIZE, generate_video, parse_mix, parse_size
from flowrvs.data.synth.grammar import MAX_EXPRESSIONS, MIN_EXPRESSIONS
from flowrvs.data.synth.scene import MAX_OBJECTS, MIN_OBJECTS
from flowrvs.errors import FlowRVSError


def test_generate_video_arrays():  # its speed: benchmarks/micro_speed.py
    video = generate_video(0)
    t, h, w = DEFAULT_FRAMES, *DEFAULT_SIZE
    assert video.frames.shape == (t, h, w, 3) and video.frames.dtype == np.uint8
    n = len(video.objects)
    assert MIN_OBJECTS <= n <= MAX_OBJECTS
    assert video.masks.shape == (n, t, h, w) and video.masks.dtype == bool
    assert MIN_EXPRESSIONS <= len(video.expressions) <= MAX_EXPRESSIONS
    assert len(video.kinds) == len(video.expressions)
    # visible masks never overlap (z-order) and each object shows up somewhere
    assert video.masks.sum(axis=0).max() <= 1
    assert video.masks.any(axis=(1, 2, 3)).all()
    # a seed and a generator made from it give the same video
    again = generate_video(np.random.default_rng(0))
    assert np.array_equal(again.frames, video.frames) and again.expressions == video.expressions


def test_library_validation():
    for kwargs in (dict(frames=0), dict(size=(15, 64)), dict(size="64"), dict(size=(64, 5000)), dict(mix="motion")):
        with pytest.raises(FlowRVSError):
            generate_video(0, **kwargs)
    with pytest.raises(FlowRVSError):
        generate_video(-1)
    assert parse_size("48x80") == (48, 80)
    assert parse_size((17, 33)) == (17, 33)  # not a multiple of 16: allowed
    mix = parse_mix("appearance=3,motion=1")
    assert mix == {"appearance": 0.75, "motion": 0.25, "relation": 0.0, "multi": 0.0}

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


def test_returning_objects_leave_and_come_back():
    """``returns=1``: every object starts in the frame, is wholly out for a stretch in the middle
    and is back by the last frame; the sentences still single out their objects; 0 changes nothing."""
    from flowrvs.data.synth.grammar import resolve

    video = generate_video(5, frames=40, size=(48, 80), returns=1.0)
    for obj, masks in zip(video.objects, video.masks):
        assert obj.motion == "return" and "enters" not in obj.tags and "leaves" not in obj.tags
        y, x = obj.centers[:, 0], obj.centers[:, 1]
        inside = (y > 0) & (y < 48) & (x > 0) & (x < 80)
        assert inside[0] and inside[-1] and not inside.all()
        out = np.flatnonzero(~masks.any(axis=(1, 2)))
        assert out.size and 0 < out[0] and out[-1] < len(masks) - 1  # absent in the middle only
    for sentence, ids in video.expressions:
        assert resolve(video, sentence) == ids
    plain = generate_video(5, frames=40, size=(48, 80))
    assert np.array_equal(generate_video(5, frames=40, size=(48, 80), returns=0.0).frames, plain.frames)
    assert all(o.motion != "return" for o in plain.objects)
    assert all(o.motion != "return" for o in generate_video(5, frames=4, returns=1.0).objects)  # too short
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(FlowRVSError):
            generate_video(0, returns=bad)

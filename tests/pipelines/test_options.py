"""SegmentOptions: validated once where they enter (the CLI's flags or the call), passed down unchanged."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from flowrvs.apps.commands.common import add_segment_options, segment_options
from flowrvs.errors import FlowRVSError
from flowrvs.options import SegmentOptions
from flowrvs.pipelines.streaming import stream_segmentation
from flowrvs.pipelines.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW


def test_defaults_and_whole_video():
    options = SegmentOptions()
    assert (options.num_inference_steps, options.size, options.mask_threshold) == (None, None, None)
    assert (options.window, options.overlap, options.batch_size) == (None, None, 1)  # the method's plan
    assert SegmentOptions(window=DEFAULT_WINDOW).overlap == DEFAULT_OVERLAP == 4
    whole = SegmentOptions(window=0, overlap=3)
    assert whole.window == 0 and whole.overlap == 0
    assert SegmentOptions(size=[32, 48]).size == (32, 48)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.window = 9


@pytest.mark.parametrize("values, message", [
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"num_inference_steps": 1.5}, "num_inference_steps"),
    ({"size": (8, 48)}, "size"),
    ({"size": (32,)}, "size"),
    ({"mask_threshold": float("nan")}, "mask_threshold"),
    ({"mask_threshold": "high"}, "mask_threshold"),
    ({"window": 8}, r"4k\+1"),
    ({"window": 9, "overlap": 5}, "overlap"),
    ({"window": 9, "overlap": -1}, "overlap"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_values_are_user_errors(values, message):
    with pytest.raises(FlowRVSError, match=message):
        SegmentOptions(**values)


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_segment_options(parser)
    return segment_options(parser.parse_args(list(argv)))


def test_the_flags_and_their_defaults():
    assert _parse() == SegmentOptions()
    assert _parse("--steps", "2", "--size", "32x48", "--mask-threshold", "-0.5", "--window", "9", "--overlap", "2",
                  "--batch-size", "3") == SegmentOptions(2, (32, 48), -0.5, 9, 2, 3)
    assert _parse("--window", "0").window == 0
    with pytest.raises(FlowRVSError, match="--steps"):
        _parse("--steps", "0")
    with pytest.raises(FlowRVSError, match="--overlap"):
        _parse("--window", "9", "--overlap", "7")


def test_the_stream_runs_as_the_options_say(tiny_pipe):
    frames = np.random.default_rng(0).integers(0, 256, (25, 16, 16, 3), dtype=np.uint8)
    stream = stream_segmentation(tiny_pipe, frames, "a dog", SegmentOptions(size=(16, 16), window=9, overlap=2))
    assert [(w.start, w.stop) for w in stream.plan] == [(0, 9), (7, 16), (14, 23), (16, 25)]
    assert stream.working_size == (16, 16) and stream.prompts == ["a dog"]
    assert (stream.height, stream.width, len(stream)) == (16, 16, 25)
    items = list(stream)
    assert [item.index for item in items] == list(range(25)) and items[0].masks.shape == (1, 16, 16)
    assert items[0].logits is None
    whole = stream_segmentation(tiny_pipe, frames, "a dog", SegmentOptions(size=(16, 16), window=0))
    assert len(whole.plan) == 1

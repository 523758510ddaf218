"""COCO RLE round trip, and the NumPy 2 notice of pycocotools silenced only around our calls."""

from __future__ import annotations

import importlib
import warnings

import numpy as np

import flowrvs.io.masks as rle


def test_round_trip_without_warnings_and_without_touching_the_callers_filters():
    before = list(warnings.filters)
    importlib.reload(rle)
    assert warnings.filters == before  # importing sets no process-wide filter
    mask = np.zeros((7, 9), bool)
    mask[2:5, 1:8] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning from pycocotools would fail here
        assert np.array_equal(rle.decode_rle(rle.encode_rle(mask)), mask)
        counts = [9] + [3, 4] * 6 + [3, 9]  # column-major runs of the same mask, uncompressed
        assert np.array_equal(rle.decode_rle({"size": [7, 9], "counts": counts}), mask)
    assert warnings.filters == before

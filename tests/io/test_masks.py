"""Tests for flowrvs.io.masks: 0/255 mask PNGs, and the COCO RLE round trip with the NumPy 2
notice of pycocotools silenced only around our calls."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
from PIL import Image

import flowrvs.io.masks as rle
from flowrvs.io.masks import write_mask_pngs


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


def test_write_mask_pngs(tmp_path):
    rng = np.random.default_rng(1)
    masks = rng.random((3, 9, 11)) > 0.5
    names = ["00010", "00002", "frame_b"]
    folder = tmp_path / "masks" / "prompt0"
    write_mask_pngs(folder, masks, names)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.png" for n in names)
    for mask, name in zip(masks, names):
        with Image.open(folder / f"{name}.png") as img:
            assert img.mode == "L"
            arr = np.asarray(img)
        assert set(np.unique(arr).tolist()) <= {0, 255}
        assert np.array_equal(arr == 255, mask)


def test_write_mask_pngs_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError):
        write_mask_pngs(tmp_path, np.zeros((2, 4, 4), bool), ["a"])




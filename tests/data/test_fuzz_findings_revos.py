"""Regression test of what benchmarks/fuzz.py found in the ReVOS reader (issue 24, point 4)."""

from __future__ import annotations

import json

import pytest

from flowrvs.data.revos import ReVOSDataset
from flowrvs.errors import FlowRVSError
from helpers.long_benchmarks import make_revos


@pytest.mark.parametrize("size", [[None, 4], [10**12, 10**12], "64x64"])  # int(None); a mask of 10^24 pixels
def test_a_bad_rle_size_in_mask_dict_is_one_line(tmp_path, size):
    root = make_revos(tmp_path)
    path = root / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["21"][0]["size"] = size
    path.write_text(json.dumps(masks))
    dataset = ReVOSDataset(root, "valid")
    expression = next(e for e in dataset.all_expressions() if 21 in e.anno_ids)
    with pytest.raises(FlowRVSError, match="bad RLE") as err:
        dataset.load_mask(expression)
    assert "\n" not in str(err.value)


def test_a_bad_rle_size_in_the_foreground_masks_is_one_line(tmp_path):
    root = make_revos(tmp_path)
    path = root / "mask_dict_foreground.json"
    masks = json.loads(path.read_text())
    masks["MeViS/vid2"]["masks_rle"][0]["size"] = [2**40, 3]
    path.write_text(json.dumps(masks))
    with pytest.raises(FlowRVSError, match="bad RLE"):
        ReVOSDataset(root, "valid").load_foreground("MeViS/vid2")

"""Regression test of what benchmarks/fuzz.py found in the MeViS reader (issue 24, point 4)."""

from __future__ import annotations

import json

import pytest

from flowrvs.data.mevis import MeViSDataset
from flowrvs.errors import FlowRVSError
from helpers.mevis import make_fake_mevis


@pytest.mark.parametrize("edit", [
    lambda rles: rles[0].update(size=[None, "x"]),  # was a TypeError/ValueError out of int()
    lambda rles: rles[0].update(size=[10**12, 10**12]),  # would allocate the mask before decoding it
    lambda rles: rles[0].update(counts="0"),  # short: pycocotools decoded uninitialised memory
    lambda rles: rles.__setitem__(0, 7),  # not an RLE at all
])
def test_a_bad_rle_in_mask_dict_is_one_line(tmp_path, edit):
    root = make_fake_mevis(tmp_path)
    path = root / "valid_u" / "mask_dict.json"
    masks = json.loads(path.read_text())
    edit(masks["1"])
    path.write_text(json.dumps(masks))
    dataset = MeViSDataset(root, "valid_u")
    expression = next(e for e in dataset.all_expressions() if "1" in map(str, e.anno_ids))
    with pytest.raises(FlowRVSError, match="bad RLE for anno_id 1 frame 0") as err:
        dataset.load_mask(expression)
    assert "\n" not in str(err.value)


def test_a_mask_dict_entry_that_is_not_a_list_is_one_line(tmp_path):
    root = make_fake_mevis(tmp_path)
    path = root / "valid_u" / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["1"] = 5  # was a TypeError from len()
    path.write_text(json.dumps(masks))
    dataset = MeViSDataset(root, "valid_u")
    expression = next(e for e in dataset.all_expressions() if "1" in map(str, e.anno_ids))
    with pytest.raises(FlowRVSError, match="has no list of masks"):
        dataset.load_mask(expression)

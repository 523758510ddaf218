"""The ReVOS reader on a fake folder in the published layout (RLE masks, foreground, type_id)."""

import copy
import json

import numpy as np
import pytest

from flowrvs.data import open_dataset
from flowrvs.data.base import IndexedVideoDataset
from flowrvs.data.revos import ReVOSDataset, check_video_id
from flowrvs.errors import FlowRVSError
from helpers.long_benchmarks import H, RV_EXPRESSIONS, RV_FRAMES, W, make_revos, rv_foreground, rv_truth


@pytest.fixture
def root(tmp_path):
    return make_revos(tmp_path / "revos")


def test_index_and_kinds(root):
    ds = open_dataset("revos", root)
    assert isinstance(ds, ReVOSDataset) and isinstance(ds, IndexedVideoDataset)
    assert ds.split == "valid" and ds.has_masks
    assert ds.videos() == ["MeViS/vid2", "UVO/all/vid1"]  # ids of several path components
    exps = ds.expressions("UVO/all/vid1")
    assert [ds.kind(e) for e in exps] == ["referring", "reasoning", "no-target", "referring"]
    assert exps[1].anno_ids == (11, 12) and exps[2].anno_ids == () and exps[2].obj_ids == ()
    assert exps[1].key == "UVO/all/vid1_1"
    frames = ds.load_frames("MeViS/vid2", [3])
    assert frames.shape == (1, H, W, 3)


def test_union_masks_nulls_no_target_and_foreground(root):
    ds = ReVOSDataset(root, "valid")
    assert ds._mask_dict is None and ds._foreground is None  # read on first use
    for expr in ds.all_expressions():
        mask = ds.load_mask(expr)
        assert mask.dtype == bool and mask.shape == (len(RV_FRAMES[expr.video]), H, W)
        np.testing.assert_array_equal(mask, rv_truth(expr.video, expr.exp_id))
    assert not ds.load_mask(ds.expressions("UVO/all/vid1")[0])[2].any()  # null RLE: absent
    assert not ds.load_mask(ds.expressions("MeViS/vid2")[1]).any()  # no-target
    for vid in RV_FRAMES:
        np.testing.assert_array_equal(ds.load_foreground(vid), rv_foreground(vid))
    np.testing.assert_array_equal(ds.load_foreground("UVO/all/vid1", [5, 0]), rv_foreground("UVO/all/vid1")[[5, 0]])
    np.testing.assert_array_equal(ds.load_mask(ds.expressions("UVO/all/vid1")[1], [4]),
                                  rv_truth("UVO/all/vid1", "1")[[4]])


def test_split_without_masks(root):
    (root / "mask_dict.json").unlink()
    ds = ReVOSDataset(root, "valid")
    assert not ds.has_masks and ds.load_mask(ds.expressions("MeViS/vid2")[0]) is None


def test_missing_pieces_are_named(root):
    with pytest.raises(FlowRVSError, match="meta_expressions_train_.json"):
        ReVOSDataset(root, "train")
    (root / "mask_dict_foreground.json").unlink()
    ds = ReVOSDataset(root, "valid")
    with pytest.raises(FlowRVSError, match="mask_dict_foreground.json is missing"):
        ds.load_foreground("MeViS/vid2")
    data = json.loads((root / "mask_dict.json").read_text())
    data["21"] = data["21"][:2]
    (root / "mask_dict.json").write_text(json.dumps(data))
    with pytest.raises(FlowRVSError, match="anno_id 21 of MeViS/vid2_0"):
        ReVOSDataset(root, "valid").load_mask(ds.expressions("MeViS/vid2")[0])


@pytest.mark.parametrize("bad", ["../x", "a/b", ".."])
def test_bad_expression_id_refused(tmp_path, bad):
    exps = copy.deepcopy(RV_EXPRESSIONS)
    exps["MeViS/vid2"][bad] = exps["MeViS/vid2"].pop("0")
    with pytest.raises(FlowRVSError, match="bad expression id"):
        ReVOSDataset(make_revos(tmp_path, expressions=exps), "valid")


@pytest.mark.parametrize("bad", ["../x", "UVO/../../x", "/etc/x", "a//b", "a/", "a\\b", ""])
def test_bad_video_ids_refused(bad):
    with pytest.raises(FlowRVSError, match="bad video id"):
        check_video_id(bad, "meta.json")
    assert check_video_id("UVO/all/-fbscFfkh4M", "meta.json") == "UVO/all/-fbscFfkh4M"


def test_bad_type_id_refused(tmp_path):
    exps = copy.deepcopy(RV_EXPRESSIONS)
    exps["MeViS/vid2"]["0"]["type_id"] = 3
    with pytest.raises(FlowRVSError, match="type_id 3"):
        ReVOSDataset(make_revos(tmp_path, expressions=exps), "valid")

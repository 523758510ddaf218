"""The Long-RVOS reader on a fake split in the published layout (one PNG per object and frame)."""

import copy
import json

import numpy as np
import pytest

from flowrvs.data import open_dataset
from flowrvs.data.base import IndexedVideoDataset
from flowrvs.data.long_rvos import LongRVOSDataset
from flowrvs.errors import FlowRVSError
from helpers.long_benchmarks import H, LR_EXPRESSIONS, LR_FRAMES, W, lr_truth, make_long_rvos


@pytest.fixture
def root(tmp_path):
    return make_long_rvos(tmp_path / "long_rvos")


def test_index_and_types(root):
    ds = open_dataset("long-rvos", root)
    assert isinstance(ds, LongRVOSDataset) and isinstance(ds, IndexedVideoDataset)
    assert ds.split == "valid" and ds.has_masks
    assert ds.videos() == ["vidA", "vidB"]
    assert ds.frame_names("vidA") == LR_FRAMES["vidA"]
    exps = ds.expressions("vidA")
    assert [e.exp_id for e in exps] == ["0", "1", "2", "3"]
    assert [e.obj_ids for e in exps] == [("1",), ("2",), ("1", "2"), ()]
    assert [ds.kind(e) for e in exps] == ["dynamic", "static", "hybrid", "static"]
    assert exps[2].key == "vidA_2" and exps[0].sentence == "the dog that runs out"
    assert ds.frame_shape("vidB") == (H, W)
    frames = ds.load_frames("vidB", [4, 0])
    assert frames.shape == (2, H, W, 3) and frames.dtype == np.uint8


def test_masks_objects_leaving_entering_and_no_target(root):
    ds = LongRVOSDataset(root, "valid")
    for expr in ds.all_expressions():
        mask = ds.load_mask(expr)
        assert mask.dtype == bool and mask.shape == (len(LR_FRAMES[expr.video]), H, W)
        np.testing.assert_array_equal(mask, lr_truth(expr.video, expr.exp_id))
    leaving = ds.expressions("vidA")[0]
    assert not ds.load_mask(leaving)[4:].any()  # missing PNGs: the object is absent
    assert not ds.load_mask(ds.expressions("vidA")[3]).any()  # no-target: empty everywhere
    np.testing.assert_array_equal(ds.load_mask(leaving, [5, 1]), lr_truth("vidA", "0")[[5, 1]])
    with pytest.raises(FlowRVSError, match="out of range"):
        ds.load_mask(leaving, [7])


def test_split_without_annotations(tmp_path):
    ds = LongRVOSDataset(make_long_rvos(tmp_path, "test", annotations=False), "test")
    assert not ds.has_masks and ds.load_mask(ds.expressions("vidA")[0]) is None


def _with(vid, exp_id, **fields):
    exps = copy.deepcopy(LR_EXPRESSIONS)
    exps[vid][exp_id].update(fields)
    return exps


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ""])
def test_bad_names_refused(tmp_path, bad):
    exps = copy.deepcopy(LR_EXPRESSIONS)
    exps["vidA"][bad] = exps["vidA"].pop("0")
    root = make_long_rvos(tmp_path, expressions=exps)
    with pytest.raises(FlowRVSError, match="bad expression id"):
        LongRVOSDataset(root, "valid")


def test_bad_object_id_frame_and_type_refused(tmp_path):
    root = make_long_rvos(tmp_path / "a", expressions=_with("vidA", "0", obj_id="../x"))
    with pytest.raises(FlowRVSError, match="bad object id '../x'"):
        LongRVOSDataset(root, "valid")
    root = make_long_rvos(tmp_path / "b", expressions=_with("vidA", "0", type="moving"))
    with pytest.raises(FlowRVSError, match="type 'moving'"):
        LongRVOSDataset(root, "valid")
    meta = root / "valid" / "meta_expressions.json"
    data = json.loads(meta.read_text())
    data["videos"]["vidA"]["expressions"]["0"]["type"] = "static"
    data["videos"]["vidA"]["frames"][0] = "../../etc"
    meta.write_text(json.dumps(data))
    with pytest.raises(FlowRVSError, match="bad frame name"):
        LongRVOSDataset(root, "valid")
    data["videos"]["../v"] = data["videos"].pop("vidA")
    data["videos"]["../v"]["frames"][0] = "00000"
    meta.write_text(json.dumps(data))
    with pytest.raises(FlowRVSError, match="bad video id"):
        LongRVOSDataset(root, "valid")
    with pytest.raises(FlowRVSError, match="unknown Long-RVOS split 'val'"):
        LongRVOSDataset(root, "val")


def test_missing_type_is_an_error_only_when_asked(tmp_path):
    exps = copy.deepcopy(LR_EXPRESSIONS)
    del exps["vidB"]["0"]["type"]
    ds = LongRVOSDataset(make_long_rvos(tmp_path, expressions=exps), "valid")
    with pytest.raises(FlowRVSError, match="vidB_0 has no 'type'"):
        ds.kind(ds.expressions("vidB")[0])

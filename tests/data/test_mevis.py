import json

import numpy as np
import pytest

from flowrvs.data.base import Clip, ReferringVideoDataset
from flowrvs.data.mevis import MeViSDataset
from flowrvs.errors import FlowRVSError
from helpers.mevis import COLOURS, FRAMES, H, W, expected_union, make_fake_mevis


@pytest.fixture
def mevis_root(tmp_path):
    return make_fake_mevis(tmp_path / "mevis")


def test_index(mevis_root):
    ds = MeViSDataset(mevis_root, "valid_u")
    assert isinstance(ds, ReferringVideoDataset)
    assert ds.has_masks
    assert ds.videos() == ["vidA", "vidB"]
    assert ds.frame_names("vidB") == FRAMES["vidB"]
    exps = ds.expressions("vidA")
    assert [e.exp_id for e in exps] == ["0", "1"]
    assert all(isinstance(e.exp_id, str) for e in ds.all_expressions())
    assert exps[1].sentence == "two animals playing"
    assert exps[1].anno_ids == (1, 2) and exps[1].obj_ids == (0, 1)
    assert exps[1].key == "vidA_1"
    assert [e.key for e in ds.all_expressions()] == ["vidA_0", "vidA_1", "vidB_0"]
    with pytest.raises(FlowRVSError, match="vidC"):
        ds.frame_names("vidC")


def test_frames(mevis_root):
    ds = MeViSDataset(mevis_root, "valid_u")
    assert ds.frame_shape("vidA") == (H, W)
    frames = ds.load_frames("vidA")
    assert frames.shape == (3, H, W, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - COLOURS["vidA"]).max() < 10  # JPEG is lossy
    sub = ds.load_frames("vidB", [3, 0])
    assert sub.shape == (2, H, W, 3)
    assert np.abs(sub.astype(int) - COLOURS["vidB"]).max() < 10


def test_union_masks(mevis_root):
    ds = MeViSDataset(mevis_root, "valid_u")
    assert ds._mask_dict is None  # lazy: not read by the constructor
    for expr in ds.all_expressions():
        mask = ds.load_mask(expr)
        assert mask.dtype == bool and mask.shape == (len(FRAMES[expr.video]), H, W)
        np.testing.assert_array_equal(mask, expected_union(expr.video, expr.exp_id))
    two = ds.expressions("vidA")[1]
    assert ds.load_mask(two).sum() > ds.load_mask(ds.expressions("vidA")[0]).sum()
    null_frame = ds.load_mask(ds.expressions("vidB")[0])[1]
    assert not null_frame.any()
    np.testing.assert_array_equal(ds.load_mask(two, [2, 0]), expected_union("vidA", "1")[[2, 0]])
    # read once: later calls do not touch the file again
    (mevis_root / "valid_u" / "mask_dict.json").unlink()
    assert ds.load_mask(two).shape == (3, H, W)


def test_load_clip(mevis_root):
    ds = MeViSDataset(mevis_root, "valid_u")
    expr = ds.expressions("vidB")[0]
    clip = ds.load_clip(expr, [0, 2])
    assert isinstance(clip, Clip)
    assert clip.frames.shape == (2, H, W, 3) and clip.mask.shape == (2, H, W)
    assert clip.frame_names == ["00000", "00010"] and clip.sentence == "the cat jumping away"
    assert (clip.video, clip.exp_id) == ("vidB", "0")


def test_split_without_masks(tmp_path):
    root = make_fake_mevis(tmp_path, "valid", with_masks=False)
    ds = MeViSDataset(root, "valid")
    assert not ds.has_masks
    expr = ds.expressions("vidA")[1]
    assert expr.sentence == "two animals playing" and expr.anno_ids == ()
    assert ds.load_mask(expr) is None
    assert ds.load_clip(expr).mask is None


def test_errors(mevis_root, tmp_path):
    with pytest.raises(FlowRVSError, match="unknown MeViS split 'test_x'"):
        MeViSDataset(mevis_root, "test_x")
    with pytest.raises(FlowRVSError, match="meta_expressions.json"):
        MeViSDataset(tmp_path / "nowhere", "train")
    ds = MeViSDataset(mevis_root, "valid_u")
    missing = mevis_root / "valid_u" / "JPEGImages" / "vidA" / "00001.jpg"
    missing.unlink()
    with pytest.raises(FlowRVSError, match="00001.jpg"):
        ds.load_frames("vidA")
    corrupt = mevis_root / "valid_u" / "JPEGImages" / "vidB" / "00000.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    with pytest.raises(FlowRVSError, match="vidB/00000.jpg"):
        ds.load_frames("vidB")
    with pytest.raises(FlowRVSError, match="vidB/00000.jpg"):
        ds.frame_shape("vidB")


def test_bad_json_files(mevis_root):
    split = mevis_root / "valid_u"
    (split / "mask_dict.json").write_text("{ truncated")
    ds = MeViSDataset(mevis_root, "valid_u")  # lazy: no error yet
    with pytest.raises(FlowRVSError, match="mask_dict.json"):
        ds.load_mask(ds.expressions("vidA")[0])
    (split / "mask_dict.json").write_text(json.dumps({"1": [None, None]}))
    ds = MeViSDataset(mevis_root, "valid_u")
    with pytest.raises(FlowRVSError, match="anno_id 1 of vidA_0 has 2 masks for 3 frames"):
        ds.load_mask(ds.expressions("vidA")[0])
    with pytest.raises(FlowRVSError, match="anno_id 7 of vidB_0 is not in"):
        ds.load_mask(ds.expressions("vidB")[0])
    (split / "meta_expressions.json").write_text("[]")
    with pytest.raises(FlowRVSError, match="no 'videos'"):
        MeViSDataset(mevis_root, "valid_u")

"""Ref-YouTube-VOS and Ref-DAVIS17 readers on tiny fake datasets written in the real formats."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flowrvs.data.davis import RefDAVISDataset
from flowrvs.data.ytvos import RefYouTubeVOSDataset
from flowrvs.errors import FlowRVSError
from helpers.ytvos_davis import H, W, annotation, frame_color, make_davis, make_ytvos


def test_ytvos_train_frames_and_masks(tmp_path):
    ds = RefYouTubeVOSDataset(make_ytvos(tmp_path), "train")
    assert ds.has_masks
    assert ds.videos() == ["vidA", "vidB"]
    assert ds.frame_names("vidA") == ["00000", "00005", "00010", "00015"]
    exps = ds.expressions("vidA")
    assert [(e.exp_id, e.obj_ids, e.sentence) for e in exps] == [
        ("0", (1,), "the moving red box"),
        ("1", (2,), "the green box at the bottom"),
    ]
    assert exps[0].key == "vidA_0"
    assert len(ds.all_expressions()) == 3

    frames = ds.load_frames("vidA")
    assert frames.shape == (4, H, W, 3) and frames.dtype == np.uint8
    for t in range(4):
        assert np.abs(frames[t].astype(int) - np.array(frame_color(0, t))).max() <= 3
    sub = ds.load_frames("vidA", [3, 1])
    np.testing.assert_array_equal(sub, frames[[3, 1]])

    m = ds.load_mask(exps[0])
    assert m.shape == (4, H, W) and m.dtype == bool
    for t in (0, 1, 3):
        np.testing.assert_array_equal(m[t], annotation(t) == 1)
    assert not m[2].any()  # frame 00010 has no annotation PNG -> empty
    m2 = ds.load_mask(exps[1], [1, 2])
    np.testing.assert_array_equal(m2[0], annotation(1) == 2)
    assert not m2[1].any()


def test_ytvos_valid_has_no_masks_and_drops_test_videos(tmp_path):
    root = make_ytvos(tmp_path)
    ds = RefYouTubeVOSDataset(root, "valid")
    assert not ds.has_masks
    assert ds.videos() == ["vidC"]  # vidD is listed in meta_expressions/test
    e = ds.expressions("vidC")[0]
    assert e.obj_ids == () and e.sentence == "a dog"
    assert ds.load_mask(e) is None
    assert ds.load_frames("vidC").shape == (2, H, W, 3)
    assert RefYouTubeVOSDataset(root, "valid", official_valid=False).videos() == ["vidC", "vidD"]
    assert RefYouTubeVOSDataset(root, "test").videos() == ["vidD"]


def test_ytvos_errors_name_the_path(tmp_path):
    root = make_ytvos(tmp_path)
    ds = RefYouTubeVOSDataset(root, "train")
    bad = root / "train" / "JPEGImages" / "vidB" / "00005.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(FlowRVSError, match="00005.jpg"):
        ds.load_frames("vidB")
    # truncated JPEG
    good = (root / "train" / "JPEGImages" / "vidB" / "00000.jpg").read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(FlowRVSError, match=str(bad).replace("\\", "\\\\")):
        ds.load_frames("vidB", [1])
    (root / "train" / "JPEGImages" / "vidB" / "00010.jpg").unlink()
    with pytest.raises(FlowRVSError, match="00010.jpg"):
        ds.load_frames("vidB", [2])
    with pytest.raises(FlowRVSError, match="nope"):
        ds.frame_names("nope")
    with pytest.raises(FlowRVSError, match="out of range"):
        ds.load_frames("vidA", [4])
    # an RGB annotation is refused rather than misread
    Image.new("RGB", (W, H), (1, 1, 1)).save(root / "train" / "Annotations" / "vidA" / "00000.png")
    with pytest.raises(FlowRVSError, match="00000.png"):
        ds.load_mask(ds.expressions("vidA")[0], [0])
    with pytest.raises(FlowRVSError, match="meta_expressions.json"):
        RefYouTubeVOSDataset(tmp_path / "missing", "train")


def test_davis_annotator_sets_from_exp_id(tmp_path):
    ds = RefDAVISDataset(make_davis(tmp_path), "valid")
    assert ds.has_masks
    assert ds.videos() == ["bike", "dogs"]
    assert ds.frame_names("bike") == ["00000", "00005", "00010"]
    assert ds.annotator_labels() == [0, 1, 2, 3]
    sets = ds.annotator_sets()
    assert sets == [
        {"bike_0", "bike_4", "dogs_0"},
        {"bike_1", "bike_5", "dogs_1"},
        {"bike_2", "bike_6", "dogs_2"},
        {"bike_3", "bike_7", "dogs_3"},
    ]
    e = ds.expressions("bike")[5]
    assert ds.annotator(e) == 1 and e.obj_ids == (2,) and "annotator 1 full" in e.sentence
    m = ds.load_mask(e)
    for t in range(3):
        np.testing.assert_array_equal(m[t], annotation(t) == 2)


def test_davis_annotator_sets_explicit_and_positional(tmp_path):
    ds = RefDAVISDataset(make_davis(tmp_path / "x", "explicit"), "valid")
    assert ds.annotator_labels() == ["a1_first", "a1_full", "a2_first", "a2_full"]
    assert ds.annotator_sets()[3] == {"bike_e3", "bike_e7", "dogs_e3"}
    ds = RefDAVISDataset(make_davis(tmp_path / "y", "named"), "valid")
    assert ds.annotator_sets()[2] == {"bike_e2", "bike_e6", "dogs_e2"}

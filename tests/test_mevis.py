import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.data.base import Clip, ReferringVideoDataset
from flowrvs.data.mevis import MeViSDataset
from flowrvs.errors import FlowRVSError
from flowrvs.rle import encode_rle

H, W = 32, 48


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# Ground truth of the fake split. Object masks per frame; None = object absent in that frame.
OBJECTS = {
    1: [rect(2, 12, 3, 20), rect(3, 13, 5, 22), rect(4, 14, 7, 24)],  # vidA
    2: [rect(15, 30, 25, 45), rect(10, 20, 15, 30), rect(20, 31, 30, 47)],  # vidA, overlaps 1 in frame 1
    "7": [rect(0, 10, 0, 10), None, rect(5, 25, 10, 40), rect(16, 32, 24, 48)],  # vidB, string id
}
FRAMES = {"vidB": ["00000", "00005", "00010", "00015"], "vidA": ["00000", "00001", "00002"]}
EXPRESSIONS = {
    "vidB": {"0": {"exp": "the cat jumping away", "obj_id": [0], "anno_id": ["7"]}},
    "vidA": {
        "0": {"exp": "the dog running left", "obj_id": [0], "anno_id": [1]},
        "1": {"exp": "two animals playing", "obj_id": [0, 1], "anno_id": [1, 2]},
    },
}
COLOURS = {"vidA": (200, 30, 30), "vidB": (20, 220, 40)}


def expected_union(video, exp_id):
    frames = []
    for t in range(len(FRAMES[video])):
        m = np.zeros((H, W), dtype=bool)
        for anno in EXPRESSIONS[video][exp_id]["anno_id"]:
            obj = OBJECTS[anno][t]
            if obj is not None:
                m |= obj
        frames.append(m)
    return np.stack(frames)


def make_fake_mevis(root: Path, split: str = "valid_u", with_masks: bool = True) -> Path:
    """Write a tiny MeViS split under ``root/split``: 2 videos of 32x48 JPEGs, 3 expressions."""
    split_dir = root / split
    videos = {}
    for vid in FRAMES:  # vidB first on purpose: videos() must sort
        vdir = split_dir / "JPEGImages" / vid
        vdir.mkdir(parents=True)
        for name in FRAMES[vid]:
            img = np.zeros((H, W, 3), dtype=np.uint8)
            img[:] = COLOURS[vid]
            Image.fromarray(img).save(vdir / f"{name}.jpg", quality=95)
        exps = EXPRESSIONS[vid]
        if not with_masks:  # the real `valid` split lists only sentences
            exps = {k: {"exp": v["exp"]} for k, v in exps.items()}
        videos[vid] = {"frames": FRAMES[vid], "expressions": exps}
    (split_dir / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    if with_masks:
        mask_dict = {str(a): [None if m is None else encode_rle(m) for m in ms] for a, ms in OBJECTS.items()}
        (split_dir / "mask_dict.json").write_text(json.dumps(mask_dict))
    return root


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

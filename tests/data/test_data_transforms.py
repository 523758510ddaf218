"""fit_size / resize / hflip, clip index sampling and ClipDataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.data.base import Clip
from flowrvs.data.refcoco import RefCOCODataset
from flowrvs.data.sampling import ClipDataset, sample_clip_indices
from flowrvs.data.transforms import fit_size, hflip_clip, resize_clip, resize_clip_to_box, swap_left_right
from flowrvs.data.ytvos import RefYouTubeVOSDataset
from flowrvs.errors import FlowRVSError


# --- fit_size -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "hw, expected",
    [
        ((1080, 1920), (464, 832)),  # s = 832/1920: 468 -> 464 (nearest multiple of 16)
        ((720, 1280), (464, 832)),
        ((480, 854), (464, 832)),  # DAVIS 480p
        ((1920, 1080), (832, 464)),  # portrait: box transposed
        ((480, 640), (480, 640)),  # already fits: unchanged
        ((100, 100), (480, 480)),  # square: box as given, scaled up
        ((10, 12), (480, 576)),  # tiny image, scaled up to the box
        ((2, 1000), (16, 832)),  # extreme aspect: at least one multiple
    ],
)
def test_fit_size(hw, expected):
    out = fit_size(*hw)
    assert out == expected
    assert out[0] % 16 == 0 and out[1] % 16 == 0


def test_fit_size_options():
    assert fit_size(10, 12, upscale=False) == (16, 16)
    assert fit_size(100, 200, upscale=False) == (96, 208)
    assert fit_size(1080, 1920, box=(240, 416)) == (240, 416)
    assert fit_size(1080, 1920, box=(832, 480)) == (464, 832)  # box orientation does not matter
    with pytest.raises(FlowRVSError):
        fit_size(0, 10)
    with pytest.raises(FlowRVSError):
        fit_size(10, 10, box=(8, 8))


def test_resize_clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    mask = np.zeros((3, 32, 48), dtype=bool)
    mask[:, 8:24, 12:36] = True
    f, m = resize_clip(frames, mask, (16, 32))
    assert f.shape == (3, 16, 32, 3) and f.dtype == np.uint8
    assert m.shape == (3, 16, 32) and m.dtype == bool
    assert m[:, 4:12, 8:24].all() and m.sum() == 3 * 8 * 16
    f, m = resize_clip(frames, None, (64, 96))
    assert f.shape == (3, 64, 96, 3) and m is None
    clip = resize_clip_to_box(Clip(frames, mask, "x"), box=(16, 16))
    assert clip.frames.shape == (3, 16, 16, 3)


# --- hflip --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "src, dst",
    [
        ("the man on the left", "the man on the right"),
        ("Left person", "Right person"),
        ("RIGHT dog", "LEFT dog"),
        ("leftmost car, right of the rightmost bus", "rightmost car, left of the leftmost bus"),
        ("Leftmost zebra", "Rightmost zebra"),
        ("leftover pizza, bright light", "leftover pizza, bright light"),
        ("left-hand glove on the right.", "right-hand glove on the left."),
    ],
)
def test_swap_left_right(src, dst):
    assert swap_left_right(src) == dst


def test_hflip_clip():
    frames = np.zeros((2, 4, 6, 3), dtype=np.uint8)
    frames[:, :, 0] = 255
    mask = np.zeros((2, 4, 6), dtype=bool)
    mask[:, :, :2] = True
    clip = Clip(frames, mask, "the cat on the left", video="v", exp_id="0", frame_names=["a", "b"])
    out = hflip_clip(clip)
    assert out.sentence == "the cat on the right"
    assert (out.frames[:, :, -1] == 255).all() and (out.frames[:, :, 0] == 0).all()
    assert out.mask[:, :, 4:].all() and not out.mask[:, :, :4].any()
    assert out.video == "v" and out.frame_names == ["a", "b"]
    assert clip.sentence == "the cat on the left" and clip.frames[0, 0, 0, 0] == 255  # input untouched
    assert hflip_clip(Clip(frames, None, "left")).mask is None


# --- sample_clip_indices -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["local", "global", "mixed"])
@pytest.mark.parametrize("n", [1, 3, 8, 9, 100])
def test_sample_indices_in_range_and_sorted(mode, n):
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = sample_clip_indices(n, 8, rng, mode)
        assert len(idx) == 8
        assert all(0 <= i < n for i in idx)
        assert idx == sorted(idx)
        if n >= 8:
            assert len(set(idx)) == 8  # no repeats unless the video is too short
        else:
            assert set(idx) == set(range(n))  # a short video is used whole


def test_sample_indices_modes():
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx = sample_clip_indices(100, 8, rng, "local")
        assert np.all(np.diff(idx) == 1)
        g = sample_clip_indices(100, 8, rng, "global")
        assert all(100 * k // 8 <= i < 100 * (k + 1) // 8 for k, i in enumerate(g))
        m = sample_clip_indices(100, 8, rng, "mixed")
        diffs = np.diff(m)
        assert any(np.all(diffs[s : s + 3] == 1) for s in range(5))  # 4 consecutive neighbours
        assert m[-1] - m[0] > 10
    assert sample_clip_indices(10, 4, 5, "mixed") == sample_clip_indices(10, 4, 5, "mixed")
    with pytest.raises(FlowRVSError):
        sample_clip_indices(0, 4, 0)
    with pytest.raises(FlowRVSError):
        sample_clip_indices(10, 4, 0, "random")


# --- ClipDataset on fake datasets ----------------------------------------------------------------
PAL = [0, 0, 0, 200, 0, 0] + [0, 0, 0] * 254


def make_ytvos(root: Path, n_frames: int = 6, h: int = 32, w: int = 48) -> Path:
    names = [f"{5 * t:05d}" for t in range(n_frames)]
    for t, name in enumerate(names):
        p = root / "train" / "JPEGImages" / "v1" / f"{name}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        img = np.full((h, w, 3), 20, dtype=np.uint8)
        img[:, : w // 3] = 230  # bright object on the left third
        Image.fromarray(img).save(p, quality=95)
        ann = np.zeros((h, w), dtype=np.uint8)
        ann[:, : w // 3] = 1
        a = Image.fromarray(ann, mode="P")
        a.putpalette(PAL)
        q = root / "train" / "Annotations" / "v1" / f"{name}.png"
        q.parent.mkdir(parents=True, exist_ok=True)
        a.save(q)
    meta = {"videos": {"v1": {"expressions": {"0": {"exp": "the bright thing on the left", "obj_id": "1"}}, "frames": names}}}
    mp = root / "meta_expressions" / "train" / "meta_expressions.json"
    mp.parent.mkdir(parents=True, exist_ok=True)
    mp.write_text(json.dumps(meta))
    return root


def snapshot(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_clip_dataset_ytvos(tmp_path):
    root = make_ytvos(tmp_path / "ytvos")
    ds = RefYouTubeVOSDataset(root, "train")
    before = snapshot(tmp_path)
    kw = dict(num_frames=4, size_box=(64, 96), seed=11, mode="mixed")
    plain = ClipDataset([(ds, 1.0)], hflip_p=0.0, length=5, **kw)
    flipped = ClipDataset([(ds, 1.0)], hflip_p=1.0, length=5, **kw)
    assert len(plain) == 5
    clips = list(plain)
    assert len(clips) == 5
    for i, c in enumerate(clips):
        assert c.frames.shape == (4, 64, 96, 3) and c.frames.dtype == np.uint8
        assert c.mask.shape == (4, 64, 96) and c.mask.dtype == bool
        assert c.sentence == "the bright thing on the left"
        assert c.frame_names == sorted(c.frame_names) and all(n in ds.frame_names("v1") for n in c.frame_names)
        np.testing.assert_array_equal(c.mask, c.frames.mean(axis=3) > 128)  # mask and frames resized alike
        f = flipped[i]
        assert f.sentence == "the bright thing on the right"
        assert f.frame_names == c.frame_names
        np.testing.assert_array_equal(f.frames, c.frames[:, :, ::-1])
        np.testing.assert_array_equal(f.mask, c.mask[:, :, ::-1])
    again = ClipDataset([(ds, 1.0)], hflip_p=0.0, length=5, **kw)
    np.testing.assert_array_equal(again[3].frames, clips[3].frames)
    assert snapshot(tmp_path) == before  # nothing on disk written or touched
    with pytest.raises(IndexError):
        plain[5]


def test_clip_dataset_mixes_sources(tmp_path):
    ytvos = RefYouTubeVOSDataset(make_ytvos(tmp_path / "ytvos"), "train")
    root = tmp_path / "coco"
    (root / "train2014").mkdir(parents=True)
    Image.new("RGB", (40, 30), (0, 0, 0)).save(root / "train2014" / "COCO_train2014_000000000001.jpg")
    inst = {
        "images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": 30, "width": 40}],
        "annotations": [{"id": 5, "image_id": 1, "segmentation": [[5, 5, 20, 5, 20, 20, 5, 20]], "bbox": [5, 5, 15, 15], "category_id": 1}],
        "refs": [{"ann_id": 5, "image_id": 1, "sentences": [{"sent": "a box"}]}],
    }
    (root / "refcoco").mkdir()
    (root / "refcoco" / "instances_train.json").write_text(json.dumps(inst))
    coco = RefCOCODataset(root, "refcoco", "train", num_frames=5)
    cd = ClipDataset([(ytvos, 1.0), (coco, 3.0)], num_frames=3, size_box=(48, 64), hflip_p=0.5, seed=0, length=40)
    sentences = {cd[i].sentence for i in range(40)}
    assert "a box" in sentences and any("bright thing" in s for s in sentences)
    c = next(c for c in (cd[i] for i in range(40)) if c.sentence == "a box")
    assert c.frames.shape == (3, 48, 64, 3) and c.mask.shape == (3, 48, 64)
    with pytest.raises(FlowRVSError, match="weights"):
        ClipDataset([(ytvos, 0.0)], num_frames=3)
    valid_like = RefYouTubeVOSDataset(make_ytvos(tmp_path / "nomask"), "train")
    valid_like.has_masks = False
    with pytest.raises(FlowRVSError, match="no masks"):
        ClipDataset([(valid_like, 1.0)], num_frames=3)


def test_clip_dataset_corrupt_frame_names_path(tmp_path):
    root = make_ytvos(tmp_path / "ytvos", n_frames=3)
    bad = root / "train" / "JPEGImages" / "v1" / "00005.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    os.utime(bad, ns=(0, 0))
    cd = ClipDataset([(RefYouTubeVOSDataset(root, "train"), 1.0)], num_frames=3, size_box=(32, 48), seed=0)
    with pytest.raises(FlowRVSError, match="00005.jpg"):
        cd[0]
    assert bad.read_bytes() == b"\xff\xd8 broken"

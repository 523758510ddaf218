"""RefCOCO pseudo-videos on tiny fake COCO/refs files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from flowrvs.data.refcoco import RefCOCODataset, decode_segmentation
from flowrvs.errors import FlowRVSError
from flowrvs.io.masks import encode_rle
from helpers.refcoco import SQ, H, W, make_coco, square_mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(float((a | b).sum()), 1.0)


def test_polygon_and_rle_decoding():
    y0, y1, x0, x1 = SQ
    m = decode_segmentation([[x0, y0, x1, y0, x1, y1, x0, y1]], H, W)
    assert iou(m, square_mask()) > 0.97
    np.testing.assert_array_equal(decode_segmentation(encode_rle(square_mask()), H, W), square_mask())
    raw = mask_utils.encode(np.asfortranarray(square_mask().astype(np.uint8)))
    np.testing.assert_array_equal(decode_segmentation(raw, H, W), square_mask())
    with pytest.raises(FlowRVSError):
        decode_segmentation(encode_rle(square_mask()), H + 1, W)


@pytest.mark.parametrize("inline", [False, True])
def test_refcoco_pseudo_videos(tmp_path, inline):
    root = make_coco(tmp_path, refs_inline=inline)
    ds = RefCOCODataset(root, "refcoco", "train", num_frames=6, seed=3)
    assert ds.has_masks
    assert ds.videos() == ["1_0", "2_1"]  # the "val" ref is skipped
    assert ds.frame_names("1_0") == ["00000", "00001", "00002", "00003", "00004", "00005"]
    exps = ds.expressions("1_0")
    assert [e.sentence for e in exps] == ["the white square", "square in the middle"]
    assert exps[0].obj_ids == (11,)
    assert len(ds) == 3

    frames = ds.load_frames("1_0")
    mask = ds.load_mask(exps[0])
    assert frames.shape == (6, H, W, 3) and frames.dtype == np.uint8
    assert mask.shape == (6, H, W) and mask.dtype == bool
    # the mask follows the image: thresholded warped white square == warped mask
    for t in range(6):
        bright = frames[t].mean(axis=2) > 128
        assert iou(bright, mask[t]) > 0.9, t
    # it is a moving video, not a still
    assert iou(mask[0], mask[-1]) < 0.98 or not np.array_equal(frames[0], frames[-1])
    assert not all(np.array_equal(frames[0], f) for f in frames[1:])
    # subsets agree with the full clip
    np.testing.assert_array_equal(ds.load_frames("1_0", [4, 1]), frames[[4, 1]])
    np.testing.assert_array_equal(ds.load_mask(exps[1], [2]), mask[[2]])

    # RLE annotation of the second image
    m2 = ds.load_mask(ds.expressions("2_1")[0])
    f2 = ds.load_frames("2_1")
    red = (f2[..., 0].astype(int) - f2[..., 1]) > 80
    for t in range(6):
        assert iou(red[t], m2[t]) > 0.85


def test_refcoco_deterministic(tmp_path):
    root = make_coco(tmp_path)
    a = RefCOCODataset(root, "refcoco", "train", num_frames=4, seed=7)
    b = RefCOCODataset(root, "refcoco", "train", num_frames=4, seed=7)
    c = RefCOCODataset(root, "refcoco", "train", num_frames=4, seed=8)
    ca, cb, cc = a[0], b[0], c[0]
    np.testing.assert_array_equal(ca.frames, cb.frames)
    np.testing.assert_array_equal(ca.mask, cb.mask)
    assert not np.array_equal(ca.frames, cc.frames)
    assert ca.sentence == "the white square" and ca.video == "1_0" and ca.frame_names == ["00000", "00001", "00002", "00003"]
    a.set_epoch(1)
    assert not np.array_equal(a[0].frames, ca.frames)
    # strength 0: every frame is the original image
    still = RefCOCODataset(root, "refcoco", "train", num_frames=3, seed=7, strength=0.0)
    clip = still[0]
    assert iou(clip.mask[0], square_mask()) > 0.97
    assert np.array_equal(clip.frames[0], clip.frames[2])


def test_refcoco_converted_caption_format(tmp_path):
    img_dir = tmp_path / "train2014"
    img_dir.mkdir()
    Image.new("RGB", (W, H), (0, 0, 0)).save(img_dir / "COCO_train2014_000000000005.jpg")
    inst = {
        "images": [
            {"id": 1, "original_id": 5, "file_name": "COCO_train2014_000000000005.jpg", "height": H, "width": W, "caption": "left thing"},
            {"id": 2, "original_id": 5, "file_name": "COCO_train2014_000000000005.jpg", "height": H, "width": W, "caption": "same thing"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "original_id": 50, "segmentation": encode_rle(square_mask()), "bbox": [0, 0, 1, 1], "category_id": 1},
            {"id": 2, "image_id": 2, "original_id": 50, "segmentation": encode_rle(square_mask()), "bbox": [0, 0, 1, 1], "category_id": 1},
        ],
    }
    (tmp_path / "refcoco+").mkdir()
    (tmp_path / "refcoco+" / "instances_refcoco+_val.json").write_text(json.dumps(inst))
    ds = RefCOCODataset(tmp_path, "refcoco+", "val", num_frames=2)
    assert ds.videos() == ["1", "2"]
    e = ds.expressions("1")[0]
    assert e.sentence == "left thing" and e.obj_ids == (50,)
    assert ds.load_mask(e).shape == (2, H, W)


def test_refcoco_errors(tmp_path):
    root = make_coco(tmp_path)
    with pytest.raises(FlowRVSError, match="instances_val.json"):
        RefCOCODataset(root, "refcoco", "val")
    with pytest.raises(FlowRVSError, match="unknown referring dataset"):
        RefCOCODataset(root, "refclef", "train")
    ds = RefCOCODataset(root, "refcoco", "train", num_frames=2)
    bad = root / "train2014" / "COCO_train2014_000000000002.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(FlowRVSError, match="COCO_train2014_000000000002.jpg"):
        ds.load_frames("2_1")

"""A tiny fake MeViS split in the real layout: JPEG frames, ``meta_expressions.json``, ``mask_dict.json`` (COCO RLE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from flowrvs.io.masks import encode_rle

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

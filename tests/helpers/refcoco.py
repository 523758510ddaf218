"""A tiny fake RefCOCO (COCO ``instances_train.json`` + ``refs_train.json``, JPEG images) in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from flowrvs.io.masks import encode_rle

H, W = 96, 128
SQ = (30, 70, 40, 90)  # y0, y1, x0, x1 of the white square in image 1


def square_mask() -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    y0, y1, x0, x1 = SQ
    m[y0:y1, x0:x1] = True
    return m


def make_coco(root: Path, refs_inline: bool = False) -> Path:
    img_dir = root / "train2014"
    img_dir.mkdir(parents=True)
    im1 = np.zeros((H, W, 3), dtype=np.uint8)
    im1[square_mask()] = 255
    Image.fromarray(im1).save(img_dir / "COCO_train2014_000000000001.jpg", quality=95)
    im2 = np.full((H, W, 3), 90, dtype=np.uint8)
    im2[10:40, 10:50] = (200, 30, 30)
    Image.fromarray(im2).save(img_dir / "COCO_train2014_000000000002.jpg", quality=95)
    m2 = np.zeros((H, W), dtype=bool)
    m2[10:40, 10:50] = True

    y0, y1, x0, x1 = SQ
    # pycocotools rasterises polygon vertices at pixel corners: this polygon covers exactly the square
    poly = [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]
    inst = {
        "images": [
            {"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "height": H, "width": W},
            {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "height": H, "width": W},
        ],
        "annotations": [
            {"id": 11, "image_id": 1, "segmentation": [poly], "bbox": [x0, y0, x1 - x0, y1 - y0], "category_id": 1},
            {"id": 21, "image_id": 2, "segmentation": encode_rle(m2), "bbox": [10, 10, 40, 30], "category_id": 3},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    refs = [
        {"ref_id": 0, "ann_id": 11, "image_id": 1, "split": "train",
         "sentences": [{"sent": "the white square"}, {"sent": "square in the middle"}]},
        {"ref_id": 1, "ann_id": 21, "image_id": 2, "split": "train", "sentences": [{"sent": "red car on the left"}]},
        {"ref_id": 2, "ann_id": 21, "image_id": 2, "split": "val", "sentences": [{"sent": "val only"}]},
    ]
    folder = root / "refcoco"
    folder.mkdir()
    if refs_inline:
        inst["refs"] = refs
    else:
        (folder / "refs_train.json").write_text(json.dumps(refs))
    (folder / "instances_train.json").write_text(json.dumps(inst))
    return root

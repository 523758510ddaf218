"""Fake Long-RVOS and ReVOS splits in their published layouts, and the benchmarks' formulas
re-stated independently (plain numpy, no flowrvs metric code) for the tests to compare against."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

H, W = 96, 128  # diagonal 160: boundary tolerance ceil(0.008 * 160) = 2 px


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _jpegs(folder: Path, names, colour) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[:] = colour
    for name in names:
        Image.fromarray(img).save(folder / f"{name}.jpg", quality=95)


# --- Long-RVOS ------------------------------------------------------------------------------
# object masks per frame; None: the object is absent (no PNG)
LR_FRAMES = {"vidB": [f"{i:05d}" for i in range(5)], "vidA": [f"{i:05d}" for i in range(7)]}
LR_OBJECTS = {
    ("vidA", "1"): [box(10, 40, 10, 50), box(12, 42, 14, 54), box(14, 44, 18, 58), box(16, 46, 22, 62),
                    None, None, None],  # leaves the scene at frame 4
    ("vidA", "2"): [None, None, box(50, 90, 60, 120), box(48, 88, 56, 116), box(46, 86, 52, 112),
                    box(44, 84, 48, 108), box(0, H, 0, W)],  # enters at frame 2, fills the last frame
    ("vidB", "0"): [box(5 + 4 * t, 35 + 4 * t, 20, 70) for t in range(5)],
}
LR_EXPRESSIONS = {
    "vidA": {
        "0": {"exp": "the dog that runs out", "obj_id": 1, "type": "dynamic"},
        "1": {"exp": "the red car", "obj_id": "2", "type": "static"},
        "2": {"exp": "both of them", "obj_id": [1, 2], "type": "static+dynamic"},
        "3": {"exp": "the unicorn", "obj_id": [], "type": "static"},
    },
    "vidB": {"0": {"exp": "the falling box", "obj_id": 0, "type": "dynamic"}},
}


def lr_truth(video: str, exp_id: str) -> np.ndarray:
    """``(T, H, W)`` bool ground truth of one fake Long-RVOS expression."""
    raw = LR_EXPRESSIONS[video][exp_id]["obj_id"]
    objs = raw if isinstance(raw, list) else [raw]
    out = np.zeros((len(LR_FRAMES[video]), H, W), dtype=bool)
    for obj in objs:
        for t, m in enumerate(LR_OBJECTS[(video, str(obj))]):
            if m is not None:
                out[t] |= m
    return out


def make_long_rvos(root: Path, split: str = "valid", expressions=None, annotations: bool = True) -> Path:
    """Write a fake Long-RVOS split under ``root/split``; returns ``root``."""
    base = root / split
    videos = {}
    for vid, names in LR_FRAMES.items():
        _jpegs(base / "JPEGImages" / vid, names, (30, 60, 200))
        videos[vid] = {"frames": names, "expressions": (expressions or LR_EXPRESSIONS)[vid]}
    if annotations:
        for (vid, obj), masks in LR_OBJECTS.items():
            folder = base / "Annotations" / vid / obj
            folder.mkdir(parents=True, exist_ok=True)
            for name, m in zip(LR_FRAMES[vid], masks):
                if m is not None:
                    Image.fromarray(m.astype(np.uint8) * 255, mode="L").save(folder / f"{name}.png")
    (base / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    return root


# --- ReVOS ----------------------------------------------------------------------------------
RV_FRAMES = {"UVO/all/vid1": [f"{i:05d}" for i in range(6)], "MeViS/vid2": ["a", "b", "c", "d"]}
RV_ANNOS = {  # anno_id -> (video, masks per frame, None = absent)
    "11": ("UVO/all/vid1", [box(5, 40, 5, 50), box(8, 42, 8, 52), None, None, box(10, 45, 12, 58),
                            box(12, 47, 14, 60)]),
    "12": ("UVO/all/vid1", [box(30, 80, 40, 100), box(32, 82, 44, 104), box(34, 84, 48, 108),
                            box(36, 86, 52, 112), None, box(38, 88, 56, 116)]),
    "13": ("UVO/all/vid1", [box(60, 90, 0, 30)] * 6),  # annotated but never referred: foreground only
    "21": ("MeViS/vid2", [box(20, 70, 30, 90), box(22, 72, 34, 94), box(24, 74, 38, 98), box(26, 76, 42, 102)]),
}
RV_EXPRESSIONS = {
    "UVO/all/vid1": {
        "0": {"exp": "the person on the left", "obj_id": [0], "anno_id": [11], "type_id": 0},
        "1": {"exp": "the two that will meet", "obj_id": [0, 1], "anno_id": [11, 12], "type_id": 1},
        "2": {"exp": "the elephant", "obj_id": [], "anno_id": [], "type_id": 2},
        "3": {"exp": "the vehicle", "obj_id": [1], "anno_id": ["12"], "type_id": 0},
    },
    "MeViS/vid2": {
        "0": {"exp": "what would bark", "obj_id": [0], "anno_id": [21], "type_id": 1},
        "1": {"exp": "the dragon", "obj_id": [], "anno_id": [], "type_id": 2},
    },
}


def _rle(m: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rv_truth(video: str, exp_id: str) -> np.ndarray:
    out = np.zeros((len(RV_FRAMES[video]), H, W), dtype=bool)
    for anno in RV_EXPRESSIONS[video][exp_id]["anno_id"]:
        for t, m in enumerate(RV_ANNOS[str(anno)][1]):
            if m is not None:
                out[t] |= m
    return out


def rv_foreground(video: str) -> np.ndarray:
    out = np.zeros((len(RV_FRAMES[video]), H, W), dtype=bool)
    for vid, masks in RV_ANNOS.values():
        if vid == video:
            for t, m in enumerate(masks):
                if m is not None:
                    out[t] |= m
    return out


def make_revos(root: Path, split: str = "valid", expressions=None) -> Path:
    """Write a fake ReVOS folder under ``root`` (one meta file for ``split``); returns ``root``."""
    videos = {}
    for vid, names in RV_FRAMES.items():
        _jpegs(root / "JPEGImages" / vid, names, (200, 100, 20))
        videos[vid] = {"vid_id": len(videos), "frames": names, "height": H, "width": W,
                       "expressions": (expressions or RV_EXPRESSIONS)[vid]}
    mask_dict = {a: [None if m is None else _rle(m) for m in masks] for a, (_, masks) in RV_ANNOS.items()}
    fg = {vid: {"masks_rle": [_rle(m) for m in rv_foreground(vid)]} for vid in RV_FRAMES}
    (root / f"meta_expressions_{split}_.json").write_text(json.dumps({"videos": videos}))
    (root / "mask_dict.json").write_text(json.dumps(mask_dict))
    (root / "mask_dict_foreground.json").write_text(json.dumps(fg))
    return root


# --- predictions ----------------------------------------------------------------------------
def write_predictions(pred_dir: Path, video: str, exp_id: str, names, masks, value: int = 255) -> None:
    """One single-channel PNG per frame, foreground ``value``, at ``pred_dir/<video>/<exp_id>/``."""
    folder = pred_dir / video / exp_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in zip(names, masks):
        Image.fromarray(m.astype(np.uint8) * value, mode="L").save(folder / f"{name}.png")


def predict(gt: np.ndarray, seed: int) -> np.ndarray:
    """A plausible wrong prediction of ``gt``: shifted, some frames dropped, a spurious blob."""
    rng = np.random.default_rng(seed)
    out = np.roll(gt, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(1, 2))
    for t in range(out.shape[0]):
        r = rng.random()
        if r < 0.2:
            out[t] = False
        elif r < 0.4:
            y, x = int(rng.integers(0, H - 20)), int(rng.integers(0, W - 20))
            out[t, y:y + 12, x:x + 15] = True
    return out


# --- the formulas, re-stated ----------------------------------------------------------------
def ref_j(p: np.ndarray, g: np.ndarray) -> float:
    union = np.logical_or(p, g).sum()
    return 1.0 if union == 0 else np.logical_and(p, g).sum() / union


def ref_boundary(seg: np.ndarray) -> np.ndarray:
    """DAVIS seg2bmap: differs from east, south or south-east; last row east only, last column
    south only, bottom-right corner never."""
    b = np.zeros(seg.shape, dtype=bool)
    s = seg
    b[:-1, :-1] = (s[:-1, :-1] != s[:-1, 1:]) | (s[:-1, :-1] != s[1:, :-1]) | (s[:-1, :-1] != s[1:, 1:])
    b[-1, :-1] = s[-1, :-1] != s[-1, 1:]
    b[:-1, -1] = s[:-1, -1] != s[1:, -1]
    return b


def ref_dilate(b: np.ndarray, r: int) -> np.ndarray:
    h, w = b.shape
    out = np.zeros_like(b)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                src = b[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
                out[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] |= src
    return out


def ref_f(p: np.ndarray, g: np.ndarray) -> float:
    r = int(np.ceil(0.008 * np.sqrt(p.shape[0] ** 2 + p.shape[1] ** 2)))
    bp, bg = ref_boundary(p), ref_boundary(g)
    n_p, n_g = bp.sum(), bg.sum()
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = (bp & ref_dilate(bg, r)).sum() / n_p
    recall = (bg & ref_dilate(bp, r)).sum() / n_g
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def ref_long_rvos(pred: np.ndarray, gt: np.ndarray) -> dict:
    js = [ref_j(pred[t], gt[t]) for t in range(len(gt))]
    fs = [ref_f(pred[t], gt[t]) for t in range(len(gt))]
    t_gt = {t for t in range(len(gt)) if gt[t].any()}
    t_pred = {t for t in range(len(gt)) if pred[t].any()}
    union = t_gt | t_pred
    tiou = 1.0 if not union else len(t_gt & t_pred) / len(union)
    viou = 1.0 if not union else sum(js[t] for t in t_gt & t_pred) / len(union)
    j, f = sum(js) / len(js), sum(fs) / len(fs)
    return {"J": j, "F": f, "J&F": (j + f) / 2, "tIoU": tiou, "vIoU": viou}


def ref_revos(pred: np.ndarray, gt: np.ndarray, fg: np.ndarray) -> dict:
    n = len(gt)
    js = [ref_j(pred[t], gt[t]) for t in range(n)]
    fs = [ref_f(pred[t], gt[t]) for t in range(n)]
    accs = [(pred[t] == gt[t]).sum() / gt[t].size for t in range(n)]
    robs = [max(1 - (pred[t] & ~gt[t]).sum() / (fg[t].sum() + 1e-6), 0.0) for t in range(n)]
    j, f = sum(js) / n, sum(fs) / n
    return {"J": j, "F": f, "J&F": (j + f) / 2, "A": sum(accs) / n, "R": sum(robs) / n}

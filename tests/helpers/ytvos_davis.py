"""Tiny fake Ref-YouTube-VOS and Ref-DAVIS17 datasets written in the real on-disk formats.

Frames are ``H x W`` JPEGs, annotations palette PNGs (object ids 1 and 2), sentences in
``meta_expressions/<split>/meta_expressions.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 32, 48
PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 252


def frame_color(vid_idx: int, t: int) -> tuple[int, int, int]:
    return (40 + 50 * vid_idx, 30 + 40 * t, 200 - 30 * t)


def annotation(t: int) -> np.ndarray:
    """Object 1: a box moving right; object 2: a fixed box at the bottom."""
    a = np.zeros((H, W), dtype=np.uint8)
    a[4:14, 2 + 4 * t : 12 + 4 * t] = 1
    a[20:30, 30:44] = 2
    return a


def write_palette_png(path: Path, arr: np.ndarray) -> None:
    img = Image.fromarray(arr, mode="P")
    img.putpalette(PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def write_video(root: Path, split: str, vid: str, vid_idx: int, n: int, masks: bool, skip_mask: int | None = None):
    names = [f"{5 * t:05d}" for t in range(n)]
    for t, name in enumerate(names):
        p = root / split / "JPEGImages" / vid / f"{name}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), frame_color(vid_idx, t)).save(p, quality=95)
        if masks and t != skip_mask:
            write_palette_png(root / split / "Annotations" / vid / f"{name}.png", annotation(t))
    return names


def write_meta(root: Path, split: str, videos: dict) -> None:
    p = root / "meta_expressions" / split / "meta_expressions.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"videos": videos}))


def make_ytvos(root: Path) -> Path:
    """train: vidA (4 frames, frame 2 unannotated), vidB (3 frames); valid: vidC + vidD; test: vidD."""
    a = write_video(root, "train", "vidA", 0, 4, masks=True, skip_mask=2)
    b = write_video(root, "train", "vidB", 1, 3, masks=True)
    write_meta(
        root,
        "train",
        {
            "vidB": {"expressions": {"0": {"exp": "a cat on the left", "obj_id": "2"}}, "frames": b},
            "vidA": {
                "expressions": {
                    "0": {"exp": "the moving red box", "obj_id": "1"},
                    "1": {"exp": "the green box at the bottom", "obj_id": "2"},
                }, "frames": a,
            },
        },
    )
    c = write_video(root, "valid", "vidC", 2, 2, masks=False)
    d = write_video(root, "valid", "vidD", 3, 2, masks=False)
    write_meta(
        root,
        "valid",
        {
            "vidC": {"expressions": {"0": {"exp": "a dog"}}, "frames": c},
            "vidD": {"expressions": {"0": {"exp": "a bird"}}, "frames": d},
        },
    )
    write_meta(root, "test", {"vidD": {"expressions": {"0": {"exp": "a bird"}}, "frames": d}})
    return root


def make_davis(root: Path, exp_style: str = "numeric") -> Path:
    """valid: bike (3 frames, objects 1 and 2), dogs (2 frames, object 1); four sentences per object
    (annotators 1 and 2, first-frame and full-video); ``exp_style`` numeric, named or explicit ids."""
    a = write_video(root, "valid", "bike", 0, 3, masks=True)
    b = write_video(root, "valid", "dogs", 1, 2, masks=True)
    kinds = ["first", "full", "first", "full"]

    def exps(vid_objs):
        out = {}
        i = 0
        for obj in vid_objs:
            for k in range(4):
                key = str(i) if exp_style == "numeric" else f"e{i}"
                out[key] = {"exp": f"object {obj} annotator {k // 2 + 1} {kinds[k]}", "obj_id": str(obj)}
                if exp_style == "explicit":
                    out[key]["annotator"] = f"a{k // 2 + 1}_{kinds[k]}"
                i += 1
        return out

    write_meta(root, "valid", {"bike": {"expressions": exps([1, 2]), "frames": a}, "dogs": {"expressions": exps([1]), "frames": b}})
    return root

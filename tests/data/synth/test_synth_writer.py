"""A synthetic split on disk in the MeViS layout (`flowrvs.data.synth.writer`, `flowrvs synth`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.data.synth.generate import generate_video, video_rng
from flowrvs.data.synth.writer import write_split
from flowrvs.io.masks import decode_rle

SMALL = dict(videos=6, frames=5, size=(64, 96), seed=3)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_split(root, "train", SMALL["videos"], frames=SMALL["frames"], size=SMALL["size"], seed=SMALL["seed"], progress=False)
    return root


def test_split_format(small_split):
    split = small_split / "train"
    meta = json.loads((split / "meta_expressions.json").read_text())
    mask_dict = json.loads((split / "mask_dict.json").read_text())
    h, w = SMALL["size"]
    t = SMALL["frames"]
    videos = meta["videos"]
    assert sorted(videos) == [f"synth_{SMALL['seed']}_{i:04d}" for i in range(SMALL["videos"])]
    all_annos = []
    for i, vid in enumerate(sorted(videos)):
        entry = videos[vid]
        expected = generate_video(video_rng(SMALL["seed"], i), t, SMALL["size"])
        assert entry["frames"] == [f"{k:05d}" for k in range(t)]
        for name in entry["frames"]:
            with Image.open(split / "JPEGImages" / vid / f"{name}.jpg") as img:
                assert img.format == "JPEG" and img.size == (w, h) and img.mode == "RGB"
        frame0 = np.asarray(Image.open(split / "JPEGImages" / vid / "00000.jpg")).astype(int)
        assert np.abs(frame0 - expected.frames[0]).mean() < 6  # JPEG of the generated frame
        exps = entry["expressions"]
        assert sorted(exps, key=int) == [str(k) for k in range(len(expected.expressions))]
        # anno id of object j = the anno ids listed for it; one per object
        obj_to_anno = {}
        for k, (sentence, ids) in enumerate(expected.expressions):
            e = exps[str(k)]
            assert e["exp"] == sentence and e["obj_id"] == list(ids) and len(e["anno_id"]) == len(ids)
            for o, a in zip(e["obj_id"], e["anno_id"]):
                assert obj_to_anno.setdefault(o, a) == a
            union = np.zeros((t, h, w), dtype=bool)
            for a in e["anno_id"]:
                union |= np.stack([decode_rle(r, (h, w)) for r in mask_dict[str(a)]])
            assert union.any()
            assert np.array_equal(union, expected.union_mask(k))
        video_annos = list(range(len(all_annos), len(all_annos) + len(expected.objects)))  # running count
        all_annos += video_annos
        for o, a in obj_to_anno.items():
            assert a == video_annos[o]
        for o, a in enumerate(video_annos):
            rles = mask_dict[str(a)]
            assert len(rles) == t
            for k, rle in enumerate(rles):
                # null exactly where the object is absent (not visible) in that frame
                assert (rle is None) == (not expected.masks[o, k].any())
                if rle is not None:
                    assert rle["size"] == [h, w]
                    assert np.array_equal(decode_rle(rle), expected.masks[o, k])
    assert sorted(all_annos) == sorted(int(a) for a in mask_dict) == list(range(len(all_annos)))
    assert any(r is None for rles in mask_dict.values() for r in rles)  # some objects enter/leave


def test_deterministic_bytes(tmp_path, small_split):
    args = dict(frames=SMALL["frames"], size=SMALL["size"], progress=False)
    write_split(tmp_path / "a", "train", SMALL["videos"], seed=SMALL["seed"], **args)
    write_split(tmp_path / "c", "train", SMALL["videos"], seed=SMALL["seed"] + 1, **args)
    same, other, first = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "c"), _tree_bytes(small_split)
    assert same == first and len(first) == SMALL["videos"] * SMALL["frames"] + 2
    assert other != first
    assert (tmp_path / "a" / "train" / "meta_expressions.json").read_bytes() != (
        tmp_path / "c" / "train" / "meta_expressions.json"
    ).read_bytes()


def test_two_splits_coexist_and_rewrite_atomically(tmp_path):
    root = tmp_path / "data"
    assert main(["synth", str(root), "--videos", "2", "--frames", "3", "--size", "32x48", "--seed", "0", "--quiet"]) == 0
    assert main(["synth", str(root), "--videos", "3", "--frames", "3", "--size", "32x48", "--seed", "1",
                 "--split-name", "valid_u", "--quiet"]) == 0
    assert sorted(p.name for p in root.iterdir()) == ["train", "valid_u"]
    valid = _tree_bytes(root / "valid_u")
    assert "synth_1_0002" in json.loads((root / "valid_u" / "meta_expressions.json").read_text())["videos"]
    # regenerate train differently: valid_u untouched, train replaced wholesale, no temp folders left
    write_split(root, "train", 1, frames=2, size=(32, 48), seed=5, progress=False)
    assert _tree_bytes(root / "valid_u") == valid
    assert sorted(p.name for p in root.iterdir()) == ["train", "valid_u"]
    assert sorted(p.name for p in (root / "train" / "JPEGImages").iterdir()) == ["synth_5_0000"]
    # a failure half-way leaves the old split in place
    before = _tree_bytes(root / "train")
    good = generate_video(1, 2, (32, 48), name="ok")
    with pytest.raises(AttributeError):
        write_split(root, "train", [good, "not a video"], progress=False)
    assert _tree_bytes(root / "train") == before
    assert sorted(p.name for p in root.iterdir()) == ["train", "valid_u"]


def test_write_given_videos(tmp_path):
    videos = [generate_video(i, 3, (32, 32)) for i in range(2)]
    videos[0].name = "first"
    split = write_split(tmp_path, "valid_u", videos, progress=False)
    meta = json.loads((split / "meta_expressions.json").read_text())
    assert sorted(meta["videos"]) == ["first", "synth_0001"]


def test_cli(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", str(out), "--videos", "2", "--frames", "2", "--size", "16x32", "--seed", "9"]) == 0
    assert "wrote 2 videos" in capsys.readouterr().out
    assert (out / "train" / "JPEGImages" / "synth_9_0001" / "00001.jpg").is_file()
    for bad in (["--size", "12x224"], ["--size", "big"], ["--frames", "0"], ["--videos", "0"], ["--seed", "-1"],
                ["--split-name", "../x"], ["--mix", "colour=1"], ["--mix", "appearance=0,motion=1"]):
        assert main(["synth", str(tmp_path / "e"), "--quiet", *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("flowrvs synth: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "e").exists()
    (tmp_path / "file").write_text("x")
    assert main(["synth", str(tmp_path / "file"), "--quiet", "--videos", "1"]) == 2


def test_reads_back_through_mevis_reader(small_split):
    mevis = pytest.importorskip("flowrvs.data.mevis")
    ds = mevis.MeViSDataset(small_split, "train")
    assert ds.videos() == [f"synth_{SMALL['seed']}_{i:04d}" for i in range(SMALL["videos"])]
    for i, vid in enumerate(ds.videos()):
        expected = generate_video(video_rng(SMALL["seed"], i), SMALL["frames"], SMALL["size"])
        frames = ds.load_frames(vid)
        assert frames.shape == expected.frames.shape
        assert np.abs(frames.astype(int) - expected.frames).mean() < 6
        exps = sorted(ds.expressions(vid), key=lambda e: int(e.exp_id))
        assert [(e.sentence, e.obj_ids) for e in exps] == expected.expressions
        for k, e in enumerate(exps):
            assert np.array_equal(ds.load_mask(e), expected.union_mask(k))

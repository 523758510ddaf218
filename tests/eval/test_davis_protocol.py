"""The DAVIS-2017 unsupervised protocol (flowrvs.eval.davis) and `flowrvs score --dataset davis`.

Hand-worked cases: matching of swapped proposals, a missing proposal, void pixels, recall and
decay, the first-frame object rule; then the scorer end to end on a tiny fake Ref-DAVIS17 split
(the builders of test_data_ytvos_davis.py) in both prediction layouts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.eval.davis import (
    STAT_KEYS,
    average_sets,
    decay_bounds,
    match_video,
    object_record,
    split_annotation,
    split_proposals,
    score_video,
    statistics,
    summarize,
)
from flowrvs.errors import FlowRVSError
from flowrvs.eval.metrics import contour_accuracy, region_similarity
from flowrvs.data import open_dataset
from flowrvs.eval.benchmark import score_davis_split
from helpers import ytvos_davis as fake


H, W = fake.H, fake.W


def box(y0, y1, x0, x1, t=1, shape=(30, 40)) -> np.ndarray:
    m = np.zeros((t, *shape), dtype=bool)
    m[:, y0:y1, x0:x1] = True
    return m


# --- one video ----------------------------------------------------------------------------------
def two_objects(t=3):
    a = box(2, 12, 2, 12, t)  # object 1, top left
    b = box(16, 28, 20, 36, t)  # object 2, bottom right
    return np.stack([a, b])


def test_swapped_proposals_are_matched():
    gt = two_objects()
    ordered = match_video(gt, gt.copy())
    swapped = match_video(gt, gt[::-1].copy())  # proposal 1 covers object 2 and vice versa
    for m in (ordered, swapped):
        np.testing.assert_array_equal(m.j, np.ones((2, 3)))
        np.testing.assert_array_equal(m.f, np.ones((2, 3)))
    assert ordered.proposal.tolist() == [1, 2]
    assert swapped.proposal.tolist() == [2, 1]
    # pairing proposal k with object k instead would score 0 on every frame
    assert region_similarity(gt[1], gt[0]).max() == 0


def test_more_proposals_than_objects_pick_the_best():
    gt = two_objects()
    decoy = box(0, 30, 0, 40, 3)  # the whole frame: J = 100/1200 and 192/1200 with the objects
    m = match_video(gt, np.stack([decoy, gt[1], gt[0]]))
    assert m.proposal.tolist() == [3, 2]
    np.testing.assert_array_equal(m.j, np.ones((2, 3)))


def test_missing_proposal_scores_zero():
    gt = two_objects()
    m = match_video(gt, gt[:1].copy())  # only object 1 was segmented
    np.testing.assert_array_equal(m.j[0], [1, 1, 1])
    np.testing.assert_array_equal(m.f[0], [1, 1, 1])
    # object 2 is matched with an empty padding proposal: J = 0/|G| = 0, F = 0 (only G has a boundary)
    np.testing.assert_array_equal(m.j[1], [0, 0, 0])
    np.testing.assert_array_equal(m.f[1], [0, 0, 0])
    assert m.proposal.tolist() == [1, 0]
    # no proposal at all
    m = match_video(gt, np.zeros((0, 3, 30, 40), bool))
    assert m.proposal.tolist() == [0, 0] and not m.j.any() and not m.f.any()
    s = summarize([object_record(m.j[k], m.f[k]) for k in range(2)])
    assert s["J"] == s["F"] == s["J&F"] == 0.0


def test_void_pixels_are_ignored():
    gt = box(5, 15, 5, 15)[None]  # one object, one frame
    void = np.zeros((1, 30, 40), bool)
    void[0, 5:15, 15:25] = True  # a void strip right of the object
    pred = box(5, 15, 5, 25)[None]  # the object plus the whole void strip
    m = match_video(gt, pred, void)
    assert m.j.tolist() == [[1.0]] and m.f.tolist() == [[1.0]]
    # without the void mask the same prediction is wrong: J = 100/200
    m = match_video(gt, pred)
    assert m.j[0, 0] == pytest.approx(0.5) and m.f[0, 0] < 1
    # a GT pixel under void is not required either
    m = match_video(box(5, 15, 5, 25)[None], gt, void)
    assert m.j.tolist() == [[1.0]] and m.f.tolist() == [[1.0]]


def test_metric_void_equals_masking_both():
    rng = np.random.default_rng(3)
    p, g, v = (rng.random((4, 20, 24)) < q for q in (0.4, 0.5, 0.2))
    keep = ~v
    np.testing.assert_array_equal(region_similarity(p, g, void=v), region_similarity(p & keep, g & keep))
    np.testing.assert_array_equal(contour_accuracy(p, g, void=v), contour_accuracy(p & keep, g & keep))
    assert not np.array_equal(region_similarity(p, g, void=v), region_similarity(p, g))
    with pytest.raises(ValueError, match="void"):
        region_similarity(p, g, void=v[:2])


def test_recall_and_decay_of_values():
    # 8 frames: the quarters' edges are frames 0, 2, 4, 5, 7; first quarter = frames 0-2, last = 5-7
    assert decay_bounds(8) == (slice(0, 3), slice(5, 8))
    assert decay_bounds(5) == (slice(0, 2), slice(3, 5))
    assert decay_bounds(1) == (slice(0, 1), slice(0, 1))
    v = [1.0, 1.0, 0.4, 0.5, 0.5, 0.8, 0.0, 0.0]
    mean, recall, decay = statistics(v)
    assert mean == pytest.approx(4.2 / 8)
    assert recall == 3 / 8  # strictly above 0.5: 1, 1, 0.8
    assert decay == pytest.approx(2.4 / 3 - 0.8 / 3)  # equal chunks (0-1, 6-7) would give 1.0
    mean, recall, decay = statistics([np.nan, 1.0, 0.0, 0.0, 1.0])
    assert mean == 0.5 and recall == 0.4 and decay == pytest.approx(1.0 - 0.5)


def test_recall_and_decay_of_a_sequence():
    # A 10x10 object on 5 frames; prediction: exact, exact, shifted right by 5 (J = 50/150),
    # empty, empty. J per frame 1, 1, 1/3, 0, 0; quarters of 5 frames: 0-1 and 3-4.
    gt = box(5, 15, 5, 15, 5)
    pred = gt.copy()
    pred[2] = box(5, 15, 10, 20)[0]
    pred[3:] = False
    m = match_video(gt[None], pred[None])
    np.testing.assert_allclose(m.j[0], [1, 1, 1 / 3, 0, 0])
    rec = object_record(m.j[0], m.f[0])
    assert rec["J"] == pytest.approx((2 + 1 / 3) / 5)
    assert rec["J-Recall"] == 2 / 5
    assert rec["J-Decay"] == 1.0
    assert rec["F-Recall"] == 2 / 5 and rec["F-Decay"] == 1.0
    assert rec["J&F"] == pytest.approx((rec["J"] + rec["F"]) / 2)


def test_objects_come_from_the_first_frame():
    ann = np.zeros((2, 6, 6), np.uint8)
    ann[0, 0, 0] = 2  # objects 1..2 (1 is absent everywhere: an empty object)
    ann[1, 1, 1] = 3  # only in a later frame: not an object
    ann[:, 5, 5] = 255
    objects, void = split_annotation(ann)
    assert objects.shape == (2, 2, 6, 6)
    assert not objects[0].any() and objects[1, 0, 0, 0] and objects[1].sum() == 1
    assert void.sum() == 2 and not objects[:, :, 5, 5].any()
    props = split_proposals(np.array([[[0, 3], [0, 0]]]))
    assert props.shape == (3, 1, 2, 2) and props[2, 0, 0, 1] and not props[:2].any()
    split_proposals(np.full((1, 2, 2), 20))
    with pytest.raises(ValueError, match="at most 20"):
        split_proposals(np.full((1, 2, 2), 21))


def test_score_video_takes_stacks_of_arrays():
    """One video of one run from its (T, H, W) annotation and result: one record per object."""
    a, b = two_objects()
    ann = (a * 1 + b * 2).astype(np.uint8)
    ann[:, 0, 0] = 255  # void
    records = score_video(ann, swap(ann))  # proposals swapped: still a perfect match
    assert [(r["object"], r["proposal"]) for r in records] == [(1, 2), (2, 1)]
    assert all(r["J"] == 1.0 and r["F"] == 1.0 for r in records)
    only_one = score_video(ann, (ann == 1).astype(np.uint8))
    assert only_one[1]["proposal"] == 0 and only_one[1]["J"] == 0.0
    with pytest.raises(ValueError, match="at most 20"):
        score_video(ann, np.full(ann.shape, 21))
    with pytest.raises(ValueError, match="annotation"):
        score_video(ann, ann[:2])


def test_sets_are_averaged():
    runs = [summarize(score_video(ann, res)) for ann, res in [
        (np.ones((2, 4, 4), np.uint8), np.ones((2, 4, 4), np.uint8)),
        (np.ones((2, 4, 4), np.uint8), np.zeros((2, 4, 4), np.uint8)),
    ]]
    avg = average_sets(runs)
    assert list(avg) == list(STAT_KEYS) and avg["J"] == 0.5 and avg["J&F"] == (avg["J"] + avg["F"]) / 2
    with pytest.raises(ValueError):
        average_sets([])


# --- the scorer on a fake Ref-DAVIS17 split -----------------------------------------------------
def swap(a: np.ndarray) -> np.ndarray:
    return np.where(a == 1, 2, np.where(a == 2, 1, 0)).astype(np.uint8)


FRAMES = {"bike": 3, "dogs": 2}


def write_official(pred: Path, set_index: int, make) -> None:
    for vid, n in FRAMES.items():
        for t in range(n):
            fake.write_palette_png(pred / f"anno_{set_index}" / vid / f"{5 * t:05d}.png", make(t))


@pytest.fixture
def davis_root(tmp_path):
    root = fake.make_davis(tmp_path / "davis")
    # void: a strip next to bike's object 2 in frame 1 (the predictions of set 0 cover it)
    ann = fake.annotation(1)
    ann[20:30, 44:48] = 255
    fake.write_palette_png(root / "valid" / "Annotations" / "bike" / "00005.png", ann)
    return root


def perfect_with_void(t: int) -> np.ndarray:
    a = fake.annotation(t)
    if t == 1:
        a[20:30, 44:48] = 2  # object 2 spills into bike's void strip (and the same pixels of dogs)
    return a


@pytest.fixture
def davis_pred(tmp_path):
    pred = tmp_path / "pred"
    write_official(pred, 0, lambda t: fake.annotation(t))  # perfect
    write_official(pred, 1, lambda t: swap(fake.annotation(t)))  # perfect, ids swapped
    write_official(pred, 2, lambda t: np.where(fake.annotation(t) == 1, 1, 0).astype(np.uint8))  # object 2 missing
    write_official(pred, 3, lambda t: np.zeros((H, W), np.uint8))  # nothing
    return pred


def test_score_davis_end_to_end(davis_root, davis_pred, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["score", str(davis_pred), "--dataset", "davis", "--root", str(davis_root), "--out", str(out)])
    assert rc == 0
    # objects per set: bike 1, 2 and dogs 1, 2 (dogs' object 2 has no sentence, but it is a DAVIS object)
    # set 0 and set 1: 1.0; set 2: objects 1 = 1.0, objects 2 = 0 -> 0.5; set 3: 0. Mean: 2.5 / 4
    assert capsys.readouterr().out.strip() == "J&F 0.6250  J 0.6250  F 0.6250"
    m = json.loads((out / "metrics.json").read_text())
    assert [s["J"] for s in m["annotator_sets"]] == [1.0, 1.0, 0.5, 0.0]
    assert [s["F"] for s in m["annotator_sets"]] == [1.0, 1.0, 0.5, 0.0]
    assert m["num_objects"] == 4 and m["num_videos"] == 2 and m["num_expressions"] == 12
    s1 = m["annotator_sets"][1]
    assert set(s1["per_object"]) == {"bike_1", "bike_2", "dogs_1", "dogs_2"}
    assert s1["per_object"]["bike_1"]["proposal"] == 2 and s1["per_object"]["bike_2"]["proposal"] == 1
    s2 = m["annotator_sets"][2]["per_object"]
    assert s2["bike_2"]["J"] == 0.0 and s2["bike_2"]["proposal"] == 0 and s2["dogs_1"]["J-Recall"] == 1.0
    assert m["J-Recall"] == m["F-Recall"] == 0.625 and m["J-Decay"] == 0.0
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:5] == ["annotator", "key", "video", "object", "proposal"] and "J-Decay" in rows[0]
    assert len(rows) == 1 + 4 * 4
    assert rows[5][:5] == ["1", "bike_1", "bike", "1", "2"]


def test_score_davis_void(davis_root, davis_pred):
    # set 0 with object 2 spilling into bike's void strip: bike still perfect; in dogs (no void)
    # the spill counts, so dogs_2 drops below 1
    write_official(davis_pred, 0, perfect_with_void)
    m = score_davis_split(open_dataset("davis", davis_root), davis_pred)
    objs = m["annotator_sets"][0]["per_object"]
    assert objs["bike_2"]["J"] == 1.0 and objs["bike_2"]["F"] == 1.0
    assert objs["dogs_2"]["J"] < 1.0


def test_score_davis_per_expression_layout_equals_official(davis_root, davis_pred, tmp_path):
    from flowrvs.data.davis import RefDAVISDataset

    ds = RefDAVISDataset(davis_root, "valid")
    made = {0: perfect_with_void, 1: lambda t: swap(fake.annotation(t)),
            2: lambda t: np.where(fake.annotation(t) == 1, 1, 0), 3: lambda t: np.zeros((H, W), np.uint8)}
    per_exp, official = tmp_path / "per_exp", tmp_path / "official"
    for i, members in enumerate(ds.annotator_sets()):
        for video in ds.videos():
            exprs = [e for e in ds.expressions(video) if e.key in members]
            for t, name in enumerate(ds.frame_names(video)):
                index = np.zeros((H, W), np.uint8)
                for e in exprs:
                    # the sentence about object k predicts what `made` labels k (dogs: object 1 only)
                    mask = made[i](t) == e.obj_ids[0]
                    index[mask] = e.obj_ids[0]
                    folder = per_exp / f"anno_{i}" / video / e.exp_id
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{name}.png")
                fake.write_palette_png(official / f"anno_{i}" / video / f"{name}.png", index)
    a = score_davis_split(open_dataset("davis", davis_root), official)
    assert a == score_davis_split(open_dataset("davis", davis_root), per_exp)
    # dogs' object 2 has no sentence: 0 in every set; set 1 (swapped) is still perfect on bike
    assert [s["J"] for s in a["annotator_sets"]] == [0.75, 0.75, 0.5, 0.0]


def test_score_davis_errors(davis_root, davis_pred, capsys):
    # 0/255 masks are not object ids
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(davis_pred / "anno_2" / "dogs" / "00005.png")
    assert main(["score", str(davis_pred), "--dataset", "davis", "--root", str(davis_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "anno_2/dogs/00005.png" in err and "at most 20" in err
    # RGB is refused
    Image.new("RGB", (W, H)).save(davis_pred / "anno_2" / "dogs" / "00005.png")
    assert main(["score", str(davis_pred), "--dataset", "davis", "--root", str(davis_root)]) == 2
    assert "'RGB'" in capsys.readouterr().err
    # a missing frame: an error, or an empty frame with --allow-missing
    (davis_pred / "anno_2" / "dogs" / "00005.png").unlink()
    assert main(["score", str(davis_pred), "--dataset", "davis", "--root", str(davis_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "anno_2/dogs/00005.png" in err and "--allow-missing" in err
    assert main(["score", str(davis_pred), "--dataset", "davis", "--root", str(davis_root), "--allow-missing"]) == 0
    m = json.loads((davis_pred / "metrics.json").read_text())
    assert m["missing_frames"] == 1 and m["annotator_sets"][2]["missing_frames"] == 1
    # dogs_1 of set 2: frame 1 of 2 empty -> J = 0.5
    assert m["annotator_sets"][2]["per_object"]["dogs_1"]["J"] == 0.5
    # wrong size
    fake.write_palette_png(davis_pred / "anno_0" / "bike" / "00000.png", np.zeros((16, 24), np.uint8))
    with pytest.raises(FlowRVSError, match="24x16"):
        score_davis_split(open_dataset("davis", davis_root), davis_pred, allow_missing=True)

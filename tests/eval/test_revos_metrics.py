"""ReVOS scores (J, F, A, R) and the no-target measures equal the formulas re-stated (to 1e-9)."""

import numpy as np
import pytest

from flowrvs.eval.metrics import concat_frames

from flowrvs.data.revos import ReVOSDataset
from flowrvs.errors import FlowRVSError
from flowrvs.eval import revos_metrics as rvm
from flowrvs.eval import score_long_benchmarks
from flowrvs.eval.no_target import no_target_scores
from flowrvs.eval.score_long_benchmarks import score_revos
from helpers.long_benchmarks import (H, RV_EXPRESSIONS, RV_FRAMES, W, make_revos, predict, ref_revos, rv_foreground,
                                     rv_truth, write_predictions)

KEYS = ("J", "F", "J&F", "A", "R")
KIND = {0: "referring", 1: "reasoning", 2: "no-target"}


def _close(got, want):
    for k in KEYS:
        assert got[k] == pytest.approx(want[k], abs=1e-9), k


def test_expression_scores_match_the_formulas():
    vid = "UVO/all/vid1"
    fg = rv_foreground(vid)
    for seed, exp_id in enumerate(["0", "1", "3", "2"]):
        gt = rv_truth(vid, exp_id)
        pred = predict(gt, seed) | predict(fg, seed + 10)  # also false positives on other objects
        _close(rvm.score_expression(pred, gt, fg), ref_revos(pred, gt, fg))
    empty = np.zeros_like(fg)
    assert rvm.robustness(empty | True, empty, empty).tolist() == [0.0] * len(fg)  # clipped at 0
    assert rvm.accuracy(empty, empty).tolist() == [1.0] * len(fg)


def test_chunks_give_the_whole():
    vid = "UVO/all/vid1"
    gt, fg = rv_truth(vid, "1"), rv_foreground(vid)
    pred = predict(gt, 1)
    parts = [rvm.frame_scores(pred[i:i + 4], gt[i:i + 4], fg[i:i + 4]) for i in range(0, len(gt), 4)]
    assert rvm.expression_scores(concat_frames(parts)) == rvm.score_expression(pred, gt, fg)


def test_overall_is_the_mean_of_referring_and_reasoning():
    rec = lambda kind, v: {"type": kind, "J": v, "F": v, "A": v, "R": v}
    per = {"a": rec("referring", 1.0), "b": rec("referring", 1.0), "c": rec("referring", 0.7),
           "d": rec("reasoning", 0.1), "e": rec("no-target", 0.0)}
    out = rvm.summarize(per)
    assert set(out) == {"referring", "reasoning", "overall"}
    assert out["referring"]["J"] == pytest.approx(0.9) and out["reasoning"]["A"] == pytest.approx(0.1)
    assert out["overall"]["R"] == pytest.approx(0.5) and out["overall"]["J&F"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        rvm.summarize({"e": rec("no-target", 0.0)})


def test_no_target_measures():
    pairs = [(True, True), (True, False), (True, True), (False, True), (False, False), (False, False)]
    out = no_target_scores(pairs)
    assert out == {"N-acc": 2 / 3, "T-acc": 2 / 3, "TP": 2, "FN": 1, "TN": 2, "FP": 1}
    assert no_target_scores([(True, True)])["T-acc"] is None


def _predictions(pred_dir, ds, value=1):
    preds = {}
    for k, expr in enumerate(ds.all_expressions()):
        gt = rv_truth(expr.video, expr.exp_id)
        if expr.key == "MeViS/vid2_1":
            pred = predict(rv_foreground(expr.video), 5)  # a no-target sentence answered with a mask
        elif expr.key == "UVO/all/vid1_2":
            pred = np.zeros_like(gt)  # a no-target sentence answered empty
        else:
            pred = predict(gt, k)
        preds[expr.key] = pred
        write_predictions(pred_dir, expr.video, expr.exp_id, RV_FRAMES[expr.video], pred, value)
    return preds


def test_split_scores_equal_the_formulas(tmp_path, monkeypatch):
    monkeypatch.setattr(score_long_benchmarks, "CHUNK", 4)
    ds = ReVOSDataset(make_revos(tmp_path / "revos"), "valid")
    preds = _predictions(tmp_path / "pred", ds)
    out = score_revos(ds, tmp_path / "pred")
    want = {}
    for vid, exps in RV_EXPRESSIONS.items():
        for exp_id, e in exps.items():
            key = f"{vid}_{exp_id}"
            want[key] = {**ref_revos(preds[key], rv_truth(vid, exp_id), rv_foreground(vid)), "type": KIND[e["type_id"]]}
            _close(out["per_expression"][key], want[key])
            assert out["per_expression"][key]["type"] == want[key]["type"]
    groups = {}
    for kind in ("referring", "reasoning"):
        group = [w for w in want.values() if w["type"] == kind]
        m = {k: sum(w[k] for w in group) / len(group) for k in ("J", "F", "A", "R")}
        m["J&F"] = (m["J"] + m["F"]) / 2
        groups[kind] = m
        _close(out[kind], m)
    _close(out["overall"], {k: (groups["referring"][k] + groups["reasoning"][k]) / 2 for k in KEYS})
    for kind in ("referring", "reasoning", "overall"):
        assert set(out[kind]) == set(KEYS) and all(0 <= v <= 1 for v in out[kind].values())
    assert out["no_target"] == {"N-acc": 0.5, "T-acc": 1.0, "TP": 1, "FN": 1, "TN": 4, "FP": 0}
    assert out["num_expressions"] == 6


def test_zero_one_and_zero_255_pngs_score_alike(tmp_path):
    ds = ReVOSDataset(make_revos(tmp_path / "revos"), "valid")
    _predictions(tmp_path / "p1", ds, 1)
    _predictions(tmp_path / "p255", ds, 255)
    assert score_revos(ds, tmp_path / "p1")["overall"] == score_revos(ds, tmp_path / "p255")["overall"]


def test_missing_predictions(tmp_path):
    ds = ReVOSDataset(make_revos(tmp_path / "revos"), "valid")
    preds = _predictions(tmp_path / "pred", ds)
    (tmp_path / "pred" / "MeViS" / "vid2" / "0" / "c.png").unlink()
    with pytest.raises(FlowRVSError, match="MeViS/vid2/0/c.png"):
        score_revos(ds, tmp_path / "pred")
    out = score_revos(ds, tmp_path / "pred", allow_missing=True)
    pred = preds["MeViS/vid2_0"].copy()
    pred[2] = False
    vid = "MeViS/vid2"
    _close(out["per_expression"]["MeViS/vid2_0"], ref_revos(pred, rv_truth(vid, "0"), rv_foreground(vid)))
    assert out["missing_frames"] == 1

"""Long-RVOS scores equal an independent re-statement of the official formulas (to 1e-9)."""

import numpy as np
import pytest

from flowrvs.eval.metrics import concat_frames

from flowrvs.data.long_rvos import LongRVOSDataset
from flowrvs.errors import FlowRVSError
from flowrvs.eval import long_rvos_metrics as lrm
from flowrvs.eval import score_long_benchmarks
from flowrvs.eval.score_long_benchmarks import score_long_rvos
from helpers.long_benchmarks import (H, LR_EXPRESSIONS, LR_FRAMES, W, lr_truth, make_long_rvos, predict,
                                     ref_long_rvos, write_predictions)

KEYS = ("J", "F", "J&F", "tIoU", "vIoU")


def _close(got: dict, want: dict, keys=KEYS):
    for k in keys:
        assert got[k] == pytest.approx(want[k], abs=1e-9), k


def test_expression_scores_match_the_formulas():
    rng = np.random.default_rng(0)
    for seed in range(6):
        gt = lr_truth("vidA", str(seed % 3))
        pred = predict(gt, seed)
        _close(lrm.score_expression(pred, gt), ref_long_rvos(pred, gt))
    noise = rng.random((5, H, W)) > 0.7
    _close(lrm.score_expression(noise, lr_truth("vidB", "0")), ref_long_rvos(noise, lr_truth("vidB", "0")))


def test_temporal_edge_cases():
    empty = np.zeros((4, H, W), dtype=bool)
    assert lrm.score_expression(empty, empty) == {"J": 1.0, "F": 1.0, "J&F": 1.0, "tIoU": 1.0, "vIoU": 1.0}
    gt = empty.copy()
    gt[1:3, 10:20, 10:20] = True
    missed = lrm.score_expression(empty, gt)
    assert missed["tIoU"] == 0.0 and missed["vIoU"] == 0.0 and missed["J"] == pytest.approx(0.5)
    pred = gt.copy()
    pred[3, :5, :5] = True  # a frame predicted where nothing is: tIoU 2/3, vIoU (1 + 1) / 3
    s = lrm.score_expression(pred, gt)
    assert s["tIoU"] == pytest.approx(2 / 3) and s["vIoU"] == pytest.approx(2 / 3)


def test_chunks_give_the_whole():
    gt = lr_truth("vidA", "2")
    pred = predict(gt, 3)
    parts = [lrm.frame_scores(pred[i:i + 3], gt[i:i + 3]) for i in range(0, len(gt), 3)]
    assert lrm.expression_scores(concat_frames(parts)) == lrm.score_expression(pred, gt)


def test_overall_pools_expressions():
    per = {"a": {"type": "static", "J": 1.0, "F": 1.0, "tIoU": 1.0, "vIoU": 1.0},
           "b": {"type": "dynamic", "J": 0.0, "F": 0.0, "tIoU": 0.0, "vIoU": 0.0},
           "c": {"type": "dynamic", "J": 0.0, "F": 0.5, "tIoU": 0.0, "vIoU": 0.0}}
    out = lrm.summarize(per)
    assert set(out) == {"static", "dynamic", "overall"}  # no hybrid expression: no hybrid entry
    assert out["overall"]["J"] == pytest.approx(1 / 3)  # pooled, not (1 + 0) / 2
    assert out["dynamic"]["J&F"] == pytest.approx(0.125) and out["overall"]["F"] == pytest.approx(0.5)


def _predictions(pred_dir, ds, value=255):
    preds = {}
    for k, expr in enumerate(ds.all_expressions()):
        gt = lr_truth(expr.video, expr.exp_id)
        pred = predict(gt, k) if expr.obj_ids else np.zeros_like(gt)
        if expr.key == "vidA_1":
            pred[:] = False  # an empty prediction of a target expression
        preds[expr.key] = pred
        write_predictions(pred_dir, expr.video, expr.exp_id, LR_FRAMES[expr.video], pred, value)
    return preds


def test_split_scores_equal_the_formulas(tmp_path, monkeypatch):
    monkeypatch.setattr(score_long_benchmarks, "CHUNK", 3)  # videos of 5 and 7 frames: several chunks
    ds = LongRVOSDataset(make_long_rvos(tmp_path / "lr"), "valid")
    preds = _predictions(tmp_path / "pred", ds)
    out = score_long_rvos(ds, tmp_path / "pred")
    want = {}
    for vid, exps in LR_EXPRESSIONS.items():
        for exp_id, e in exps.items():
            key = f"{vid}_{exp_id}"
            want[key] = ref_long_rvos(preds[key], lr_truth(vid, exp_id))
            want[key]["type"] = {"static+dynamic": "hybrid"}.get(e["type"], e["type"])
            _close(out["per_expression"][key], want[key])
            assert out["per_expression"][key]["type"] == want[key]["type"]
    for kind in ("static", "dynamic", "hybrid", "overall"):
        group = [w for w in want.values() if kind in ("overall", w["type"])]
        j = sum(w["J"] for w in group) / len(group)
        f = sum(w["F"] for w in group) / len(group)
        expected = {"J": j, "F": f, "J&F": (j + f) / 2,
                    "tIoU": sum(w["tIoU"] for w in group) / len(group),
                    "vIoU": sum(w["vIoU"] for w in group) / len(group)}
        _close(out[kind], expected)
        assert set(out[kind]) == set(KEYS) and all(0 <= v <= 1 for v in out[kind].values())
    assert out["num_expressions"] == 5 and out["missing_frames"] == 0
    # one no-target expression predicted empty (TP); vidA_1 is a target predicted empty (FP)
    assert out["no_target"]["N-acc"] == 1.0 and out["no_target"]["T-acc"] == pytest.approx(3 / 4)
    assert out["per_expression"]["vidA_3"]["no_target"] and not out["per_expression"]["vidA_0"]["no_target"]


def test_any_nonzero_is_foreground(tmp_path):
    ds = LongRVOSDataset(make_long_rvos(tmp_path / "lr"), "valid")
    _predictions(tmp_path / "p255", ds, 255)
    _predictions(tmp_path / "p1", ds, 1)
    a, b = score_long_rvos(ds, tmp_path / "p255"), score_long_rvos(ds, tmp_path / "p1")
    assert a["overall"] == b["overall"]


def test_missing_predictions(tmp_path):
    ds = LongRVOSDataset(make_long_rvos(tmp_path / "lr"), "valid")
    preds = _predictions(tmp_path / "pred", ds)
    gone = tmp_path / "pred" / "vidB" / "0" / "00003.png"
    gone.unlink()
    with pytest.raises(FlowRVSError, match="1 prediction PNGs missing: .*vidB/0/00003.png"):
        score_long_rvos(ds, tmp_path / "pred")
    out = score_long_rvos(ds, tmp_path / "pred", allow_missing=True)
    assert out["missing_frames"] == 1
    pred = preds["vidB_0"].copy()
    pred[3] = False  # scored as an empty frame
    _close(out["per_expression"]["vidB_0"], ref_long_rvos(pred, lr_truth("vidB", "0")))
    with pytest.raises(FlowRVSError, match="does not exist"):
        score_long_rvos(ds, tmp_path / "nope")


def test_wrong_size_prediction_is_refused(tmp_path):
    ds = LongRVOSDataset(make_long_rvos(tmp_path / "lr"), "valid")
    _predictions(tmp_path / "pred", ds)
    write_predictions(tmp_path / "pred", "vidB", "0", ["00002"], [np.ones((H // 2, W // 2), bool)])
    with pytest.raises(FlowRVSError, match="00002.png is 64x48, the ground truth is 128x96"):
        score_long_rvos(ds, tmp_path / "pred")


def test_split_without_masks_is_refused(tmp_path):
    ds = LongRVOSDataset(make_long_rvos(tmp_path / "lr", "test", annotations=False), "test")
    with pytest.raises(FlowRVSError, match="no ground-truth masks"):
        score_long_rvos(ds, tmp_path)

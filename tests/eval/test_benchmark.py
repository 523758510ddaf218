import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.data import open_dataset
from flowrvs.eval.benchmark import score_dataset, score_mevis
from helpers import mevis as fake


KEYS = ["vidA_0", "vidA_1", "vidB_0"]


@pytest.fixture
def root(tmp_path):
    return fake.make_fake_mevis(tmp_path / "mevis")


def write_predictions(pred_dir: Path, empty: bool = False, styles: bool = False) -> Path:
    """PNGs for every expression: the ground truth itself (or all empty), in varied PNG flavours."""
    for n, (video, exps) in enumerate(fake.EXPRESSIONS.items()):
        for exp_id in exps:
            gt = fake.expected_union(video, exp_id)
            folder = pred_dir / video / exp_id
            folder.mkdir(parents=True)
            for t, name in enumerate(fake.FRAMES[video]):
                m = np.zeros_like(gt[t]) if empty else gt[t]
                style = (n + t) % 4 if styles else 0
                if style == 0:  # 0/255 grayscale
                    img = Image.fromarray(m.astype(np.uint8) * 255)
                elif style == 1:  # palette, index 1 = object (DAVIS style)
                    img = Image.frombytes("P", (m.shape[1], m.shape[0]), m.astype(np.uint8).tobytes())
                    img.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
                elif style == 2:  # RGB, object in red only
                    rgb = np.zeros((*m.shape, 3), np.uint8)
                    rgb[m, 0] = 255
                    img = Image.fromarray(rgb)
                else:  # RGBA, transparent background, opaque white object
                    rgba = np.zeros((*m.shape, 4), np.uint8)
                    rgba[m] = 255
                    img = Image.fromarray(rgba)
                img.save(folder / f"{name}.png")
    return pred_dir


def test_perfect_predictions(root, tmp_path):
    pred = write_predictions(tmp_path / "pred", styles=True)
    metrics = score_mevis(open_dataset("mevis", root, "valid_u"), pred)
    assert metrics["J"] == metrics["F"] == metrics["J&F"] == 1.0
    assert metrics["num_expressions"] == 3 and metrics["missing_frames"] == 0
    assert sorted(metrics["per_expression"]) == KEYS
    rec = metrics["per_expression"]["vidA_1"]
    assert rec == {"J": 1.0, "F": 1.0, "J&F": 1.0, "video": "vidA", "exp_id": "1", "exp": "two animals playing"}


def test_empty_predictions(root, tmp_path):
    # An empty prediction scores J = F = 1 on frames where the ground truth is empty too, else 0
    # (the GT has a boundary, the prediction none). vidA_0 and vidA_1 have an object in all 3
    # frames -> 0; vidB_0 is absent in 1 of its 4 frames -> 1/4. Dataset: mean over expressions,
    # (0 + 0 + 1/4) / 3 = 1/12 for J, F and J&F.
    expected = {}
    for video, exps in fake.EXPRESSIONS.items():
        for exp_id in exps:
            gt = fake.expected_union(video, exp_id)
            expected[f"{video}_{exp_id}"] = float(np.mean([not g.any() for g in gt]))
    assert expected == {"vidA_0": 0.0, "vidA_1": 0.0, "vidB_0": 0.25}
    pred = write_predictions(tmp_path / "pred", empty=True)
    metrics = score_mevis(open_dataset("mevis", root, "valid_u"), pred)
    for key, value in expected.items():
        rec = metrics["per_expression"][key]
        assert rec["J"] == pytest.approx(value) and rec["F"] == pytest.approx(value)
    for name in ("J", "F", "J&F"):
        assert metrics[name] == pytest.approx(1 / 12)


def test_cli_writes_both_files(root, tmp_path, capsys):
    pred = write_predictions(tmp_path / "pred")
    out = tmp_path / "report"
    rc = main(["score", str(pred), "--dataset", "mevis", "--root", str(root), "--split", "valid_u", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.out.strip() == "J&F 1.0000  J 1.0000  F 1.0000"
    data = json.loads((out / "metrics.json").read_text())
    assert data["J&F"] == 1.0 and data["num_expressions"] == 3
    assert data["per_expression"]["vidB_0"]["exp"] == "the cat jumping away"
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["key", "video", "exp_id", "J", "F", "J&F"]
    assert [r[0] for r in rows[1:]] == KEYS
    assert rows[2][1:3] == ["vidA", "1"] and float(rows[2][5]) == 1.0
    # default output folder is PRED_DIR
    assert main(["score", str(pred), "--root", str(root)]) == 0
    assert (pred / "metrics.json").is_file() and (pred / "metrics.csv").is_file()
    assert not list(pred.glob(".*"))  # no temporary files left behind


def test_cli_missing_prediction(root, tmp_path, capsys):
    pred = write_predictions(tmp_path / "pred")
    (pred / "vidB" / "0" / "00010.png").unlink()
    rc = main(["score", str(pred), "--root", str(root), "--split", "valid_u"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("flowrvs score: error: ")
    assert "vidB/0/00010.png" in err
    assert not (pred / "metrics.json").exists()

    # --allow-missing scores the frame as empty: vidB_0 frame 2 has an object -> J = F = 0 there
    rc = main(["score", str(pred), "--root", str(root), "--allow-missing"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "1 missing prediction frames" in captured.err
    data = json.loads((pred / "metrics.json").read_text())
    assert data["per_expression"]["vidB_0"]["J"] == pytest.approx(0.75)
    assert data["missing_frames"] == 1
    assert re.fullmatch(r"J&F 0\.\d{4}  J 0\.\d{4}  F 0\.\d{4}", captured.out.strip())


def test_cli_missing_folder(root, tmp_path, capsys):
    pred = write_predictions(tmp_path / "pred")
    for p in (pred / "vidA" / "1").iterdir():
        p.unlink()
    (pred / "vidA" / "1").rmdir()
    assert main(["score", str(pred), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "prediction folder" in err and "vidA/1" in err and "3 frames missing" in err


def test_cli_user_errors(root, tmp_path, capsys):
    pred = write_predictions(tmp_path / "pred")
    # size mismatch names the file
    Image.fromarray(np.zeros((16, 24), np.uint8)).save(pred / "vidA" / "0" / "00001.png")
    assert main(["score", str(pred), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "vidA/0/00001.png" in err and "24x16" in err and "48x32" in err
    # unsupported dataset
    assert main(["score", str(pred), "--dataset", "refcoco", "--root", str(root)]) == 2
    assert "supported: mevis" in capsys.readouterr().err
    # split without masks
    fake.make_fake_mevis(root, "valid", with_masks=False)
    assert main(["score", str(pred), "--root", str(root), "--split", "valid"]) == 2
    assert "split valid has no masks; submit to the server" in capsys.readouterr().err
    # missing prediction folder altogether
    assert main(["score", str(tmp_path / "nope"), "--root", str(root)]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(FlowRVSError, match="supported: mevis"):
        score_dataset("davis17", open_dataset("mevis", root, "valid_u"), pred)


def test_mevis_no_target_expressions_give_n_acc_and_t_acc(root, tmp_path, capsys):
    """An expression with an empty anno_id list (MeViS v2 no-target): N-acc / T-acc are reported."""
    meta_path = root / "valid_u" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["vidA"]["expressions"]["2"] = {"exp": "the unicorn", "obj_id": [], "anno_id": []}
    meta["videos"]["vidB"]["expressions"]["1"] = {"exp": "the dragon", "obj_id": [], "anno_id": []}
    meta_path.write_text(json.dumps(meta))
    pred = write_predictions(tmp_path / "pred")  # the targets' ground truth: none predicted empty
    for video, exp_id, value in (("vidA", "2", 0), ("vidB", "1", 255)):  # vidA_2 empty (TP), vidB_1 not (FN)
        (pred / video / exp_id).mkdir()
        for name in fake.FRAMES[video]:
            Image.fromarray(np.full((fake.H, fake.W), value, np.uint8)).save(pred / video / exp_id / f"{name}.png")
    metrics = score_mevis(open_dataset("mevis", root, "valid_u"), pred)
    assert metrics["no_target"] == {"N-acc": 0.5, "T-acc": 1.0, "TP": 1, "FN": 1, "TN": 3, "FP": 0}
    assert main(["score", str(pred), "--dataset", "mevis", "--root", str(root), "--out", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out.strip().endswith("N-acc 0.5000  T-acc 1.0000")
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["no_target"] == metrics["no_target"]


def test_split_without_no_target_has_no_group(root, tmp_path):
    metrics = score_mevis(open_dataset("mevis", root, "valid_u"), write_predictions(tmp_path / "pred"))
    assert "no_target" not in metrics

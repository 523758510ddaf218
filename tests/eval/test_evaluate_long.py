"""`flowrvs evaluate` and `flowrvs score` end to end on tiny fake Long-RVOS and ReVOS splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.data import open_dataset
from helpers.long_benchmarks import H, W, make_long_rvos, make_revos

SIZE = "48x64"  # half the frames' size: fast, and the tiny model accepts it


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from flowrvs.presets import build_pipeline

    path = tmp_path_factory.mktemp("model") / "tiny"
    build_pipeline("tiny", seed=0).save_pretrained(path)
    return path


def evaluate_args(dataset, root, out, model, *extra):
    return ["evaluate", "--dataset", dataset, "--root", str(root), "--out", str(out), "--model", str(model),
            "--size", SIZE, "--device", "cpu", "--dtype", "float32", *[str(e) for e in extra]]


def check_predictions(root, name, out, values):
    dataset = open_dataset(name, root)
    for video in dataset.videos():
        frames = dataset.frame_names(video)
        for expr in dataset.expressions(video):
            folder = out / "predictions" / video / expr.exp_id
            assert sorted(p.name for p in folder.iterdir()) == sorted(f"{f}.png" for f in frames)
            for f in frames:
                with Image.open(folder / f"{f}.png") as img:
                    assert img.mode == "L" and img.size == (W, H)
                    assert set(np.unique(np.asarray(img))) <= values
    assert not (out / "submission.zip").exists() and not list(out.rglob(".*"))


@pytest.mark.parametrize("name, make, values, extra", [
    ("long-rvos", make_long_rvos, {0, 255}, "tIoU"),
    ("revos", make_revos, {0, 1}, "A "),
])
def test_evaluate_and_score_long_benchmarks(model_dir, tmp_path, capsys, name, make, values, extra):
    root = make(tmp_path / name)
    out = tmp_path / "out"
    assert main(evaluate_args(name, root, out, model_dir)) == 0
    line = capsys.readouterr().out
    assert "J&F" in line and extra in line
    check_predictions(root, name, out, values)
    record = json.loads((out / "evaluate.json").read_text())
    assert record["dataset"] == name and (record["window"], record["overlap"]) == (None, None)  # the method's plan (FlowRVS: 17-frame windows)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("J", "F", "J&F"):
        assert 0.0 <= metrics["overall"][key] <= 1.0
    assert set(metrics["per_expression"]) == {e.key for e in open_dataset(name, root).all_expressions()}
    assert set(metrics["no_target"]) >= {"N-acc", "T-acc"}  # both fake splits have a no-target sentence
    assert main(["score", str(out / "predictions"), "--dataset", name, "--root", str(root),
                 "--out", str(tmp_path / "scored")]) == 0
    assert json.loads((tmp_path / "scored" / "metrics.json").read_text()) == metrics
    # resumed: nothing left to do, the same numbers
    assert main(evaluate_args(name, root, out, model_dir)) == 0
    assert "skipped" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_long_rvos_whole_video_on_request(model_dir, tmp_path, capsys):
    root = make_long_rvos(tmp_path / "long-rvos")
    out = tmp_path / "out"
    assert main(evaluate_args("long-rvos", root, out, model_dir, "--window", 5, "--overlap", 2, "--limit", 1)) == 0
    record = json.loads((out / "evaluate.json").read_text())
    assert (record["window"], record["overlap"]) == (5, 2)
    assert [p.name for p in (out / "predictions").iterdir()] == ["vidA"]
    capsys.readouterr()
    assert main(evaluate_args("long-rvos", root, out, model_dir, "--window", 9, "--limit", 1)) == 2
    assert "window 5 there, 9 now" in capsys.readouterr().err  # other windows, other predictions


def test_dataset_video_reads_one_frame_at_a_time(tmp_path, monkeypatch):
    from flowrvs.data.long_rvos import LongRVOSDataset
    from flowrvs.eval.evaluate import dataset_video

    dataset = open_dataset("long-rvos", make_long_rvos(tmp_path / "long-rvos"))
    whole = dataset.load_frames("vidA")
    real = LongRVOSDataset.load_frames

    def one_at_a_time(self, video, indices=None):
        assert indices is not None and len(indices) == 1
        return real(self, video, indices)

    monkeypatch.setattr(LongRVOSDataset, "load_frames", one_at_a_time)
    stream = dataset_video(dataset, "vidA")
    assert stream.names == dataset.frame_names("vidA") and (stream.height, stream.width) == (H, W)
    for _ in range(2):  # each iteration starts again from the first frame
        np.testing.assert_array_equal(np.stack([frame for _, frame in stream]), whole)

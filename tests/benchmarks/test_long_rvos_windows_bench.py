"""benchmarks/long_rvos_windows.py end to end at tiny size: a Long-RVOS split written, both plans
evaluated and scored by the real commands, and a table whose numbers are the scorer's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowrvs.data.long_rvos import TYPES as META_TYPES, LongRVOSDataset
from flowrvs.eval.long_rvos_metrics import score_expression
from flowrvs.eval.paired import format_difference, paired_difference
from flowrvs.eval.predictions import read_prediction_mask
from helpers.benchmarks import import_benchmark

bench = import_benchmark("long_rvos_windows")


def test_meta_type_of_synthetic_sentences():
    assert bench.meta_type("the two red shapes", "multi") == "static"
    assert bench.meta_type("the circle above the red square", "relation") == "static"
    assert bench.meta_type("the object that turns", "motion") == "dynamic"
    assert bench.meta_type("the large shape that stops", "motion") == "static+dynamic"
    with pytest.raises(ValueError):
        bench.meta_type("the circle", "colour")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("long_rvos_windows")
    argv = ["--threads", "1", "--videos", "1", "--frames", "9", "--size", "48x80", "--returns", "1",
            "--window", "5", "--overlap", "2", "--work", str(work), "--markdown", str(work / "table.md"),
            "--json", str(work / "run.json")]
    assert bench.main(argv) == 0
    return work, (work / "table.md").read_text(), json.loads((work / "run.json").read_text())


def test_split_is_long_rvos_with_absent_objects(run):
    work, _, _ = run
    data = LongRVOSDataset(work / "long_rvos", "valid")
    (video,) = data.videos()
    frames = data.frame_names(video)
    assert all(data.kind(e) in META_TYPES.values() for e in data.expressions(video))
    folders = sorted((work / "long_rvos" / "valid" / "Annotations" / video).iterdir())
    present = [{p.stem for p in folder.iterdir()} for folder in folders]
    assert folders and any(0 < len(p) < len(frames) for p in present)  # a missing PNG: an absent object


def _cells(table: str, label: str) -> list[str]:
    return [row.split("|")[3:-1] for row in table.splitlines() if row.startswith(f"| {label} (")]


def test_table_holds_the_scorers_numbers(run):
    work, table, record = run
    plans = list(record["runs"])
    assert plans[0] == "whole video" and plans[1] == "windows 5:2"
    scored = {plan: json.loads((work / folder / "score" / "metrics.json").read_text())
              for plan, folder in zip(plans, ("whole_video", "windowed"))}
    for group in ("static", "dynamic", "hybrid", "overall"):
        if group not in scored[plans[0]]:
            assert _cells(table, group) == [[" – ", " – ", " – "]]
            continue
        rows = _cells(table, group)
        keys = sorted(k for k, e in scored[plans[0]]["per_expression"].items() if group == "overall" or e["type"] == group)
        expect = [[f" {scored[p][group][m]:.4f} " for m in bench.METRICS] for p in plans]
        diff = [f" {format_difference(*paired_difference(*[[scored[p]['per_expression'][k][m] for k in keys] for p in plans[::-1]]))} "
                for m in bench.METRICS]
        assert rows == expect + [diff]
    assert scored[plans[0]]["overall"] != scored[plans[1]]["overall"]  # the plans differ here
    encoded = {row.split("|")[1].strip(): row.split("|")[2].strip() for row in table.splitlines()[-2:]}
    assert encoded["whole video"] == "1.00" and float(encoded["windows 5:2"]) > 1


def test_scores_are_those_of_the_predictions_on_disk(run):
    work, _, record = run
    data = LongRVOSDataset(work / "long_rvos", "valid")
    (video,) = data.videos()
    for expr in data.expressions(video):
        folder = work / "windowed" / "predictions" / video / expr.exp_id
        pred = np.stack([read_prediction_mask(folder / f"{n}.png") for n in data.frame_names(video)])
        got = score_expression(pred, data.load_mask(expr))
        entry = record["runs"]["windows 5:2"]["metrics"]["per_expression"][expr.key]
        assert got == pytest.approx({k: entry[k] for k in got}, abs=1e-12)

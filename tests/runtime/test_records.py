"""runtime/records.py: a run's settings written once, checked when a run resumes into the folder."""

import json

import pytest

from flowrvs.errors import FlowRVSError
from flowrvs.runtime.distributed import Process
from flowrvs.runtime.records import check_run_record, read_record

RECORD = {"model": "m", "steps": 4, "root": "/data"}


def test_first_run_writes_the_record_on_the_main_process_only(tmp_path):
    check_run_record(tmp_path, "sub/run.json", RECORD, Process(1, 2, 1))
    assert not (tmp_path / "sub" / "run.json").exists()
    check_run_record(tmp_path, "sub/run.json", RECORD, Process())
    assert json.loads((tmp_path / "sub" / "run.json").read_text()) == RECORD


def test_a_resumed_run_must_match(tmp_path):
    check_run_record(tmp_path, "run.json", RECORD, Process())
    check_run_record(tmp_path, "run.json", dict(RECORD), Process(1, 2, 1))
    with pytest.raises(FlowRVSError, match=r"holds masks of another run .*steps 4 there, 8 now") as excinfo:
        check_run_record(tmp_path, "run.json", {**RECORD, "steps": 8}, Process(), outputs="masks")
    assert str(tmp_path) in str(excinfo.value)


def test_only_the_keys_asked_for_are_compared(tmp_path):
    check_run_record(tmp_path, "run.json", RECORD, Process())
    check_run_record(tmp_path, "run.json", {**RECORD, "root": "/elsewhere"}, Process(), keys=("model", "steps"))
    with pytest.raises(FlowRVSError, match="model"):
        check_run_record(tmp_path, "run.json", {**RECORD, "model": "n"}, Process(), keys=("model", "steps"))


def test_an_unreadable_record_is_replaced(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    assert read_record(tmp_path / "run.json") is None
    check_run_record(tmp_path, "run.json", RECORD, Process())
    assert read_record(tmp_path / "run.json") == RECORD

"""benchmarks/fuzz.py: the harness tells results, refusals and findings apart, and a seeded run of
every reader finds nothing (issue 24, point 4)."""

from __future__ import annotations

import time

import pytest

from flowrvs.errors import FlowRVSError
from helpers.benchmarks import import_benchmark

fuzz = import_benchmark("fuzz")

CASES = {"model-folder": 12, "sentences": 12, "batch-resume": 12, "score": 16}  # the costly ones; else 20


def _raise(exc: BaseException):
    def call():
        raise exc

    return call


def test_outcomes_are_told_apart():
    assert fuzz.outcome(lambda: 3)[0] == "result"
    assert fuzz.outcome(_raise(FlowRVSError("clip.mp4 is not a video")))[0] == "refused"
    assert fuzz.outcome(_raise(fuzz.Accepted("a miss")))[0] == "refused"
    kind, signature, _ = fuzz.outcome(_raise(FlowRVSError("two\nlines")))
    assert kind == "finding" and signature.startswith("FlowRVSError not one line")
    kind, signature, message = fuzz.outcome(_raise(KeyError("size")))
    assert kind == "finding" and signature.startswith("KeyError at ") and "size" in message


def test_a_hang_ends_as_a_finding(monkeypatch):
    monkeypatch.setattr(fuzz, "CASE_SECONDS", 0.5)

    def spin():
        while True:
            time.sleep(0.01)

    kind, signature, _ = fuzz.outcome(spin)
    assert kind == "finding" and signature.startswith("hang")


def test_a_file_written_outside_the_output_folder_is_a_finding(tmp_path):
    def build(data, inp, out):
        return lambda: (out.parent.parent / "escaped.png").write_bytes(b"x")

    def build_inside(data, inp, out):
        return lambda: (out / "mask.png").write_bytes(b"x")

    tally, inside = fuzz.Tally(), fuzz.Tally()
    fuzz.run_one("planted", build, None, tmp_path, tally, None)
    fuzz.run_one("planted", build_inside, None, tmp_path, inside, None)
    assert list(tally.findings) == ["wrote outside the output folder"] and tally.cases == 1
    assert inside.results == 1 and not inside.findings
    assert not list(tmp_path.iterdir())  # each case is cleaned up, escapes included


@pytest.mark.parametrize("name", list(fuzz.READERS))
def test_seeded_cases_of_each_reader_find_nothing(name):
    cases = CASES.get(name, 20)
    tally = fuzz.fuzz_reader(name, cases, seed=0)
    assert tally.cases == cases
    found = list(tally.findings.values())
    assert not found, "\n".join(f"{f.signature}: {f.message}" for f in found)

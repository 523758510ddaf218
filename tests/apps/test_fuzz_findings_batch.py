"""Regression test of what benchmarks/fuzz.py found in segment-batch's inputs (issue 24, point 4)."""

from __future__ import annotations

import json

import pytest

from flowrvs.apps.batch import read_sentence_file
from flowrvs.errors import FlowRVSError
from flowrvs.io.names import MAX_NAME_BYTES, check_name


def test_a_video_name_too_long_for_a_file_is_refused_in_one_line(tmp_path):
    """A 300-byte key became OUT/<key>/masks.json: OSError ENAMETOOLONG out of the resume check."""
    path = tmp_path / "sentences.json"
    path.write_text(json.dumps({"x" * 300: ["a dog"]}))
    with pytest.raises(FlowRVSError, match="longer than") as err:
        read_sentence_file(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_the_longest_name_fits_with_its_temporaries(tmp_path):
    name = "é" * (MAX_NAME_BYTES // 2) + "x" * (MAX_NAME_BYTES % 2)  # bytes, not characters, count
    assert len(name.encode()) == MAX_NAME_BYTES and check_name(name, "f") == name
    (tmp_path / f".{name}.json.0123456789ab.tmp").write_text("")  # atomic_path's temp of a status record
    with pytest.raises(FlowRVSError):
        check_name(name + "x", "f")

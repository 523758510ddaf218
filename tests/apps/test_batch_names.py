"""segment-batch: video names from a sentences file are checked before they name an output folder."""

from __future__ import annotations

import json

import pytest

from flowrvs.apps.batch import read_sentence_file
from flowrvs.errors import FlowRVSError


@pytest.mark.parametrize("name", ["../outside", "/abs/clip.mp4", "..", "a/b.mp4"])
def test_json_key_escaping_out_is_refused(tmp_path, name):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"ok.mp4": ["the dog"], name: ["the cat"]}))
    with pytest.raises(FlowRVSError, match=r"s\.json: bad video name"):
        read_sentence_file(path)


def test_csv_video_escaping_out_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("video,sentence\nok.mp4,the dog\n../../x.mp4,the cat\n")
    with pytest.raises(FlowRVSError, match=r"s\.csv: bad video name '\.\./\.\./x\.mp4'"):
        read_sentence_file(path)


def test_plain_names_pass(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"clip one.mp4": ["the dog"], "frames_dir": "a ball"}))
    assert read_sentence_file(path) == {"clip one.mp4": ["the dog"], "frames_dir": ["a ball"]}

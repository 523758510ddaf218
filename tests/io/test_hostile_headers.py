"""Headers claiming absurd sizes or frame counts are refused before a frame is decoded (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import flowrvs.io.read as read
from flowrvs.errors import FlowRVSError
from flowrvs.io.encode import write_video


def _no_decoding(*_args, **_kwargs):
    raise AssertionError("a frame was decoded before the header was checked")


def test_gif_wider_than_the_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "wide.gif"
    Image.new("P", (read.MAX_SIDE + 1, 1)).save(path)
    monkeypatch.setattr(read, "_iter_gif", _no_decoding)
    with pytest.raises(FlowRVSError, match=rf"wide\.gif: its header claims {read.MAX_SIDE + 1}x1 frames"):
        read.open_video(path)


def test_container_claiming_too_many_frames_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    write_video(path, np.zeros((5, 32, 32, 3), dtype=np.uint8), fps=5)
    monkeypatch.setattr(read, "MAX_HEADER_FRAMES", 3)
    monkeypatch.setattr(read, "_iter_container", _no_decoding)
    with pytest.raises(FlowRVSError, match=r"clip\.mp4: its header claims 5 frames; refusing more than 3"):
        read.open_video(path)


def test_the_command_line_says_it_in_one_line(tmp_path, capsys):
    from flowrvs.apps.cli import main

    path = tmp_path / "wide.gif"
    Image.new("P", (read.MAX_SIDE + 1, 2)).save(path)
    assert main(["segment", str(path), "-p", "a dog", "--out", str(tmp_path / "out"), "--model", "tiny-synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing sides over" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [(640, 480), (1920, 1080), (3840, 2160)])
def test_real_sizes_pass(size):
    read.check_header("v.mp4", *size, 3600)

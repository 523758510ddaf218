"""Tests for flowrvs.io.encode: MP4 and GIF writing, read back with flowrvs.io.read."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.io.encode import write_gif, write_video
from flowrvs.io.read import Video, read_video
from helpers.videos import distinct_frames, smooth_frames


def test_write_read_video_round_trip(tmp_path):
    frames = smooth_frames(12, 64, 96)
    path = tmp_path / "out" / "clip.mp4"
    write_video(path, frames, fps=12.0)
    assert path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name != "clip.mp4"]  # no temp left over
    video = read_video(path)
    assert isinstance(video, Video)
    assert video.frames.shape == frames.shape and video.frames.dtype == np.uint8
    assert video.names == [f"{i:05d}" for i in range(12)]
    assert video.fps == pytest.approx(12.0)
    assert np.abs(video.frames.astype(np.int16) - frames).mean() < 8
    assert len(video) == 12


def test_write_video_ntsc_fps_and_max_frames(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_frames(6, 32, 32), fps=30000 / 1001)
    video = read_video(path, max_frames=4)
    assert video.fps == pytest.approx(29.97, abs=0.01)
    assert video.frames.shape[0] == 4


def test_write_video_odd_size_reads_back_within_one_pixel(tmp_path):
    frames = smooth_frames(5, 33, 47)
    path = tmp_path / "odd.mp4"
    write_video(path, frames, fps=24)
    video = read_video(path)
    t, h, w, _ = video.frames.shape
    assert t == 5
    assert 33 <= h <= 34 and 47 <= w <= 48
    assert np.abs(video.frames[:, :33, :47].astype(np.int16) - frames).mean() < 8




def test_gif_round_trip(tmp_path):
    frames = distinct_frames(5, 20, 30)
    path = tmp_path / "anim.gif"
    write_gif(path, frames, fps=10)
    with Image.open(path) as img:
        assert img.n_frames == 5
        assert img.info.get("loop") == 0
    video = read_video(path)
    assert video.frames.shape == (5, 20, 30, 3)
    assert np.abs(video.frames.astype(np.int16) - frames).max() <= 8
    assert video.fps == pytest.approx(10.0)
    assert video.names == [f"{i:05d}" for i in range(5)]




def test_write_video_mpeg4_fallback(tmp_path, monkeypatch):
    import flowrvs.io.encode as encode_module

    monkeypatch.setattr(encode_module, "_video_codec", lambda: "mpeg4")
    frames = smooth_frames(4, 31, 33)
    path = tmp_path / "fallback.mp4"
    write_video(path, frames, fps=25)
    video = read_video(path)
    assert video.frames.shape == (4, 32, 34, 3)
    assert video.fps == pytest.approx(25.0)
    assert np.abs(video.frames[:, :31, :33].astype(np.int16) - frames).mean() < 8




def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=24)
    with pytest.raises(FlowRVSError, match="fps"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.uint8), fps=0)
    assert not list(tmp_path.iterdir())



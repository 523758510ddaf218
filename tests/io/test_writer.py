"""Tests for flowrvs.io.writer: the streamed segmentation writer and its layouts."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

import flowrvs.io.encode as encode_module
from flowrvs.io.atomic import atomic_dir
from flowrvs.io.encode import write_video
from flowrvs.io.masks import decode_rle, encode_rle, write_mask_pngs
from flowrvs.io.overlay import overlay_masks
from flowrvs.io.read import read_video
from flowrvs.io.writer import Layout, SegmentationWriter, SegmentFolder, SubmissionFolders

T, H, W = 7, 20, 30


@dataclass
class Result:
    """A whole result, as the pipeline's output holds it."""

    prompts: list[str]
    masks: list[np.ndarray]
    frame_names: list[str]
    fps: float


def make_result(seed: int = 0) -> tuple[np.ndarray, Result]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    masks = [
        np.stack([(yy - 8) ** 2 + (xx - 4 - 2 * t) ** 2 < 30 for t in range(T)]),
        rng.random((T, H, W)) > 0.7,
    ]
    names = [f"frame{t * 5}" for t in range(T)]
    return frames, Result(prompts=["the red circle", "noise"], masks=masks, frame_names=names, fps=12.5)


def expected_index(result: Result, source: str) -> dict:
    """masks.json as `flowrvs segment` has always written it."""
    return {
        "video": source,
        "num_frames": T,
        "height": H,
        "width": W,
        "fps": result.fps,
        "frame_names": result.frame_names,
        "prompts": [
            {"index": k, "prompt": p, "masks": {n: encode_rle(m) for n, m in zip(result.frame_names, masks)}}
            for k, (p, masks) in enumerate(zip(result.prompts, result.masks))
        ],
    }


def write_result(folder, frames: np.ndarray, result: Result, source: str, overlay: bool = True) -> None:
    """``result`` written frame by frame in the SegmentFolder layout."""
    with SegmentationWriter(SegmentFolder(folder, source, result.fps, overlay=overlay), result.prompts) as writer:
        for t, name in enumerate(result.frame_names):
            writer.add(name, frames[t] if overlay else None, np.stack([m[t] for m in result.masks]))


def test_streamed_writer_writes_the_reference_files(tmp_path, monkeypatch):
    monkeypatch.setattr(encode_module, "_video_codec", lambda: "mpeg4")  # deterministic bytes (x264 threads are not)
    frames, result = make_result()
    streamed = tmp_path / "streamed"
    with SegmentationWriter(SegmentFolder(streamed, "clip.mp4", result.fps), result.prompts) as writer:
        for t, name in enumerate(result.frame_names):
            writer.add(name, frames[t], np.stack([m[t] for m in result.masks]))
    reference = tmp_path / "reference"
    for k, masks in enumerate(result.masks):
        write_mask_pngs(reference / str(k), masks, result.frame_names)
    write_video(reference / "overlay.mp4", overlay_masks(frames, result.masks), result.fps)

    files = sorted(p.relative_to(streamed).as_posix() for p in streamed.rglob("*") if p.is_file())
    assert files == sorted(
        ["masks.json", "overlay.mp4"] + [f"{k}/{n}.png" for k in range(2) for n in result.frame_names]
    )
    for k in range(2):
        for name in result.frame_names:
            assert (streamed / str(k) / f"{name}.png").read_bytes() == (reference / str(k) / f"{name}.png").read_bytes()
    assert (streamed / "masks.json").read_text() == json.dumps(expected_index(result, "clip.mp4"))
    assert (streamed / "overlay.mp4").read_bytes() == (reference / "overlay.mp4").read_bytes()


def test_overlay_with_the_default_codec_decodes_to_the_overlay_frames(tmp_path):
    _, result = make_result(1)
    result.masks[1] = np.zeros((T, H, W), bool)
    result.masks[1][:, 10:, 15:] = True  # codec-friendly: flat regions
    frames = np.broadcast_to(np.linspace(60, 200, T, dtype=np.uint8)[:, None, None, None], (T, H, W, 3)).copy()
    write_result(tmp_path, frames, result, "clip.mp4")
    overlay = read_video(tmp_path / "overlay.mp4")
    assert overlay.fps == pytest.approx(result.fps)
    expected = overlay_masks(frames, result.masks)
    assert overlay.frames.shape == expected.shape
    error = np.abs(overlay.frames.astype(np.int16) - expected)
    assert np.median(error) <= 3 and error.mean() < 10  # lossy, and chroma at half resolution blurs 1-px contours


def test_masks_json_round_trips_and_no_overlay(tmp_path):
    frames, result = make_result(2)
    write_result(tmp_path, frames, result, "x", overlay=False)
    assert not (tmp_path / "overlay.mp4").exists()
    info = json.loads((tmp_path / "masks.json").read_text())
    for k, masks in enumerate(result.masks):
        for name, mask in zip(result.frame_names, masks):
            assert np.array_equal(decode_rle(info["prompts"][k]["masks"][name]), mask)
            assert np.array_equal(np.array(Image.open(tmp_path / str(k) / f"{name}.png")) > 0, mask)


def test_exception_half_way_leaves_nothing_that_looks_finished(tmp_path):
    frames, result = make_result(3)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_dir(out) as tmp, SegmentationWriter(SegmentFolder(tmp, "clip", result.fps), result.prompts) as writer:
            for t, name in enumerate(result.frame_names):
                if t == 4:
                    assert (tmp / "0" / f"{result.frame_names[3]}.png").is_file()  # written as they come
                    raise RuntimeError("killed half way")
                writer.add(name, frames[t], np.stack([m[t] for m in result.masks]))
    assert list(tmp_path.iterdir()) == []  # no output folder, no temporary folder

    out.mkdir()
    (out / "masks.json").write_text("previous run")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp, SegmentationWriter(SegmentFolder(tmp, "clip", result.fps), result.prompts) as writer:
            writer.add(result.frame_names[0], frames[0], np.stack([m[0] for m in result.masks]))
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "masks.json").read_text() == "previous run"  # the finished folder is untouched


def test_aborted_writer_leaves_no_overlay_or_index(tmp_path):
    frames, result = make_result(4)
    writer = SegmentationWriter(SegmentFolder(tmp_path, "clip", result.fps), result.prompts)
    writer.add("a", frames[0], np.stack([m[0] for m in result.masks]))
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1"]  # masks only: no masks.json, no overlay


def test_writer_rejects_bad_frames(tmp_path):
    frames, result = make_result(5)
    writer = SegmentationWriter(SegmentFolder(tmp_path, "clip", result.fps), result.prompts)
    good = np.stack([m[0] for m in result.masks])
    with pytest.raises(ValueError, match="one per prompt"):
        writer.add("a", frames[0], good[:1])
    with pytest.raises(ValueError, match="bad mask name"):
        writer.add("../a", frames[0], good)
    writer.add("a", frames[0], good)
    with pytest.raises(ValueError, match="already added"):
        writer.add("a", frames[1], good)
    with pytest.raises(ValueError, match="earlier frames"):
        writer.add("b", frames[1], good[:, :5])
    with pytest.raises(ValueError, match="overlay needs"):
        writer.add("b", None, good)
    writer.abort()
    with pytest.raises(ValueError, match="no frames"):
        SegmentationWriter(SegmentFolder(tmp_path / "empty", "clip", result.fps), result.prompts).close()


def test_submission_layout_writes_one_png_folder_per_sentence_and_nothing_else(tmp_path):
    frames, result = make_result(6)
    folders = [tmp_path / "vid" / "0", tmp_path / "vid" / "1"]  # e.g. MeViS <video>/<exp_id>
    with SegmentationWriter(SubmissionFolders(folders), result.prompts) as writer:
        for t, name in enumerate(result.frame_names):
            writer.add(name, None, np.stack([m[t] for m in result.masks]))  # no frames needed
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(f"vid/{k}/{n}.png" for k in range(2) for n in result.frame_names)
    reference = tmp_path / "reference"
    for k, masks in enumerate(result.masks):
        write_mask_pngs(reference / str(k), masks, result.frame_names)
        for name in result.frame_names:
            assert (folders[k] / f"{name}.png").read_bytes() == (reference / str(k) / f"{name}.png").read_bytes()


def test_submission_layout_checks_its_folders(tmp_path):
    with pytest.raises(ValueError, match="2 prompts but 1 folders"):
        SegmentationWriter(SubmissionFolders([tmp_path / "a"]), ["x", "y"])
    with pytest.raises(ValueError, match="distinct"):
        SubmissionFolders([tmp_path / "a", tmp_path / "a"])


def test_a_layout_is_called_in_order_and_aborted_on_an_error(tmp_path):
    calls = []

    class Recording(Layout):
        def start(self, prompts):
            calls.append(("start", prompts))

        def add(self, name, frame, masks):
            calls.append(("add", name, masks.shape, masks.dtype))

        def close(self, frame_names):
            calls.append(("close", frame_names))

        def abort(self):
            calls.append(("abort",))

    with SegmentationWriter(Recording(), ["a"]) as writer:
        writer.add("f0", None, np.ones((1, 2, 3), np.uint8))
    assert calls == [("start", ["a"]), ("add", "f0", (1, 2, 3), np.dtype(bool)), ("close", ["f0"])]
    calls.clear()
    with pytest.raises(RuntimeError):
        with SegmentationWriter(Recording(), ["a"]) as writer:
            raise RuntimeError("stop")
    assert calls == [("start", ["a"]), ("abort",)]

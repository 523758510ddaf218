"""Long videos at flat memory, the text encoder kept apart, and the right precision per machine,
through the pipeline and the command line (tiny models; counts, never times)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowrvs.options import SegmentOptions
from flowrvs.pipelines import loader, streaming
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.streaming import stream_segmentation
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.pipelines.windows import blend_weights, plan_windows


def _frames(t, h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_windowed_equals_whole_video_when_it_fits_in_one_window(tiny_pipe):
    frames = _frames(13)
    whole = tiny_pipe(frames, ["a dog", "the red circle"], size=(32, 48), return_logits=True, window=0)
    windowed = tiny_pipe(frames, ["a dog", "the red circle"], size=(32, 48), return_logits=True, window=17, overlap=4)
    for a, b in zip(whole.logits, windowed.logits):
        assert np.array_equal(a, b)


def test_windows_are_cross_faded_over_their_overlap(tiny_pipe):
    frames = _frames(25, seed=1)
    plan = plan_windows(25, 9, 2)
    assert len(plan) >= 3
    out = tiny_pipe(frames, "a dog", size=(32, 48), return_logits=True, window=9, overlap=2)
    expected = np.zeros((25, 32, 48), np.float64)
    for win, weights in zip(plan, blend_weights(plan)):
        alone = tiny_pipe(frames[win.start : win.stop], "a dog", size=(32, 48), return_logits=True, window=0)
        expected[win.start : win.stop] += weights.numpy()[:, None, None] * alone.logits[0]
    assert np.allclose(out.logits[0], expected, atol=1e-5)


def _count_what_the_stream_holds(monkeypatch) -> dict:
    """Instrument the stream: most input frames held at once (a window plus the frames it shares
    with the next) and most frames of blended logits carried between windows."""
    peaks = {"frames": 0, "logits": 0}
    original_iter = streaming.iter_windows

    def counting_iter(video, plan):
        for window, frames in original_iter(video, plan):
            following = plan[window.index + 1] if window.index + 1 < len(plan) else None
            carried = max(window.stop - following.start, 0) if following is not None else 0
            peaks["frames"] = max(peaks["frames"], len(frames) + carried)
            yield window, frames

    class CountingBlender(streaming.LogitBlender):
        def add(self, logits):
            out = super().add(logits)
            peaks["logits"] = max(peaks["logits"], self.held_frames)
            return out

    monkeypatch.setattr(streaming, "iter_windows", counting_iter)
    monkeypatch.setattr(streaming, "LogitBlender", CountingBlender)
    return peaks


def test_a_long_video_never_holds_more_than_a_window_and_its_overlap(tiny_pipe, monkeypatch):
    peaks = {}
    options = SegmentOptions(size=(16, 16), window=9, overlap=2)
    for length in (61, 117, 200):  # 61 and 117 end the same way (56 more frames: 8 more windows)
        counted = _count_what_the_stream_holds(monkeypatch)
        stream = stream_segmentation(tiny_pipe, _frames(length, 16, 16, seed=2), "a dog", options)
        assert [item.index for item in stream] == list(range(length))  # every frame once, in order
        assert len(stream.plan) >= 8
        peaks[length] = (counted["frames"], counted["logits"])
        # a window plus what it shares with the next (the last window may be moved back onto its
        # neighbour, never onto a third window): bounded by the window, not by the video
        assert counted["frames"] < 2 * 9 and counted["logits"] < 9
        monkeypatch.undo()
    assert peaks[61] == peaks[117]  # twice the video, the same memory


def test_a_sentence_seen_before_never_loads_the_text_encoder(tiny_pipe, tmp_path, monkeypatch):
    tiny_pipe.save_pretrained(tmp_path / "model")
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "cache"))
    loads = []
    original = FlowRVSPipeline._load_text_encoder
    monkeypatch.setattr(FlowRVSPipeline, "_load_text_encoder", lambda self: loads.append(1) or original(self))
    first = load_pipeline(tmp_path / "model", device="cpu")
    assert first.text_encoder is None  # not resident
    a = first(_frames(5), ["a dog", "the red circle"], size=(32, 48), return_logits=True)
    assert len(loads) == 1  # one load for both new sentences
    again = load_pipeline(tmp_path / "model", device="cpu")  # a new process would do the same
    b = again(_frames(5), ["the  red circle", "a dog"], size=(32, 48), return_logits=True)  # cleaned-equal
    assert len(loads) == 1
    assert np.array_equal(a.logits[0], b.logits[1]) and np.array_equal(a.logits[1], b.logits[0])
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.safetensors"))) == 2


def test_cli_streams_a_long_video_into_the_same_files_and_warns_once_for_slow_bf16(tmp_path):
    from PIL import Image

    video = tmp_path / "frames"
    video.mkdir()
    for i, f in enumerate(_frames(23, seed=3)):
        Image.fromarray(f).save(video / f"{i:05d}.png")
    env = {**os.environ, "FLOWRVS_CPU_BF16": "0"}
    base = [sys.executable, "-m", "flowrvs", "segment", str(video), "-p", "the red circle", "--model", "tiny-synthetic",
            "--no-overlay"]
    run = subprocess.run(base + ["--out", str(tmp_path / "a"), "--window", "9", "--overlap", "2"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    from flowrvs.io.read import read_video

    direct = load_pipeline("tiny-synthetic", device="cpu")(video, "the red circle", window=9, overlap=2)
    written = read_video(tmp_path / "a" / "0").frames[..., 0] > 127
    assert np.array_equal(written, direct.masks[0])
    # bf16 on a CPU without native bf16 is the naive conv path: keep this run small (5 frames, 16x32)
    short = [*base[:4], str(tmp_path / "short"), *base[5:]]
    (tmp_path / "short").mkdir()
    for name in sorted(p.name for p in video.iterdir())[:5]:
        (tmp_path / "short" / name).write_bytes((video / name).read_bytes())
    slow = subprocess.run(short + ["--out", str(tmp_path / "b"), "--dtype", "bfloat16", "--size", "16x32"], env=env,
                          capture_output=True, text=True)
    assert slow.returncode == 0, slow.stderr
    warnings = [line for line in slow.stderr.splitlines() if "slower" in line]
    assert len(warnings) == 1 and "bfloat16" in warnings[0]


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_of_a_large_model_follows_the_cpu(native, monkeypatch, tiny_pipe, tmp_path):
    from flowrvs.runtime import precision

    monkeypatch.setenv("FLOWRVS_CPU_BF16", "1" if native else "0")
    precision.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(loader, "LARGE_MODEL_BYTES", 0)  # treat the tiny model as a large one
    tiny_pipe.save_pretrained(tmp_path / "model")
    try:
        pipe = load_pipeline(tmp_path / "model", device="cpu")
    finally:
        precision.cpu_has_native_bf16.cache_clear()
    plan = pipe._precision
    if native:
        assert plan.transformer.compute == torch.bfloat16 and plan.vae.compute == torch.bfloat16
    else:  # never the naive bf16 conv path: fp32 compute, the DiT stored in bf16
        assert plan.vae.compute == torch.float32 and plan.vae.storage == torch.float32
        assert plan.transformer.compute == torch.float32 and plan.transformer.storage == torch.bfloat16
    assert pipe(_frames(5), "a dog", size=(32, 48)).masks[0].shape == (5, 32, 48)

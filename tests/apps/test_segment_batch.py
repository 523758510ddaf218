"""`flowrvs segment-batch`: a folder of videos, per-video failures, resume, torchrun shares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from flowrvs.apps.batch import plan_jobs, read_sentence_file, segment_batch
from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.options import SegmentOptions

SIZE = "32x48"  # frames at the tiny model's working size
SENTENCES = {
    "a.mp4": ["the red circle", "the square on the left"],
    "b": ["the blue star"],
    "broken": ["the dog"],
    "gone.mp4": ["the cat"],
    "c": ["the green object", "  "],
}
GOOD, BAD = ["a", "b"], ["broken", "c", "gone"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("batch")


@pytest.fixture(scope="module")
def model_dir(work, tiny_pipe):
    path = work / "model"
    tiny_pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def videos(work):
    from flowrvs.data.synth.generate import generate_video
    from flowrvs.io.encode import write_video

    folder = work / "videos"
    folder.mkdir()
    write_video(folder / "a.mp4", generate_video(1, frames=5, size=(32, 48)).frames, fps=8)
    frames = folder / "b"
    frames.mkdir()
    for i, frame in enumerate(generate_video(2, frames=3, size=(32, 48)).frames):
        Image.fromarray(frame).save(frames / f"{i:03d}.png")
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    write_video(folder / "c.mp4", generate_video(3, frames=2, size=(32, 48)).frames, fps=8)
    write_video(folder / "unlisted.mp4", generate_video(4, frames=2, size=(32, 48)).frames, fps=8)
    (work / "sentences.json").write_text(json.dumps(SENTENCES))
    return folder


def batch_args(videos, model_dir, out, *extra, sentences=None):
    return ["segment-batch", str(videos), "--sentences", str(sentences or videos.parent / "sentences.json"),
            "--model", str(model_dir), "--out", str(out), "--size", SIZE, "--device", "cpu", "--dtype", "float32",
            *extra]


def tree(root: Path) -> dict[str, bytes | int]:
    """Every file under ``root`` but the bookkeeping (summary, status records) -> its bytes.

    An overlay.mp4 counts by its frames: libx264 here does not give the same bytes twice in a process.
    """
    from flowrvs.io.read import read_video

    return {p.relative_to(root).as_posix(): len(read_video(p)) if p.name == "overlay.mp4" else p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "summary.json" and ".status" not in p.parts}


@pytest.fixture(scope="module")
def full_run(videos, model_dir, work):
    out = work / "full"
    code = main(batch_args(videos, model_dir, out))
    return out, code


def test_batch_writes_segment_layout_and_reports_failures(full_run, videos, model_dir, tmp_path, capsys):
    out, code = full_run
    assert code == 2  # some videos failed
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["videos"]) == sorted(GOOD + BAD) and summary["failed"] == BAD
    assert summary["total"] == 5 and summary["done"] == 2
    for name, frames in (("a", 5), ("b", 3)):
        entry = summary["videos"][name]
        assert entry["status"] == "done" and entry["frames"] == frames
        assert entry["sentences"] == len(SENTENCES["a.mp4" if name == "a" else name])
        assert entry["seconds"] > 0
    errors = {n: summary["videos"][n]["error"] for n in BAD}
    assert "cannot decode" in errors["broken"] and "no video" in errors["gone"] and "empty" in errors["c"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a", "b", "summary.json"]
    assert sorted(p.name for p in (out / "b" / "0").iterdir()) == ["000.png", "001.png", "002.png"]

    # a video's folder is exactly what `flowrvs segment` writes for it
    seg = tmp_path / "seg"
    prompts = [x for s in SENTENCES["a.mp4"] for x in ("-p", s)]
    assert main(["segment", str(videos / "a.mp4"), *prompts, "--model", str(model_dir), "--out", str(seg),
                 "--size", SIZE, "--device", "cpu", "--dtype", "float32"]) == 0
    assert tree(out / "a") == tree(seg)


def test_failed_batch_prints_one_line_summary(videos, model_dir, work, capsys):
    out = work / "only_bad"
    (work / "bad.csv").write_text('video,sentence\nbroken,the dog\ngone.mp4,"the cat, sitting"\n')
    assert main(batch_args(videos, model_dir, out, sentences=work / "bad.csv")) == 2
    err = capsys.readouterr().err
    assert "2 of 2 video(s) failed (broken, gone)" in err and "Traceback" not in err
    assert not (out / "broken").exists()


def test_each_video_decoded_and_encoded_once_sentences_together(videos, tiny_pipe, tmp_path, monkeypatch):
    import flowrvs.io.read as video_module

    decoded, encoded, calls = [], [], []
    real_read, real_encode, real_prompt = video_module._open_container, tiny_pipe.encode_video, tiny_pipe.encode_prompt
    monkeypatch.setattr(video_module, "_open_container", lambda path, *a: decoded.append(path) or real_read(path, *a))
    monkeypatch.setattr(tiny_pipe, "encode_video", lambda v: encoded.append(v.shape) or real_encode(v))
    monkeypatch.setattr(tiny_pipe, "encode_prompt", lambda p, *a, **k: calls.append(list(p)) or real_prompt(p, *a, **k))

    (tmp_path / "s.json").write_text(json.dumps({"a": SENTENCES["a.mp4"] + ["the white shape"]}))
    stats, summary = segment_batch(lambda: tiny_pipe, videos, tmp_path / "s.json", tmp_path / "out",
                                   options=SegmentOptions(size=(32, 48), batch_size=2), progress=False)
    assert stats.done == ["a"] and summary["failed"] == []
    assert [Path(p).name for p in decoded] == ["a.mp4"] and len(encoded) == 1
    assert calls == [SENTENCES["a.mp4"] + ["the white shape"]]


def test_killed_run_resumes_to_the_uninterrupted_result(full_run, videos, tiny_pipe, tmp_path, model_dir, monkeypatch):
    calls = []
    real_encode = tiny_pipe.encode_video

    def dying_encode(video):
        calls.append(video.shape)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while segmenting the second video
        return real_encode(video)

    out = tmp_path / "out"
    options = dict(options=SegmentOptions(size=(32, 48)), progress=False, log=lambda msg: None)
    with monkeypatch.context() as patch:
        patch.setattr(tiny_pipe, "encode_video", dying_encode)
        with pytest.raises(KeyboardInterrupt):
            segment_batch(lambda: tiny_pipe, videos, videos.parent / "sentences.json", out, **options)
    assert (out / "a" / "masks.json").is_file() and not (out / "b").exists()

    loads = []
    stats, summary = segment_batch(lambda: loads.append(1) or tiny_pipe, videos, videos.parent / "sentences.json",
                                   out, **options)
    assert stats.skipped == ["a"] and stats.done == ["b"] and loads == [1]
    assert tree(out) == tree(full_run[0])
    full = json.loads((full_run[0] / "summary.json").read_text())
    for name in GOOD + BAD:
        got, want = summary["videos"][name], full["videos"][name]
        assert {k: v for k, v in got.items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}

    # a third run has nothing left to segment and never loads the model
    stats, _ = segment_batch(lambda: pytest.fail("loaded the model"), videos, videos.parent / "sentences.json",
                             out, **options)
    assert stats.skipped == GOOD and stats.done == []


def test_rerun_with_other_settings_is_refused(full_run, videos, model_dir, capsys):
    out, _ = full_run
    assert main(batch_args(videos, model_dir, out, "--steps", "3")) == 2
    assert "other settings" in capsys.readouterr().err


def test_sentence_files_csv_and_json(tmp_path):
    csv_file = tmp_path / "s.csv"
    csv_file.write_text('Video,Sentence\nclip1.mp4,"the dog, running"\nclip1.mp4,the cat\nframes,a shape\n')
    assert read_sentence_file(csv_file) == {"clip1.mp4": ["the dog, running", "the cat"], "frames": ["a shape"]}
    json_file = tmp_path / "s.json"
    json_file.write_text('{"clip1": "one sentence", "clip2": ["a", "b"]}')
    assert read_sentence_file(json_file) == {"clip1": ["one sentence"], "clip2": ["a", "b"]}
    bad = {"bad.json": "[1, 2]", "broken.json": "{", "list.json": '{"v": [1]}', "cols.csv": "name,text\nv,x\n",
           "empty.csv": "video,sentence\n"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(FlowRVSError):
            read_sentence_file(tmp_path / name)
    with pytest.raises(FlowRVSError, match="does not exist"):
        read_sentence_file(tmp_path / "nope.json")


def test_plan_matches_names_with_or_without_extension(videos):
    jobs = {j.name: j for j in plan_jobs(videos, {"a": ["x"], "c.mp4": ["y"], "b": ["z"], "zz": ["w"]})}
    assert jobs["a"].source.name == "a.mp4" and jobs["c"].source.name == "c.mp4" and jobs["b"].source.is_dir()
    assert jobs["zz"].problem and "no video" in jobs["zz"].problem
    with pytest.raises(FlowRVSError, match="twice"):
        plan_jobs(videos, {"a": ["x"], "a.mp4": ["y"]})
    with pytest.raises(FlowRVSError, match="plain name"):
        plan_jobs(videos, {"../a.mp4": ["x"]})


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(full_run, videos, model_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "flowrvs.apps.cli",
           *batch_args(videos, model_dir, out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0, proc.stderr[-3000:]  # the broken videos fail the batch
    assert "[rank 0/2] segmented 1 video(s)" in proc.stderr and "[rank 1/2] segmented 1 video(s)" in proc.stderr
    assert proc.stderr.count("3 of 5 video(s) failed") == 1  # one summary, from rank 0
    assert tree(out) == tree(full_run[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == BAD and summary["done"] == 2


def test_window_flags_are_checked_once_with_their_names(videos, model_dir, tmp_path, capsys):
    assert main(batch_args(videos, model_dir, tmp_path / "out", "--window", "6")) == 2
    assert "--window" in capsys.readouterr().err and not (tmp_path / "out").exists()

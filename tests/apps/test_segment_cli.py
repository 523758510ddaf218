"""`flowrvs segment` end to end on a generated mp4, and its user errors."""

import json

import numpy as np
import pytest
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.io.masks import decode_rle
from flowrvs.io.encode import write_video
from flowrvs.io.read import read_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_pipe):
    path = tmp_path_factory.mktemp("m") / "model"
    tiny_pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (6, 1, 1, 3), dtype=np.uint8), 1, 0) * np.ones((6, 36, 50, 3), np.uint8)
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    write_video(path, frames, fps=10)
    return path


def test_segment_writes_pngs_rle_and_overlay(model_dir, video_path, tmp_path):
    out = tmp_path / "out"
    prompts = ["the red circle", "the dog on the left"]
    code = main(["segment", str(video_path), "-p", prompts[0], "-p", prompts[1], "--model", str(model_dir),
                 "--out", str(out), "--steps", "2", "--size", "32x48", "--device", "cpu", "--dtype", "float32"])
    assert code == 0
    info = json.loads((out / "masks.json").read_text())
    assert [p["prompt"] for p in info["prompts"]] == prompts
    height, width, names = info["height"], info["width"], info["frame_names"]
    assert (height, width) == (36, 50) and names == [f"{i:05d}" for i in range(6)]
    for k in range(2):
        pngs = sorted(p.name for p in (out / str(k)).iterdir())
        assert pngs == [f"{n}.png" for n in names]
        for name in names:
            png = np.array(Image.open(out / str(k) / f"{name}.png"))
            assert png.shape == (36, 50) and set(np.unique(png)) <= {0, 255}
            assert np.array_equal(png > 0, decode_rle(info["prompts"][k]["masks"][name]))
    overlay = read_video(out / "overlay.mp4")
    assert len(overlay.frames) == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.mp4", "-p", "a dog"], "no such file"),
        (["VIDEO", "-p", "   "], "prompt 0 is empty"),
        (["VIDEO", "-p", "a dog", "--size", "big"], "size"),
        (["VIDEO", "-p", "a dog", "--steps", "0"], "--steps"),
        (["VIDEO", "-p", "a dog", "--device", "cuda"], "CUDA"),
        (["VIDEO", "-p", "a dog", "--dtype", "float16", "--device", "cpu"], "float16"),
    ],
)
def test_user_errors_exit_2_with_one_line(model_dir, video_path, tmp_path, capsys, args, message):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    args = [str(video_path) if a == "VIDEO" else str(tmp_path / a) if a.endswith(".mp4") else a for a in args]
    code = main(["segment", *args, "--model", str(model_dir), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_corrupt_video_and_incomplete_model(model_dir, video_path, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert main(["segment", str(bad), "-p", "a dog", "--model", str(model_dir), "--out", str(tmp_path / "o")]) == 2
    assert "bad.mp4" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    shutil.rmtree(broken / "text_encoder")
    assert main(["segment", str(video_path), "-p", "a dog", "--model", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "text_encoder/" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_existing_output_replaced_only_when_complete(model_dir, video_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me until the new output is complete")
    assert main(["segment", str(tmp_path / "nope.mp4"), "-p", "a dog", "--model", str(model_dir), "--out", str(out)]) == 2
    assert (out / "old.txt").exists()
    assert main(["segment", str(video_path), "-p", "a dog", "--model", str(model_dir), "--out", str(out),
                 "--size", "32x48", "--no-overlay"]) == 0
    assert not (out / "old.txt").exists() and (out / "0").is_dir() and not (out / "overlay.mp4").exists()

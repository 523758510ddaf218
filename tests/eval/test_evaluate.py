"""`flowrvs evaluate`: layouts, zips, scoring, resume, --limit, torchrun, on tiny fake splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowrvs.apps.cli import main
from helpers.ytvos_davis import make_davis, make_ytvos


SIZE = "32x48"  # work at the frames' own size: fast, and the tiny model accepts it


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluate")


@pytest.fixture(scope="module")
def model_dir(work):
    from flowrvs.presets import build_pipeline

    path = work / "model"
    build_pipeline("tiny", seed=0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def mevis_root(work):
    from flowrvs.data.synth.writer import write_split

    root = work / "mevis"
    write_split(root, "valid_u", videos=2, frames=5, size=(32, 48), seed=1)
    return root


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def evaluate_args(dataset, root, out, model, *extra, split=None):
    args = ["evaluate", "--dataset", dataset, "--root", str(root), "--out", str(out), "--model", str(model),
            "--size", SIZE, "--device", "cpu", "--dtype", "float32"]
    if split:
        args += ["--split", split]
    return args + [str(e) for e in extra]


@pytest.fixture(scope="module")
def full_run(work, model_dir, mevis_root):
    """An uninterrupted MeViS valid_u run; also checks that the dataset root is left untouched."""
    before = snapshot(mevis_root)
    out = work / "out_full"
    assert main(evaluate_args("mevis", mevis_root, out, model_dir, split="valid_u")) == 0
    assert snapshot(mevis_root) == before
    return out


def mevis_meta(root: Path, split: str = "valid_u") -> dict:
    return json.loads((root / split / "meta_expressions.json").read_text())["videos"]


def test_mevis_layout_zip_and_metrics(full_run, mevis_root):
    meta = mevis_meta(mevis_root)
    expected = set()
    for vid, entry in meta.items():
        for exp_id in entry["expressions"]:
            folder = full_run / "predictions" / vid / exp_id
            assert sorted(p.name for p in folder.iterdir()) == [f"{f}.png" for f in entry["frames"]]
            for f in entry["frames"]:
                with Image.open(folder / f"{f}.png") as img:
                    assert img.mode == "L" and img.size == (48, 32)
                    assert set(np.unique(np.asarray(img))) <= {0, 255}
                expected.add(f"{vid}/{exp_id}/{f}.png")
    with zipfile.ZipFile(full_run / "submission.zip") as zf:
        names = set(zf.namelist())
        assert names == expected  # video folders at the top of the zip
        one = sorted(names)[0]
        assert zf.read(one) == (full_run / "predictions" / one).read_bytes()
    metrics = json.loads((full_run / "metrics.json").read_text())
    keys = {f"{v}_{e}" for v, entry in meta.items() for e in entry["expressions"]}
    assert set(metrics["per_expression"]) == keys
    for name in ("J", "F", "J&F"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["J&F"] == pytest.approx((metrics["J"] + metrics["F"]) / 2)
    assert not list(full_run.rglob(".*"))  # no temporary leftovers
    record = json.loads((full_run / "evaluate.json").read_text())
    assert record["dataset"] == "mevis" and record["split"] == "valid_u"


def test_metrics_equal_score_command(full_run, mevis_root, tmp_path, capsys):
    assert main(["score", str(full_run / "predictions"), "--dataset", "mevis", "--root", str(mevis_root),
                 "--split", "valid_u", "--out", str(tmp_path)]) == 0
    scored = json.loads((tmp_path / "metrics.json").read_text())
    ours = json.loads((full_run / "metrics.json").read_text())
    assert scored == ours


class CountingPipe:
    """Wraps a pipeline: records the frame count and prompts of each video encoding (one per video
    with whole-video windows), raises KeyboardInterrupt on encoding ``fail_at``."""

    def __init__(self, pipe, fail_at=None):
        self.pipe, self.fail_at, self.calls, self._prompts = pipe, fail_at, [], None

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def encode_prompt(self, prompts, *args, **kw):
        self._prompts = list(prompts)
        return self.pipe.encode_prompt(prompts, *args, **kw)

    def encode_video(self, video, *args, **kw):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt  # stands in for a kill half way
        self.calls.append(((video.shape[-3],), self._prompts))
        return self.pipe.encode_video(video, *args, **kw)


def test_resume_after_interruption_equals_uninterrupted(full_run, model_dir, mevis_root, tmp_path, monkeypatch, capsys):
    import flowrvs.apps.commands.common as common

    real_load = common.load_pipeline
    wrappers = []

    def load(fail_at):
        def loader(args):
            wrappers.append(CountingPipe(real_load(args), fail_at))
            return wrappers[-1]
        return loader

    videos = sorted(mevis_meta(mevis_root))
    out = tmp_path / "out"
    monkeypatch.setattr(common, "load_pipeline", load(fail_at=1))
    assert main(evaluate_args("mevis", mevis_root, out, model_dir, split="valid_u")) == 130
    assert (out / "predictions" / videos[0]).is_dir() and not (out / "predictions" / videos[1]).exists()
    assert not (out / "metrics.json").exists() and not (out / "submission.zip").exists()
    # a half-written expression folder of a killed run
    stale = out / "predictions" / videos[1] / ".0.abcd.tmp"
    stale.mkdir(parents=True)
    (stale / "00000.png").write_bytes(b"junk")
    capsys.readouterr()

    monkeypatch.setattr(common, "load_pipeline", load(fail_at=None))
    assert main(evaluate_args("mevis", mevis_root, out, model_dir, split="valid_u")) == 0
    err = capsys.readouterr().err
    assert f"skipped 1 video(s) already done: {videos[0]}" in err
    # one call for the second video only, with all its expressions, frames read once
    assert len(wrappers[-1].calls) == 1
    shape, prompts = wrappers[-1].calls[0]
    assert shape[0] == 5 and len(prompts) == len(mevis_meta(mevis_root)[videos[1]]["expressions"])
    assert not stale.exists()
    assert json.loads((out / "metrics.json").read_text()) == json.loads((full_run / "metrics.json").read_text())
    with zipfile.ZipFile(out / "submission.zip") as a, zipfile.ZipFile(full_run / "submission.zip") as b:
        assert a.namelist() == b.namelist()

    # everything done: the model is not even loaded
    def refuse(args):
        raise AssertionError("model loaded although nothing was left to do")

    monkeypatch.setattr(common, "load_pipeline", refuse)
    assert main(evaluate_args("mevis", mevis_root, out, model_dir, split="valid_u")) == 0
    assert "skipped 2 video(s)" in capsys.readouterr().err


def test_other_run_in_same_out_is_refused(full_run, model_dir, mevis_root, capsys):
    assert main(evaluate_args("mevis", mevis_root, full_run, model_dir, "--steps", 2, split="valid_u")) == 2
    assert "another run" in capsys.readouterr().err
    assert main(evaluate_args("mevis", mevis_root, full_run, model_dir, "--mask-threshold", -1, split="valid_u")) == 2
    assert "mask_threshold None there, -1.0 now" in capsys.readouterr().err


def test_model_edited_in_place_is_refused(model_dir, mevis_root, tmp_path, capsys):
    """Same folder, changed contents (a re-tuned threshold): the old predictions are not reused."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    out = tmp_path / "out"
    assert main(evaluate_args("mevis", mevis_root, out, model, "--limit", 1, split="valid_u")) == 0
    index = model / "model_index.json"
    config = json.loads(index.read_text())
    config["mask_threshold"] = -2.0
    index.write_text(json.dumps(config))
    capsys.readouterr()
    assert main(evaluate_args("mevis", mevis_root, out, model, "--limit", 1, split="valid_u")) == 2
    assert "model_files" in capsys.readouterr().err


def test_out_inside_root_is_refused(model_dir, mevis_root, capsys):
    assert main(evaluate_args("mevis", mevis_root, mevis_root / "preds", model_dir, split="valid_u")) == 2
    assert "inside the dataset root" in capsys.readouterr().err
    assert not (mevis_root / "preds").exists()


def test_limit_and_split_without_masks(model_dir, tmp_path, capsys):
    from flowrvs.data.synth.writer import write_split

    root = tmp_path / "mevis"
    write_split(root, "valid", videos=2, frames=5, size=(32, 48), seed=2)
    (root / "valid" / "mask_dict.json").unlink()  # MeViS valid: no masks, server-scored
    out = tmp_path / "out"
    assert main(evaluate_args("mevis", root, out, model_dir, "--limit", 1, split="valid")) == 0
    captured = capsys.readouterr()
    assert "no masks" in captured.err and "submission.zip" in captured.err
    assert "J&F" not in captured.out
    first = sorted(mevis_meta(root, "valid"))[0]
    assert [p.name for p in (out / "predictions").iterdir()] == [first]
    assert not (out / "metrics.json").exists()
    with zipfile.ZipFile(out / "submission.zip") as zf:
        assert {n.split("/")[0] for n in zf.namelist()} == {first}


@pytest.mark.slow  # about 12 s: two torchrun processes, each importing torch
def test_torchrun_two_processes_equal_one(full_run, model_dir, mevis_root, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    # --standalone: a local rendezvous on a free port, nothing outside the machine needed
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "flowrvs.apps.cli",
           *evaluate_args("mevis", mevis_root, out, model_dir, split="valid_u")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[rank 1/2] segmented" in proc.stderr and "[rank 0/2] segmented" in proc.stderr
    assert proc.stdout.count("J&F") == 1  # only rank 0 scores
    assert json.loads((out / "metrics.json").read_text()) == json.loads((full_run / "metrics.json").read_text())


def test_ytvos_layout_official_valid_only_and_train_scoring(model_dir, tmp_path, capsys):
    root = make_ytvos(tmp_path / "ytvos")
    out = tmp_path / "out_valid"
    assert main(evaluate_args("ytvos", root, out, model_dir)) == 0  # default split: valid
    assert "no masks" in capsys.readouterr().err
    # vidD is a test video listed in the valid meta file: not part of the official validation set
    assert [p.name for p in (out / "predictions" / "Annotations").iterdir()] == ["vidC"]
    assert sorted(p.name for p in (out / "predictions" / "Annotations" / "vidC" / "0").iterdir()) == [
        "00000.png", "00005.png"]
    with zipfile.ZipFile(out / "submission.zip") as zf:
        assert sorted(zf.namelist()) == ["Annotations/vidC/0/00000.png", "Annotations/vidC/0/00005.png"]
    assert not (out / "metrics.json").exists()

    out = tmp_path / "out_train"
    assert main(evaluate_args("ytvos", root, out, model_dir, split="train")) == 0
    ours = json.loads((out / "metrics.json").read_text())
    assert set(ours["per_expression"]) == {"vidA_0", "vidA_1", "vidB_0"}
    assert main(["score", str(out / "predictions"), "--dataset", "ytvos", "--root", str(root), "--split", "train",
                 "--out", str(tmp_path / "scored")]) == 0
    assert json.loads((tmp_path / "scored" / "metrics.json").read_text()) == ours


def test_davis_annotator_sets_indexed_pngs(model_dir, tmp_path, capsys):
    root = make_davis(tmp_path / "davis")
    out = tmp_path / "out"
    assert main(evaluate_args("davis", root, out, model_dir)) == 0
    assert "J&F" in capsys.readouterr().out
    pred = out / "predictions"
    assert sorted(p.name for p in pred.iterdir()) == ["anno_0", "anno_1", "anno_2", "anno_3"]
    # exp_id % 4 is the annotator set: bike has 8 expressions (2 objects), dogs 4 (1 object)
    assert sorted(p.name for p in (pred / "anno_1" / "bike").iterdir()) == ["1", "5"]
    assert sorted(p.name for p in (pred / "anno_2" / "dogs").iterdir()) == ["2"]
    with Image.open(pred / "anno_0" / "bike" / "4" / "00010.png") as img:
        assert img.mode == "P" and img.size == (48, 32)
        assert set(np.unique(np.asarray(img))) <= {0, 1}
    for i in range(4):  # the DAVIS toolkit's layout: one PNG of object ids per frame and set
        folder = out / "official" / f"anno_{i}"
        assert sorted(p.name for p in (folder / "bike").iterdir()) == ["00000.png", "00005.png", "00010.png"]
        with Image.open(folder / "bike" / "00000.png") as img:
            assert img.mode == "P" and set(np.unique(np.asarray(img))) <= {0, 1, 2}
        with Image.open(folder / "dogs" / "00005.png") as img:
            assert set(np.unique(np.asarray(img))) <= {0, 1}
    assert not (out / "submission.zip").exists()

    # scored as the DAVIS toolkit's unsupervised task on official/, per annotator set, sets averaged
    metrics = json.loads((out / "metrics.json").read_text())
    sets = metrics["annotator_sets"]
    assert [s["label"] for s in sets] == [0, 1, 2, 3] and [s["num_expressions"] for s in sets] == [3, 3, 3, 3]
    assert metrics["J"] == pytest.approx(np.mean([s["J"] for s in sets]))
    assert metrics["F"] == pytest.approx(np.mean([s["F"] for s in sets]))
    for s in sets:  # the objects of the annotations (dogs' object 2 has no sentence but is scored)
        assert set(s["per_object"]) == {"bike_1", "bike_2", "dogs_1", "dogs_2"}
        assert s["J"] == pytest.approx(np.mean([r["J"] for r in s["per_object"].values()]))
    # the same numbers from the per-expression PNGs (painted the same way) and from OUT itself
    assert main(["score", str(pred), "--dataset", "davis", "--root", str(root), "--split", "valid",
                 "--out", str(tmp_path / "scored")]) == 0
    assert json.loads((tmp_path / "scored" / "metrics.json").read_text()) == metrics
    assert main(["score", str(out), "--dataset", "davis", "--root", str(root), "--out", str(tmp_path / "s2")]) == 0
    assert json.loads((tmp_path / "s2" / "metrics.json").read_text()) == metrics

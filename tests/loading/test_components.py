"""A model folder whose part files are damaged loads as one line naming the file and the problem
(issue 24: the fuzz findings in a component config, the tokenizer, a weights file missing a tensor)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.io.encode import write_video
from flowrvs.loading.resolve import shipped_model_dir
from flowrvs.pipelines import pipeline_flowrvs
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture
def model(tmp_path):
    """A copy of the shipped tiny-synthetic folder (files hard-linked: edit by replacing)."""
    folder = tmp_path / "model"
    shutil.copytree(shipped_model_dir("tiny-synthetic"), folder, copy_function=os.link)
    return folder


def _edit_json(path, **changes):
    value = json.loads(path.read_text())
    value.update(changes)
    path.unlink()
    path.write_text(json.dumps(value))


def _drop_tensor(path, name):
    tensors = load_file(path)
    del tensors[name]
    path.unlink()
    save_file(tensors, path)


def _refused(folder, *words, cause=None):
    with pytest.raises(FlowRVSError) as info:
        load_pipeline(str(folder), device="cpu", dtype="float32")
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)
    return message


def test_a_scheduler_config_value_of_the_wrong_type_is_one_line(model):
    _edit_json(model / "scheduler" / "scheduler_config.json", time_shift_type=["exponential"])
    _refused(model, "scheduler", "scheduler_config.json", "unhashable", cause=TypeError)


def test_a_transformer_config_value_of_the_wrong_type_is_one_line(model):
    _edit_json(model / "transformer" / "config.json", num_layers="two")
    _refused(model, "transformer", "config.json")


def test_a_tokenizer_file_tokenizers_cannot_read_is_one_line(model):
    path = model / "tokenizer" / "tokenizer.json"
    path.unlink()
    path.write_text('{"version": null}')
    _refused(model, "tokenizer", "tokenizer.json")


@pytest.mark.parametrize("part", ["transformer", "vae"])
def test_a_tensor_missing_from_a_weights_file_is_refused_not_left_on_meta(model, part):
    name = sorted(load_file(model / part / WEIGHTS))[0]
    _drop_tensor(model / part / WEIGHTS, name)
    _refused(model, f"{part}:", name, WEIGHTS)


def test_a_resident_text_encoder_missing_a_tensor_is_refused(model):
    path = model / "text_encoder" / "model.safetensors"
    name = next(k for k in sorted(load_file(path)) if "layer" in k)
    _drop_tensor(path, name)
    with pytest.raises(FlowRVSError, match=f"text_encoder.*{name}.*model.safetensors"):
        FlowRVSPipeline.from_pretrained(model, keep_text_encoder=True)


def test_the_index_may_name_only_diffusers_or_transformers_classes(model):
    _edit_json(model / "model_index.json", vae=["os", "system"])
    _refused(model, "model_index.json", "vae", "'os'")
    _edit_json(model / "model_index.json", vae=["diffusers", "NoSuchClass"])
    _refused(model, "model_index.json", "NoSuchClass")


@pytest.mark.parametrize("setting, value", [("text_len", [1]), ("size", 480), ("flow_shift", "3"),
                                            ("num_steps", float("inf"))])
def test_a_setting_of_the_wrong_type_is_one_line_naming_the_index(model, setting, value):
    _edit_json(model / "model_index.json", **{setting: value})
    _refused(model, "model_index.json", setting)


def test_an_error_of_flowrvs_itself_keeps_its_traceback(model, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pipeline_flowrvs, "check_settings", broken)
    with pytest.raises(ZeroDivisionError):
        load_pipeline(str(model), device="cpu", dtype="float32")


def test_the_command_line_exits_2_with_one_line(model, tmp_path, capsys):
    _edit_json(model / "scheduler" / "scheduler_config.json", time_shift_type=["exponential"])
    video = tmp_path / "clip.mp4"
    write_video(video, np.full((4, 32, 48, 3), 90, np.uint8), fps=10)
    code = main(["segment", str(video), "-p", "a dog", "--model", str(model), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "scheduler_config.json" in err
    assert not (tmp_path / "out").exists()


def test_a_parameter_left_on_meta_is_named_even_when_the_library_reports_nothing_missing(tmp_path):
    import torch

    from flowrvs.loading.components import refuse_missing

    with torch.device("meta"):
        module = torch.nn.Linear(2, 3)
    module.weight = torch.nn.Parameter(torch.zeros(3, 2))
    (tmp_path / WEIGHTS).write_bytes(b"")
    with pytest.raises(FlowRVSError, match=f"the tensor bias is missing from {WEIGHTS}"):
        refuse_missing(module, [], tmp_path)
    refuse_missing(torch.nn.Linear(2, 3), [], tmp_path)  # nothing on meta, nothing missing: no error


@pytest.mark.parametrize("part, entry", [("scheduler", {}), ("scheduler", ["diffusers"]), ("vae", []),
                                         ("text_encoder", [None])])
def test_an_index_entry_that_is_not_library_and_class_is_one_line(model, part, entry):
    _edit_json(model / "model_index.json", **{part: entry})
    _refused(model, part)


@pytest.mark.parametrize("changes", [{"d_model": "wide"}, {"num_heads": [2]}])
def test_a_streamed_text_encoder_config_of_the_wrong_type_is_one_line(model, changes):
    from flowrvs.models.text import load_streamed_text_encoder

    _edit_json(model / "text_encoder" / "config.json", **changes)
    with pytest.raises(FlowRVSError, match=r"text_encoder \(config.json\)") as info:
        load_streamed_text_encoder(model / "text_encoder")
    assert "\n" not in str(info.value)

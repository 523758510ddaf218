"""Weight files that cannot be read are the user's to fix: one line, with the library's error as the cause."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from flowrvs.errors import FlowRVSError
from flowrvs.loading.state_dicts import load_checked, load_weights_file, strip_prefix, tensor_dict


def test_damaged_files_name_the_file_and_keep_the_cause(tmp_path):
    torch.save({"a": torch.zeros(1000)}, tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage garbage")
    causes = {"cut.pth": RuntimeError, "empty.pth": EOFError, "text.pth": pickle.UnpicklingError,
              "bad.safetensors": SafetensorError}
    for name, cause in causes.items():
        with pytest.raises(FlowRVSError, match=f"checkpoint .*{name}") as info:
            load_weights_file(tmp_path / name)
        assert isinstance(info.value.__cause__, cause), name
    with pytest.raises(FlowRVSError, match="does not exist"):
        load_weights_file(tmp_path / "missing.pth")


def test_readable_files_and_checked_loading(tmp_path):
    save_file({"weight": torch.ones(2, 3), "bias": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    state = tensor_dict(load_weights_file(tmp_path / "w.safetensors"), "w")
    layer = load_checked(torch.nn.Linear(3, 2), state, "w")
    assert torch.equal(layer.weight, torch.ones(2, 3))
    assert strip_prefix({"module.a": 1, "b": 2}, "module.") == {"a": 1, "b": 2}
    with pytest.raises(FlowRVSError, match="lacks 1 tensor"):
        load_checked(torch.nn.Linear(3, 2), {"weight": torch.ones(2, 3)}, "w")
    with pytest.raises(FlowRVSError, match="unexpected"):
        load_checked(torch.nn.Linear(3, 2), {**state, "extra": torch.ones(1)}, "w")
    with pytest.raises(FlowRVSError, match="state dict of tensors"):
        tensor_dict({"a": 1}, "w")

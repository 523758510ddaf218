"""Every committed config under configs/ parses and validates (unknown keys, types, ranges)."""

from pathlib import Path

import pytest

from flowrvs.errors import FlowRVSError
from flowrvs.training.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_are_recipes():
    names = {p.stem for p in CONFIGS}
    assert {"tiny-synthetic", "paper-mevis", "paper-refcoco-pretrain", "paper-ytvos", "paper-mevis-14b-fsdp"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_committed_config_validates(path):
    config = load_config(path)
    if path.stem.startswith("paper-"):  # the paper's hyper-parameters
        assert (config.optim.lr, config.optim.weight_decay, config.optim.grad_clip) == (5e-5, 5e-4, 1.0)
        assert (config.data.num_frames, min(config.data.size), config.ema.decay, config.dtype) == (17, 480, 0.9999, "bfloat16")
        assert config.stage == "mask_decoder" or config.model.gradient_checkpointing


@pytest.mark.parametrize("yaml_text, key", [("data:\n  size: [[64, 64], 64]\n", "data.size"),
                                            ("optim:\n  betas: [0.9, [0.99]]\n", "optim.betas")])
def test_nested_lists_in_a_pair_key_are_one_line(tmp_path, yaml_text, key):
    """A fuzz finding: a list inside data.size reached min() as a TypeError."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(FlowRVSError, match=key) as err:
        load_config(path)
    assert "\n" not in str(err.value)

"""Training options that change how, not what, a run computes: gradient checkpointing, bf16
autocast (``amp``), and the ablation parametrisations (``model.source``, ``model.prediction``).

Driven through ``flowrvs train CONFIG key=value`` and its files (``train.log``, ``model/``), so
that the tests hold whatever the training package looks like inside.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from diffusers.models.transformers.transformer_wan import WanTransformerBlock
from safetensors.torch import load_file

from flowrvs.apps.cli import main
from flowrvs.data.synth.writer import write_split

T, H, W = 5, 32, 48
STEPS = 3


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    """A flow-stage config of the tiny preset on three synthetic videos, one log line per step."""
    root = tmp_path_factory.mktemp("options")
    write_split(root / "data", "train", videos=3, frames=T, size=(H, W), seed=0, progress=False)
    config = {
        "seed": 0,
        "stage": "flow",
        "device": "cpu",
        "dtype": "float32",
        "progress": False,
        "log_every": 1,
        "checkpoint_every": 10_000,
        "model": {"preset": "tiny", "vocabulary": "synth", "text_len": 16},
        "data": {
            "datasets": [{"type": "mevis", "root": str(root / "data"), "split": "train"}],
            "num_frames": T,
            "size": [H, W],
            "hflip_p": 0.0,
            "cache_latents": False,
        },
        "optim": {"steps": STEPS, "lr": 1e-3},
        "ema": {"enabled": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(config_file: Path, out: Path, *overrides: str) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Train; return the per-step losses of ``train.log`` and the written DiT's weights."""
    assert main(["train", str(config_file), f"output_dir={out}", *overrides]) == 0
    losses = [float(v) for v in re.findall(r"^step=\d+ loss=(\S+)", (out / "train.log").read_text(), re.M)]
    assert len(losses) == STEPS
    weights = {}
    for file in sorted((out / "model" / "transformer").glob("*.safetensors")):
        weights.update(load_file(file))
    assert weights
    return losses, weights


def count_block_calls(monkeypatch) -> list[int]:
    """Count forward calls of the DiT's blocks (a checkpointed block runs again in the backward pass)."""
    calls = [0]
    forward = WanTransformerBlock.forward

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(WanTransformerBlock, "forward", counted)
    return calls


@pytest.fixture(scope="module")
def plain(config_file, tmp_path_factory):
    """The reference run: losses, weights, and how many times the DiT's blocks ran."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = count_block_calls(monkeypatch)
        losses, weights = run(config_file, tmp_path_factory.mktemp("plain"))
    return losses, weights, calls[0]


def test_gradient_checkpointing_recomputes_blocks_and_changes_nothing(config_file, plain, tmp_path, monkeypatch):
    calls = count_block_calls(monkeypatch)
    losses, weights = run(config_file, tmp_path / "ckpt", "model.gradient_checkpointing=true")
    extra = calls[0] - plain[2]
    layers = 2  # the tiny preset's DiT
    assert extra > 0 and extra % (STEPS * layers) == 0, (plain[2], calls[0])  # each block once more per step
    assert losses == pytest.approx(plain[0], rel=1e-5)
    for name, value in plain[1].items():
        torch.testing.assert_close(weights[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight:UserWarning")  # rms_norm under autocast
def test_amp_bfloat16_computes_in_bf16_and_keeps_float32_weights(config_file, plain, tmp_path):
    dtypes = set()

    def record(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and torch.is_grad_enabled():
            dtypes.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        losses, weights = run(config_file, tmp_path / "amp", "amp=bfloat16")
    finally:
        handle.remove()
    assert torch.bfloat16 in dtypes  # the training forward ran under autocast
    assert all(w.dtype == torch.float32 for w in weights.values())  # master weights stay float32
    assert all(torch.isfinite(torch.tensor(losses)))
    # the same first batch at bf16 precision (8 bits of mantissa): close to, not equal to, float32
    assert losses[0] != plain[0][0]
    assert losses[0] == pytest.approx(plain[0][0], rel=3e-2)


@pytest.mark.parametrize("source,prediction", [("noise", "velocity"), ("video", "mask")])
def test_ablation_parametrisations_train_and_are_written_into_the_model(config_file, plain, tmp_path, source, prediction):
    from flowrvs.pipelines.loader import load_pipeline

    losses, weights = run(config_file, tmp_path / "ablation", f"model.source={source}", f"model.prediction={prediction}")
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] != pytest.approx(plain[0][0], rel=1e-3)  # another regression target from step 1
    pipe = load_pipeline(tmp_path / "ablation" / "model", device="cpu")
    assert (pipe.config.source, pipe.config.prediction) == (source, prediction)

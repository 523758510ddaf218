"""Inference options of the pipeline beyond the defaults: the ablation parametrisations
(``source="noise"``, ``prediction="mask"``) and CPU offload, on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.presets import build_pipeline

T, H, W = 5, 32, 48
PROMPT = "the red circle"


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def dit_calls(pipe: FlowRVSPipeline) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record ``(hidden_states, output)`` of every DiT call (DVI: ``hidden_states`` is ``[x_t, z_video]``)."""
    calls = []

    def hook(module, args, kwargs, output):
        calls.append((kwargs["hidden_states"].detach().clone(), output[0].detach().clone()))

    pipe.transformer.register_forward_hook(hook, with_kwargs=True)
    return calls


def test_noise_source_starts_from_seeded_noise_beside_the_video(frames):
    video_pipe = build_pipeline("tiny", seed=0)
    noise_pipe = build_pipeline("tiny", seed=0, source="noise")
    seen = {name: dit_calls(pipe) for name, pipe in (("video", video_pipe), ("noise", noise_pipe))}

    def logits(pipe, seed):
        out = pipe(frames, PROMPT, size=(H, W), return_logits=True, generator=torch.Generator().manual_seed(seed))
        return out.logits[0]

    video_a, video_b = logits(video_pipe, 1), logits(video_pipe, 2)
    noise_a, noise_b, noise_a_again = logits(noise_pipe, 1), logits(noise_pipe, 2), logits(noise_pipe, 1)

    (hidden_video, _), (hidden_noise, _) = seen["video"][0], seen["noise"][0]
    torch.testing.assert_close(hidden_video[:, :16], hidden_video[:, 16:])  # FlowRVS: x_1 = z_video
    torch.testing.assert_close(hidden_noise[:, 16:], hidden_video[:, 16:])  # the video still enters via DVI
    start = hidden_noise[:, :16]
    assert not torch.allclose(start, hidden_noise[:, 16:])
    assert abs(float(start.mean())) < 0.2 and 0.8 < float(start.std()) < 1.2  # N(0, I), 16 x 2 x 4 x 6 draws

    np.testing.assert_array_equal(video_a, video_b)  # the video source draws nothing
    np.testing.assert_array_equal(noise_a, noise_a_again)  # the generator decides the noise
    assert not np.array_equal(noise_a, noise_b)


@pytest.mark.parametrize("steps", [1, 2])
def test_mask_prediction_turns_the_dit_output_into_a_velocity(frames, steps):
    """``v = (x_t - z_mask_hat) / t``: the last Euler step lands exactly on the DiT's last prediction."""
    pipe = build_pipeline("tiny", seed=0, prediction="mask")
    velocity_pipe = build_pipeline("tiny", seed=0)
    calls = dit_calls(pipe)
    velocity_calls = dit_calls(velocity_pipe)
    with torch.no_grad():
        text = pipe.encode_prompt([PROMPT])
        z_video = pipe.encode_video(torch.rand(1, 3, T, H, W) * 2 - 1)
        z_mask = pipe.sample(z_video, text, steps)
        z_velocity = velocity_pipe.sample(z_video, text, steps)
    assert len(calls) == len(velocity_calls) == steps
    torch.testing.assert_close(z_mask, calls[-1][1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(calls[0][1], velocity_calls[0][1])  # same weights, same first output ...
    assert not torch.allclose(z_velocity, velocity_calls[-1][1], atol=1e-3)  # ... read as a velocity instead


def test_cpu_offload_on_a_cpu_changes_nothing(frames, tmp_path):
    pipe = build_pipeline("tiny", seed=0)
    before = pipe(frames, [PROMPT, "a dog"], size=(H, W), return_logits=True)
    pipe.save_pretrained(tmp_path / "model")
    loaded = load_pipeline(tmp_path / "model", device="cpu", dtype="float32", cpu_offload=True)
    reloaded = loaded(frames, [PROMPT, "a dog"], size=(H, W), return_logits=True)
    for k in range(2):
        np.testing.assert_array_equal(reloaded.masks[k], before.masks[k])
        np.testing.assert_array_equal(reloaded.logits[k], before.logits[k])

"""The whole pipeline with tiny random components, diffusers-style: pinned logits, output types,
``return_dict``, the step-end callback and the progress bar."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.pipeline_output import FlowRVSPipelineOutput
from flowrvs.presets import build_text_encoder, build_transformer, build_vae, build_word_tokenizer, preset_config, preset_vocabulary


def get_dummy_components() -> dict:
    torch.manual_seed(0)
    tokenizer = build_word_tokenizer(preset_vocabulary("tiny"))
    return {
        "transformer": build_transformer("tiny", dvi=True),
        "vae": build_vae("tiny"),
        "text_encoder": build_text_encoder("tiny", vocab_size=len(tokenizer)),
        "tokenizer": tokenizer,
        **preset_config("tiny", "pipeline"),
    }


def get_dummy_inputs(num_frames: int = 6, **overrides) -> dict:
    video = np.random.default_rng(0).integers(0, 256, (num_frames, 40, 56, 3), dtype=np.uint8)
    return {"video": video, "prompt": ["a dog", "the red circle"], "size": (32, 48), "num_inference_steps": 2,
            "return_logits": True, "window": 0, **overrides}


@pytest.fixture(scope="module")
def pipe() -> FlowRVSPipeline:
    pipe = FlowRVSPipeline(**get_dummy_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_inference(pipe):
    out = pipe(**get_dummy_inputs())
    assert isinstance(out, FlowRVSPipelineOutput) and out.working_size == (32, 32)
    assert [m.shape for m in out.masks] == [(6, 40, 56)] * 2 and out.masks[0].dtype == bool
    # computed once from the pipeline as it stood before this test was written
    expected = {
        0: np.array([0.09114034, 0.1639977, 0.19227058, 0.19379298, 0.18422855, 0.16853014, 0.12098076, 0.07795332]),
        1: np.array([0.09047579, 0.16707237, 0.19687493, 0.19860132, 0.18668891, 0.16859333, 0.12085437, 0.07850556]),
    }
    for k, expected_slice in expected.items():
        np.testing.assert_allclose(out.logits[k][2, 10, 20:28], expected_slice, atol=1e-5, rtol=0)
    assert [int(m.sum()) for m in out.masks] == [4550, 4553]


def test_inference_in_windows(pipe):
    out = pipe(**get_dummy_inputs(25, window=9, overlap=2))
    expected_slice = np.array([-0.71069103, -0.6645333, -0.6258845, -0.5917408, -0.59070843, -0.5944363,
                               -0.59837496, -0.5915541])
    np.testing.assert_allclose(out.logits[1][12, 10, 20:28], expected_slice, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.logits[0][-1, -1, -4:], [-0.04740649, 0.0644451, 0.05919907, 0.05592031],
                               atol=1e-5, rtol=0)


def test_output_types_and_tuple(pipe):
    as_np = pipe(**get_dummy_inputs(3))
    as_pt = pipe(**get_dummy_inputs(3), output_type="pt")
    assert isinstance(as_pt.masks[0], torch.Tensor) and as_pt.masks[0].dtype == torch.bool
    assert np.array_equal(as_pt.masks[1].numpy(), as_np.masks[1])
    assert np.array_equal(as_pt.logits[0].numpy(), as_np.logits[0])
    as_pil = pipe(**get_dummy_inputs(3), output_type="pil")
    frame = as_pil.masks[0][1]
    assert isinstance(frame, Image.Image) and frame.mode == "L" and frame.size == (56, 40)
    assert np.array_equal(np.asarray(frame) > 127, as_np.masks[0][1])
    masks, logits = pipe(**get_dummy_inputs(3), return_dict=False)
    assert np.array_equal(masks[0], as_np.masks[0]) and np.array_equal(logits[1], as_np.logits[1])
    with pytest.raises(FlowRVSError, match="output_type"):
        pipe(**get_dummy_inputs(3), output_type="latent")


def test_callback_on_step_end_sees_and_replaces_the_latents(pipe):
    seen = []

    def record(p, i, t, kwargs):
        seen.append((i, float(t), tuple(kwargs["latents"].shape)))
        return kwargs

    base = pipe(**get_dummy_inputs(3))
    same = pipe(**get_dummy_inputs(3), callback_on_step_end=record)
    assert [(i, t) for i, t, _ in seen] == [(0, 1000.0), (1, 750.0)] * 2  # 2 steps for each of 2 sentences
    assert all(shape[0] == 1 for _, _, shape in seen)
    assert np.array_equal(same.logits[0], base.logits[0])
    zeroed = pipe(**get_dummy_inputs(3), callback_on_step_end=lambda p, i, t, kw: {"latents": torch.zeros_like(kw["latents"])})
    assert not np.array_equal(zeroed.logits[0], base.logits[0])
    with pytest.raises(FlowRVSError, match="callback_on_step_end_tensor_inputs"):
        pipe(**get_dummy_inputs(3), callback_on_step_end=record, callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_progress_bar_counts_every_step(pipe, monkeypatch):
    bars = []
    original = FlowRVSPipeline.progress_bar

    def spy(self, iterable=None, total=None):
        bars.append(original(self, iterable=iterable, total=total))
        return bars[-1]

    monkeypatch.setattr(FlowRVSPipeline, "progress_bar", spy)
    pipe.set_progress_bar_config(file=io.StringIO())  # shown (counted), written nowhere
    try:
        pipe(**get_dummy_inputs(25, window=9, overlap=2, batch_size=2))
    finally:
        pipe.set_progress_bar_config(disable=True)
    (bar,) = bars
    assert bar.total == bar.n == 4 * 1 * (2 + 1)  # windows x sentence batches x (steps + decode)

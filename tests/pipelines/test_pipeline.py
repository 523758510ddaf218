import numpy as np
import pytest
import torch
from PIL import Image

from flowrvs import FlowRVSPipeline
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.errors import FlowRVSError
from flowrvs.models.dit import add_video_injection, predict_velocity, remove_video_injection, uses_dvi
from flowrvs.pipelines.pipeline_output import FlowRVSPipelineOutput
from flowrvs.runtime.precision import resolve_device_dtype
from flowrvs.presets import build_transformer


def _settings(pipe) -> dict:
    """The pipeline's settings: its config without the components and diffusers' own keys."""
    return {k: v for k, v in pipe.config.items() if not k.startswith("_") and k not in pipe.components}


def _frames(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("t, h, w", [(1, 37, 53), (5, 32, 48), (6, 31, 45), (7, 40, 40), (8, 64, 33)])
def test_masks_have_input_shape(tiny_pipe, t, h, w):
    result = tiny_pipe(_frames(t, h, w), ["the red circle", "the dog on the left"], size=(64, 96))
    assert len(result.masks) == 2 and result.prompts == ["the red circle", "the dog on the left"]
    for mask in result.masks:
        assert mask.shape == (t, h, w) and mask.dtype == bool
    assert len(result.frame_names) == t
    assert result.logits is None


def test_inputs_as_pil_list_and_logits(tiny_pipe):
    frames = _frames(3, 40, 56)
    as_array = tiny_pipe(frames, "a dog", size=(64, 96), return_logits=True)
    as_pil = tiny_pipe([Image.fromarray(f) for f in frames], "a dog", size=(64, 96), return_logits=True)
    assert np.array_equal(as_array.logits[0], as_pil.logits[0])
    assert np.array_equal(as_array.masks[0], as_array.logits[0] > 0)


def test_mask_threshold_from_call_or_config(tiny_pipe, tmp_path):
    frames = _frames(3, 40, 56)
    base = tiny_pipe(frames, "a dog", size=(32, 48), return_logits=True)
    logits = base.logits[0]
    cut = float(np.quantile(logits, 0.3))  # a threshold that moves many pixels
    low = tiny_pipe(frames, "a dog", size=(32, 48), mask_threshold=cut)
    assert np.array_equal(low.masks[0], logits > cut) and not np.array_equal(low.masks[0], base.masks[0])
    tiny_pipe.register_to_config(mask_threshold=cut)
    try:
        tiny_pipe.save_pretrained(tmp_path / "m")
    finally:
        tiny_pipe.register_to_config(mask_threshold=0.0)
    loaded = load_pipeline(tmp_path / "m", device="cpu")
    assert loaded.config.mask_threshold == pytest.approx(cut)
    assert np.array_equal(loaded(frames, "a dog", size=(32, 48)).masks[0], low.masks[0])
    with pytest.raises(FlowRVSError, match="mask_threshold"):
        tiny_pipe(frames, "a dog", size=(32, 48), mask_threshold=float("nan"))


def test_prompts_are_independent_of_batching(tiny_pipe):
    frames = _frames(5, 32, 48)
    prompts = ["the red circle", "a dog", "the square that stops"]
    one = tiny_pipe(frames, prompts, size=(32, 48), batch_size=1, return_logits=True, num_inference_steps=2)
    three = tiny_pipe(frames, prompts, size=(32, 48), batch_size=3, return_logits=True, num_inference_steps=2)
    for a, b in zip(one.logits, three.logits):
        assert np.allclose(a, b, atol=1e-4)


def test_video_encoded_once_for_all_prompts(tiny_pipe, monkeypatch):
    calls = []
    original = FlowRVSPipeline.encode_video
    monkeypatch.setattr(FlowRVSPipeline, "encode_video", lambda self, v: calls.append(1) or original(self, v))
    tiny_pipe(_frames(5, 32, 48), ["a", "b", "c"], size=(32, 48))
    assert len(calls) == 1


def test_save_and_reload_bit_identical(tiny_pipe, tmp_path):
    frames = _frames(5, 32, 48)
    before = tiny_pipe(frames, ["the red circle"], size=(32, 48), return_logits=True, num_inference_steps=2)
    tiny_pipe.save_pretrained(tmp_path / "model")
    loaded = load_pipeline(tmp_path / "model", device="cpu", dtype="float32")
    assert loaded.dvi and _settings(loaded) == _settings(tiny_pipe)
    after = loaded(frames, ["the red circle"], size=(32, 48), return_logits=True, num_inference_steps=2)
    assert np.array_equal(before.logits[0], after.logits[0])


def test_dvi_widening_keeps_the_function():
    base = build_transformer("tiny", dvi=False)
    assert not uses_dvi(base)
    widened = add_video_injection(base)
    assert uses_dvi(widened)
    assert torch.all(widened.patch_embedding.weight[:, 16:] == 0)
    x, z = torch.randn(1, 16, 2, 4, 6), torch.randn(1, 16, 2, 4, 6)
    text, t = torch.randn(1, 8, 32), torch.tensor([0.7])
    with torch.no_grad():
        assert torch.allclose(predict_velocity(base, x, z, t, text), predict_velocity(widened, x, z, t, text), atol=1e-6)
        widened.patch_embedding.weight[:, 16:].normal_()
        assert not torch.allclose(predict_velocity(base, x, z, t, text), predict_velocity(widened, x, z, t, text))
        narrowed = remove_video_injection(widened)
        assert not uses_dvi(narrowed)
        assert torch.allclose(predict_velocity(base, x, z, t, text), predict_velocity(narrowed, x, z, t, text), atol=1e-6)


def test_bad_inputs_are_user_errors(tiny_pipe, tmp_path):
    with pytest.raises(FlowRVSError, match="empty"):
        tiny_pipe(_frames(2, 32, 32), ["  "])
    with pytest.raises(FlowRVSError):
        tiny_pipe(tmp_path / "missing.mp4", ["a dog"])
    with pytest.raises(FlowRVSError):
        tiny_pipe(np.zeros((0, 32, 32, 3), np.uint8), ["a dog"])
    with pytest.raises(FlowRVSError, match="num_inference_steps"):
        tiny_pipe(_frames(1, 32, 32), ["a dog"], num_inference_steps=0)
    with pytest.raises(FlowRVSError, match="float16"):
        resolve_device_dtype("cpu", "float16")
    with pytest.raises(FlowRVSError, match="dtype"):
        resolve_device_dtype("cpu", "int8")
    if not torch.cuda.is_available():
        with pytest.raises(FlowRVSError, match="CUDA"):
            resolve_device_dtype("cuda", None)


def test_model_folder_missing_a_part(tiny_pipe, tmp_path):
    import shutil

    tiny_pipe.save_pretrained(tmp_path / "model")
    shutil.rmtree(tmp_path / "model" / "vae")
    with pytest.raises(FlowRVSError, match="vae/"):
        load_pipeline(tmp_path / "model")
    with pytest.raises(FlowRVSError, match="does not exist"):
        load_pipeline(tmp_path / "nothing")


def test_bfloat16_runs_on_cpu(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "model")
    pipe = load_pipeline(tmp_path / "model", device="cpu", dtype="bfloat16")
    assert pipe.transformer.dtype == torch.bfloat16
    result = pipe(_frames(5, 32, 48), ["a dog"], size=(32, 48))
    assert result.masks[0].shape == (5, 32, 48)


def test_loads_with_torch_dtype_and_keeps_outputs_under_diffusers_offloading(tiny_pipe, tmp_path):
    frames = _frames(5, 32, 48)
    tiny_pipe.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "scheduler" / "scheduler_config.json").is_file()
    plain = FlowRVSPipeline.from_pretrained(tmp_path / "model", torch_dtype=torch.float32)
    expected = plain(frames, prompt=["a dog", "the red circle"], num_inference_steps=2, size=(32, 48), return_logits=True)
    loaded = FlowRVSPipeline.from_pretrained(tmp_path / "model", torch_dtype=torch.float32)
    assert loaded.components.keys() == {"transformer", "vae", "text_encoder", "tokenizer", "scheduler"}
    loaded.enable_model_cpu_offload(device="cpu")
    offloaded = loaded(frames, prompt=["a dog", "the red circle"], num_inference_steps=2, size=(32, 48), return_logits=True)
    grouped = FlowRVSPipeline.from_pretrained(tmp_path / "model", torch_dtype=torch.float32)
    grouped.enable_group_offload(onload_device=torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1)
    by_groups = grouped(frames, prompt=["a dog", "the red circle"], num_inference_steps=2, size=(32, 48), return_logits=True)
    for out in (offloaded, by_groups):
        assert isinstance(out, FlowRVSPipelineOutput)
        for a, b in zip(expected.logits, out.logits):
            assert np.array_equal(a, b)

"""REM in flowrvs gives the masks of REM's public inference loop, re-stated here from its
documented behaviour (issue 22), on a tiny fake checkpoint in the real pickle layout."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.releases import write_rem_checkpoint, write_wan_base
from PIL import Image

from flowrvs.apps.cli import main
from flowrvs.errors import FlowRVSError
from flowrvs.pipelines.pipeline_flowrvs import FlowRVSPipeline
from flowrvs.pipelines.pipeline_rem import REMPipeline

SIZE = 32  # REM resizes to 512x512; the tiny model runs the same rule at 32x32
CLIPS = (73, 61, 49, 37, 25, 17, 9)


@pytest.fixture(scope="module")
def rem_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("rem")
    base = write_wan_base(root / "base")
    write_rem_checkpoint(root / "rem.pth", base)
    assert main(["convert", "--method", "rem", "--wan", str(base), "--dit", str(root / "rem.pth"),
                 "--out", str(root / "model")]) == 0
    with pytest.raises(FlowRVSError, match="holds a REMPipeline"):
        FlowRVSPipeline.from_pretrained(root / "model")
    pipe = REMPipeline.from_pretrained(root / "model", keep_text_encoder=True)
    return root / "model", pipe


# ---- the public loop, re-stated ----------------------------------------------------------
def _reference_embeds(pipe, prompt: str) -> torch.Tensor:
    tokens = pipe.tokenizer([prompt], max_length=512, padding=True, truncation=True, add_special_tokens=True,
                            return_tensors="pt")
    hidden = pipe.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    n = int(tokens.attention_mask.sum())
    out = torch.zeros(1, 77, hidden.shape[-1])
    out[0, :n] = hidden[0, :n]
    return out


def _reference_clip(pipe, frames: np.ndarray, embeds: torch.Tensor) -> torch.Tensor:
    """Decoded, resized, channel-averaged ``(T, H, W)`` of one clip of PIL-resized frames."""
    vae, dit = pipe.vae, pipe.transformer
    pictures = [np.asarray(Image.fromarray(f).resize((SIZE, SIZE), Image.BILINEAR)) for f in frames]
    x = torch.stack([torch.from_numpy(p.copy()).permute(2, 0, 1).float() / 255 for p in pictures])  # ToTensor
    x = ((x - 0.5) / 0.5).permute(1, 0, 2, 3).unsqueeze(0)  # Normalize(0.5, 0.5); (1, 3, T, h, w)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    z = (vae.encode(x).latent_dist.mode() - mean) / std
    pred = dit(hidden_states=z, timestep=torch.tensor([0.0]), encoder_hidden_states=embeds, return_dict=False)[0]
    picture = vae.decode(pred * std + mean).sample[0].permute(1, 0, 2, 3)  # (T, 3, h, w), clamped by diffusers
    picture = F.interpolate(picture, size=frames.shape[1:3], mode="bilinear", align_corners=False)
    return picture.mean(dim=1)


@torch.no_grad()
def reference_masks(pipe, frames: np.ndarray, prompt: str) -> tuple[np.ndarray, np.ndarray]:
    n = len(frames)
    embeds = _reference_embeds(pipe, prompt)
    if n < min(CLIPS):  # the public code stops here; flowrvs pads with the last frame
        padded = np.concatenate([frames, np.repeat(frames[-1:], min(CLIPS) - n, axis=0)])
        values = _reference_clip(pipe, padded, embeds)[:n]
    else:
        length = max(c for c in CLIPS if c <= n)
        parts = [_reference_clip(pipe, frames[s : s + length], embeds) for s in range(0, n - length + 1, length)]
        done = len(parts) * length
        if done < n:
            parts.append(_reference_clip(pipe, frames[n - length :], embeds)[length - (n - done) :])
        values = torch.cat(parts)
    return (values > 0.5).numpy(), values.numpy()


# ---- the tests -----------------------------------------------------------------------------
def test_the_converted_folder_holds_rems_settings(rem_model):
    _, pipe = rem_model
    assert type(pipe) is REMPipeline and pipe.transformer.config.in_channels == 16
    assert pipe.vae.config.out_channels == 3
    config = pipe.config
    assert (config.text_len, tuple(config.size), config.resize_rule) == (77, (512, 512), "exact")
    assert (config.mask_threshold, config.prediction, config.clamp_logits) == (0.5, "mask", True)
    assert [(w.start, w.stop, w.context) for w in pipe.plan_windows(80)] == [(0, 73, 0), (7, 80, 66)]


@pytest.mark.parametrize("num_frames", [11, 5, 19])
def test_masks_equal_the_public_loop(rem_model, num_frames):
    """11 frames: a 9-frame clip and a tail clip keeping 2; 5: padded to 9; 19: 17 + tail of 2."""
    _, pipe = rem_model
    frames = np.random.default_rng(num_frames).integers(0, 256, (num_frames, 24, 40, 3), dtype=np.uint8)
    frames[:, 6:18, 10:30] //= 4  # something for the model to see
    prompt = "the dog jumping over the fence"
    expected, values = reference_masks(pipe, frames, prompt)
    out = pipe(frames, prompt, size=(SIZE, SIZE), return_logits=True)
    assert out.masks[0].shape == (num_frames, 24, 40)
    assert 0.05 < expected.mean() < 0.95  # not trivial
    np.testing.assert_array_equal(out.masks[0], expected)
    np.testing.assert_array_equal(out.logits[0], values)


def test_a_prompt_over_77_tokens_keeps_its_first_77_with_a_warning(rem_model, caplog):
    _, pipe = rem_model
    prompt = " ".join(["dog"] * 90)
    with caplog.at_level(logging.WARNING):
        embeds = pipe.encode_prompt(prompt)
    assert any("90" in r.message or "91" in r.message for r in caplog.records if "77" in r.message)
    tokens = pipe.tokenizer([prompt], max_length=512, truncation=True, return_tensors="pt")
    full = pipe.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    torch.testing.assert_close(embeds[0], full[0, :77], rtol=0, atol=0)

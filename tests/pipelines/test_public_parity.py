"""flowrvs gives the masks of the public inference loop, for both public releases.

``public_loop`` re-states the public code's inference from its documented behaviour (not from
its source): PIL bilinear resize into the box by ``s = min(BH / h, BW / w)`` with sides floored
to multiples of 16, frames to [-1, 1] as ``(x / 255 - 0.5) / 0.5``, padding to 4k+1 with the
last frame, the VAE posterior mean normalised, umT5 on the prompt padded to the text length
with its attention mask and zeroed past the real tokens, the model at
``round(1000 * shift(linspace(1, 0.001, N + 1)))[:N]`` stepped by Euler in float32 down to
sigma 0, diffusers' (clamping) VAE decode, bilinear resize to the frame size, threshold at 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.releases import write_dit_checkpoint, write_tuned_vae, write_wan_base
from PIL import Image

from flowrvs.loading.convert import convert_release
from flowrvs.pipelines.loader import load_pipeline

BOX = (64, 96)


@torch.no_grad()
def public_loop(folder, frames: np.ndarray, sentence: str, steps: int, box=BOX, shift=3.0) -> np.ndarray:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoTokenizer, UMT5EncoderModel

    index = __import__("json").loads((folder / "model_index.json").read_text())
    dit = WanTransformer3DModel.from_pretrained(folder / "transformer").eval()
    vae = AutoencoderKLWan.from_pretrained(folder / "vae").eval()
    encoder = UMT5EncoderModel.from_pretrained(folder / "text_encoder").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")

    t, h, w = frames.shape[:3]
    s = min(box[0] / h, box[1] / w)
    size = (int(h * s) // 16 * 16, int(w * s) // 16 * 16)
    images = [Image.fromarray(f).resize((size[1], size[0]), Image.BILINEAR) for f in frames]
    x = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 for im in images])
    x = (x - 0.5) / 0.5
    padded = 4 * math.ceil((t - 1) / 4) + 1
    x = torch.cat([x] + [x[-1:]] * (padded - t)).permute(1, 0, 2, 3)[None]

    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    z_video = (vae.encode(x).latent_dist.mean - mean) / std

    text_len = index["text_len"]
    tokens = tokenizer([sentence], padding="max_length", max_length=text_len, truncation=True,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    text = encoder(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    text = text * tokens.attention_mask[..., None]

    grid = torch.linspace(1.0, 0.001, steps + 1)
    timesteps = torch.round(1000 * (shift * grid / (1 + (shift - 1) * grid)))[:steps]
    sigmas = torch.cat([timesteps / 1000, torch.zeros(1)])
    dvi = dit.config.in_channels == 2 * dit.config.out_channels
    latent = z_video
    for i, step in enumerate(timesteps):
        inp = torch.cat([latent, z_video], dim=1) if dvi else latent
        v = dit(hidden_states=inp, timestep=step.expand(1), encoder_hidden_states=text, return_dict=False)[0]
        latent = latent.float() + (sigmas[i + 1] - sigmas[i]) * v

    if index["mask_latent_normalized"]:
        latent = latent * std + mean
    out = vae.decode(latent).sample[0, 0, :t]  # diffusers clamps to [-1, 1]
    out = F.interpolate(out[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return (out > 0).numpy()


@pytest.fixture(scope="module", params=["2025-dvi", "2026-no-dvi"])
def release(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    base = write_wan_base(root / "base")
    write_tuned_vae(root / "tuned_vae.pth")
    if request.param == "2025-dvi":
        write_dit_checkpoint(root / "mevis_dit.pth", dvi=True, ema=False, prefix="module.")
        return convert_release(base, root / "mevis_dit.pth", root / "tuned_vae.pth", root / "model",
                               mask_latent_normalized=True, text_len=64)
    write_dit_checkpoint(root / "FlowRVS_dit_mevis.pth", dvi=False, ema=True)
    return convert_release(base, root / "FlowRVS_dit_mevis.pth", root / "tuned_vae.pth", root / "model", text_len=256)


# (70, 40): portrait, the public box is not turned; (45, 77): floor and round-to-nearest differ
@pytest.mark.parametrize("shape", [(70, 40), (45, 77)])
@pytest.mark.parametrize("steps", [1, 4])
def test_masks_equal_the_public_loop(release, shape, steps):
    frames = np.random.default_rng(steps).integers(0, 256, (6, *shape, 3), dtype=np.uint8)
    sentence = "the red circle on the left"
    pipe = load_pipeline(release, device="cpu", dtype="float32")
    ours = pipe(frames, prompt=sentence, num_inference_steps=steps, size=BOX, return_logits=True)
    expected = public_loop(release, frames, sentence, steps)
    assert ours.masks[0].shape == expected.shape
    assert 0 < expected.mean() < 1  # a mask with both classes, so equality says something
    assert np.array_equal(ours.masks[0], expected)
    assert ours.logits[0].min() >= -1 and ours.logits[0].max() <= 1  # clamped, as the public decode


def test_the_named_options_change_what_they_say(release):
    frames = np.random.default_rng(5).integers(0, 256, (5, 70, 40, 3), dtype=np.uint8)
    pipe = load_pipeline(release, device="cpu")
    public = pipe(frames, "a dog", size=BOX, return_logits=True)
    assert public.working_size == (64, 32)
    pipe.register_to_config(resize_rule="oriented", clamp_logits=False)
    own = pipe(frames, "a dog", size=BOX, return_logits=True)
    assert own.working_size == (96, 48)  # the box turned to the portrait frame
    z_mask = 50 * torch.randn(1, 16, 2, 6, 4, generator=torch.Generator().manual_seed(0))
    raw = pipe.decode(z_mask)
    assert raw.abs().max() > 1  # raw decoder output, for a tuned threshold
    pipe.register_to_config(clamp_logits=True)
    assert torch.equal(pipe.decode(z_mask), raw.clamp(-1, 1))

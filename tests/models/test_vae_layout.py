"""The VAE's channels-last layout: same values, activations kept channels-last between layers."""

import pytest
import torch

from flowrvs.models.vae import CHANNELS_LAST, decode_mask_logits, encode_video, is_channels_last, use_channels_last
from flowrvs.models.vae_layers import uses_lean_layers
from flowrvs.pipelines.loader import load_pipeline
from flowrvs.presets import build_vae


def _run(vae) -> tuple[list[bool], torch.Tensor, torch.Tensor]:
    """Whether each 3-D convolution's input was channels-last, the latent and the mask logits."""
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].is_contiguous(memory_format=CHANNELS_LAST)))
             for m in vae.modules() if isinstance(m, torch.nn.Conv3d)]
    video = torch.rand(1, 3, 5, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        z = encode_video(vae, video)
        logits = decode_mask_logits(vae, z)
    for h in hooks:
        h.remove()
    return seen, z, logits


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 5e-2)])
def test_channels_last_gives_the_same_values(dtype, tolerance):
    torch.manual_seed(0)
    vae = build_vae("tiny").eval().to(dtype)
    _, z, logits = _run(vae)
    assert not is_channels_last(vae)
    _, z_cl, logits_cl = _run(use_channels_last(vae))
    assert is_channels_last(vae)
    assert z_cl.is_contiguous() and logits_cl.is_contiguous()
    torch.testing.assert_close(z_cl.float(), z.float(), atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(logits_cl.float(), logits.float(), atol=tolerance, rtol=tolerance)


def test_bf16_activations_stay_channels_last():
    torch.manual_seed(0)
    vae = build_vae("tiny").eval().to(torch.bfloat16)
    seen, _, _ = _run(vae)
    assert seen and not any(seen)
    seen, _, _ = _run(use_channels_last(vae))
    assert sum(seen) >= 0.9 * len(seen), f"{len(seen) - sum(seen)} of {len(seen)} convolutions got NCDHW inputs"


def test_loader_tunes_the_vae_for_bf16_on_cpu_only():
    bf16 = load_pipeline("tiny-synthetic", device="cpu", dtype="bfloat16").vae
    fp32 = load_pipeline("tiny-synthetic", device="cpu", dtype="float32").vae
    assert is_channels_last(bf16) and uses_lean_layers(bf16)
    assert not is_channels_last(fp32) and not uses_lean_layers(fp32)

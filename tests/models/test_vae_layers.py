"""The lean VAE layers: the same values as diffusers' layers, fewer passes over the activations."""

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanRMS_norm, WanUpsample
from torch.utils._python_dispatch import TorchDispatchMode

from flowrvs.models.vae import decode_mask_logits, encode_video, use_channels_last
from flowrvs.models.vae_layers import RMSNormSiLU, _causal_padded, SpatialPadCausalConv3d, use_lean_layers, uses_lean_layers
from flowrvs.presets import build_vae


def _video() -> torch.Tensor:
    return torch.rand(1, 3, 9, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _codec(vae, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = encode_video(vae, video)
    return z, decode_mask_logits(vae, z)


def _tiny_vae(dtype: torch.dtype, seed: int = 0):
    torch.manual_seed(seed)
    vae = build_vae("tiny").eval().to(dtype)
    for module in vae.modules():  # gammas of 1 would hide a norm that drops its weight
        if isinstance(module, WanRMS_norm):
            module.gamma.data = torch.rand_like(module.gamma) + 0.5
    return vae


@pytest.mark.parametrize("channels_last", [False, True])
def test_lean_layers_give_diffusers_values_in_float32(channels_last):
    vae = _tiny_vae(torch.float32)
    if channels_last:
        use_channels_last(vae)
    with torch.no_grad():
        z, logits = _codec(vae, _video())
        use_lean_layers(vae)
        z_lean, logits_lean = _codec(vae, _video())
    torch.testing.assert_close(z_lean, z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits_lean, logits, atol=1e-5, rtol=1e-5)


def test_lean_layers_replace_every_norm_conv_and_upsample():
    vae = use_lean_layers(_tiny_vae(torch.float32))
    assert uses_lean_layers(vae)
    kinds = [type(m) for m in vae.modules()]
    assert WanRMS_norm not in kinds and WanUpsample not in kinds
    assert all(isinstance(m, SpatialPadCausalConv3d) for m in vae.modules() if isinstance(m, WanCausalConv3d))
    silu = [m.silu for m in vae.modules() if isinstance(m, RMSNormSiLU)]
    assert any(silu) and not all(silu)  # the attention blocks' norms feed a projection, not SiLU
    before = sum(p.numel() for p in _tiny_vae(torch.float32).parameters())
    assert sum(p.numel() for p in vae.parameters()) == before  # shared, not copied or dropped
    assert use_lean_layers(vae) is vae and uses_lean_layers(vae)


def test_lean_layers_keep_gradients():
    video = _video()
    grads = []
    for lean in (False, True):
        vae = _tiny_vae(torch.float32)
        if lean:
            use_lean_layers(vae)
        z = encode_video(vae, video)
        decode_mask_logits(vae, z).square().mean().backward()
        grads.append({name: p.grad.clone() for name, p in vae.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


class _Float32Outputs(TorchDispatchMode):
    """Elements of every float32 tensor an operator returns."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.dtype == torch.float32:
                self.elements += t.numel()
        return out


def test_bf16_lean_layers_cast_no_activation_to_float32():
    """diffusers' norms and upsampling copy each activation to float32 and back; the lean ones
    keep only the per-pixel norms (one value per C channels) in float32."""
    vae = use_channels_last(_tiny_vae(torch.bfloat16))
    video = _video().to(torch.bfloat16)
    with torch.no_grad(), _Float32Outputs() as diffusers_fp32:
        z, logits = _codec(vae, video)
    use_lean_layers(vae)
    with torch.no_grad(), _Float32Outputs() as lean_fp32:
        z_lean, logits_lean = _codec(vae, video)
    assert lean_fp32.elements * 8 < diffusers_fp32.elements, (lean_fp32.elements, diffusers_fp32.elements)
    torch.testing.assert_close(z_lean.float(), z.float(), atol=5e-2, rtol=5e-2)
    # bf16 roundings differ along 9 frames of decoding: a few logits move by about two bf16 steps
    torch.testing.assert_close(logits_lean.float(), logits.float(), atol=1e-1, rtol=5e-2)


def test_causal_padding_is_one_tensor_in_the_input_layout():
    torch.manual_seed(0)
    conv = WanCausalConv3d(4, 5, 3, padding=1)
    lean = SpatialPadCausalConv3d.of(conv)
    x = torch.randn(1, 4, 3, 6, 7).contiguous(memory_format=torch.channels_last_3d)
    for cache in (None, torch.randn(1, 4, 1, 6, 7), torch.randn(1, 4, 2, 6, 7)):
        torch.testing.assert_close(lean(x, cache), conv(x, cache))
    cached = torch.randn(1, 4, 1, 6, 7)
    padded = _causal_padded(x, cached, 2)
    assert padded.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(padded, torch.cat([torch.zeros(1, 4, 1, 6, 7), cached, x], dim=2))
    assert lean.weight is conv.weight and lean.padding == (0, 1, 1)


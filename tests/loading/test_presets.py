import json
from pathlib import Path


from flowrvs.presets import build_text_encoder, build_transformer, build_vae, preset_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wan2.1-1.3b"


def _index_names(name):
    return set(json.loads((FIXTURES / name).read_text())["weight_map"])


def test_full_size_dit_matches_release_index():
    expected = _index_names("transformer_index.json")
    for dvi in (False, True):
        model = build_transformer("wan2.1-1.3b", dvi=dvi, device="meta")
        assert set(model.state_dict()) == expected
        weight = model.patch_embedding.weight
        assert weight.shape == (1536, 32 if dvi else 16, 1, 2, 2)
        assert model.proj_out.weight.shape[0] == 16 * 4  # output stays 16 channels
        assert sum(p.numel() for p in model.parameters()) > 1.3e9


def test_full_size_text_encoder_matches_release_index():
    model = build_text_encoder("wan2.1-1.3b", device="meta")
    assert {name for name, _ in model.named_parameters()} == _index_names("text_encoder_index.json")


def test_full_size_vae_has_one_channel_mask_head():
    vae = build_vae("wan2.1-1.3b", device="meta")
    assert vae.decoder.conv_out.weight.shape[0] == 1
    assert vae.encoder.conv_in.weight.shape[1] == 3
    assert len(vae.config.latents_mean) == 16


def test_tiny_is_tiny():
    total = sum(
        p.numel()
        for m in (build_transformer("tiny"), build_vae("tiny"), build_text_encoder("tiny", vocab_size=300))
        for p in m.parameters()
    )
    assert total < 1_000_000


def test_wan_14b_dit_is_the_published_shape():
    """Wan 2.1 T2V 14B (diffusers release): 5120 wide (40 heads x 128), 40 blocks, FFN 13824; 14B parameters."""
    small = set(build_transformer("wan2.1-1.3b", device="meta").state_dict())
    for dvi in (False, True):
        model = build_transformer("wan2.1-14b", dvi=dvi, device="meta")
        assert len(model.blocks) == 40
        assert model.patch_embedding.weight.shape == (5120, 32 if dvi else 16, 1, 2, 2)
        assert model.blocks[0].ffn.net[0].proj.weight.shape == (13824, 5120)
        assert model.condition_embedder.text_embedder.linear_1.weight.shape == (5120, 4096)  # umT5-XXL's width
        assert model.proj_out.weight.shape[0] == 16 * 4
        # the same parameter names as 1.3B's, ten more blocks: converted checkpoints load alike
        names = {name for name in model.state_dict() if not name.startswith(tuple(f"blocks.{i}." for i in range(30, 40)))}
        assert names == small
        total = sum(p.numel() for p in model.parameters())
        assert 13.5e9 < total < 14.5e9, total
    # the VAE and text encoder are 1.3B's
    for part in ("vae", "text_encoder"):
        assert preset_config("wan2.1-14b", part) == preset_config("wan2.1-1.3b", part)

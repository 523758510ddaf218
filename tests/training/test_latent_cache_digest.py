"""Training latent caches record a digest of their content; a file that does not match is rebuilt (issue 24)."""

from __future__ import annotations

import pytest
import torch

from flowrvs.training.latent_cache import LatentCache, StaleCacheError


def _cache() -> LatentCache:
    g = torch.Generator().manual_seed(0)
    return LatentCache(video_mean=[torch.randn(4, 2, 3, 3, generator=g)], video_std=[torch.rand(4, 2, 3, 3, generator=g)],
                       mask=[torch.randn(4, 2, 3, 3, generator=g)], mask_index=[0, 0], sentence=["a dog", "the dog"],
                       video=[0, 0], group=[0, 0])


def test_round_trip(tmp_path):
    cache = _cache()
    cache.save(tmp_path / "c.safetensors")
    again = LatentCache.load(tmp_path / "c.safetensors")
    assert again.sentence == cache.sentence and torch.equal(again.mask[0], cache.mask[0])
    assert torch.equal(LatentCache.load(tmp_path / "c.safetensors", torch.bfloat16).video_mean[0],
                       cache.video_mean[0].to(torch.bfloat16))


def test_flipped_bytes_and_edited_metadata_are_refused(tmp_path):
    path = tmp_path / "c.safetensors"
    _cache().save(path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x55  # inside the last tensor: still a valid safetensors file
    path.write_bytes(bytes(raw))
    with pytest.raises(StaleCacheError, match="does not match its digest"):
        LatentCache.load(path)
    path.write_bytes(b"truncated")
    with pytest.raises(StaleCacheError, match="unreadable"):
        LatentCache.load(path)

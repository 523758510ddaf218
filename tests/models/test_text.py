import pytest
import torch

from flowrvs.errors import FlowRVSError
from flowrvs.models.text import PromptEncoder, check_prompts, clean_prompt


def test_clean_prompt():
    assert clean_prompt('  the  "dog"\n jumping &amp; running\\ ') == "the dog jumping & running"
    assert clean_prompt("a &amp;lt; b") == "a < b"  # unescaped twice, as doubly escaped captions need


def test_check_prompts_rejects_empty():
    assert check_prompts("a dog") == ["a dog"]
    for bad in ([], [""], ["ok", "   "], ['""']):
        with pytest.raises(FlowRVSError):
            check_prompts(bad)


def test_embeddings_zero_padded_and_cached(tiny_pipe):
    encoder = PromptEncoder(tiny_pipe.tokenizer, tiny_pipe.text_encoder, text_len=16)
    calls = []
    original = encoder._embed
    encoder._embed = lambda prompts: calls.append(list(prompts)) or original(prompts)
    emb = encoder.encode(["the red circle", "a dog", "the red circle"])
    assert emb.shape == (3, 16, tiny_pipe.text_encoder.config.d_model)
    assert calls == [["a dog", "the red circle"]]  # each distinct prompt encoded once
    assert torch.equal(emb[0], emb[2])
    n_tokens = 4  # three words and </s>
    assert emb[0, :n_tokens].abs().sum(-1).min() > 0
    assert torch.all(emb[0, n_tokens:] == 0)
    encoder.encode(["a dog"])
    assert len(calls) == 1  # cached
    # the embedding of a prompt does not depend on what it is batched with (attention mask)
    fresh = PromptEncoder(tiny_pipe.tokenizer, tiny_pipe.text_encoder, text_len=16)
    alone = fresh.encode(["a dog"])
    assert torch.allclose(alone[0], emb[1], atol=1e-6)
    # the differentiable path gives the same numbers, uncached
    with_grad = fresh.encode_with_grad(["the red circle", "a dog"])
    assert len(fresh._cache) == 1
    assert torch.allclose(with_grad.detach(), emb[:2], atol=1e-6)


# ---- the embedding cache and loading the encoder only on a miss ----------------------------
import gc  # noqa: E402
import weakref  # noqa: E402

from flowrvs.models.text import EmbeddingCache, default_cache_folder, encode_sentences  # noqa: E402


class CountingLoader:
    """Builds a fresh tiny text encoder per call, counting calls and keeping weak references."""

    def __init__(self, tiny_pipe):
        self.pipe = tiny_pipe
        self.calls = 0
        self.built: list[weakref.ref] = []

    def __call__(self):
        import copy

        self.calls += 1
        encoder = copy.deepcopy(self.pipe.text_encoder)
        self.built.append(weakref.ref(encoder))
        return self.pipe.tokenizer, encoder


def test_second_encode_does_not_build_the_text_encoder(tiny_pipe, tmp_path):
    loader = CountingLoader(tiny_pipe)
    cache = EmbeddingCache(tmp_path / "emb")
    first = encode_sentences(["the red circle", "a dog"], loader, cache, text_len=16, model="m1")
    assert loader.calls == 1
    gc.collect()
    assert all(ref() is None for ref in loader.built)  # the encoder was freed
    reference = PromptEncoder(tiny_pipe.tokenizer, tiny_pipe.text_encoder, 16).encode(["the red circle", "a dog"])
    torch.testing.assert_close(first, reference)
    assert len(list((tmp_path / "emb").glob("*.safetensors"))) == 2

    # a new process (a new cache object on the same folder) does not load the encoder either
    again = encode_sentences(["a dog", "the red circle"], loader, EmbeddingCache(tmp_path / "emb"), 16, "m1")
    assert loader.calls == 1
    assert torch.equal(again, first.flip(0))
    # one new sentence loads the encoder once, for that sentence only
    seen = []
    original = PromptEncoder._embed
    try:
        PromptEncoder._embed = lambda self, prompts: seen.append(list(prompts)) or original(self, prompts)
        encode_sentences(["a dog", "a cat"], loader, cache, 16, "m1")
    finally:
        PromptEncoder._embed = original
    assert loader.calls == 2 and seen == [["a cat"]]


def test_cache_keys_differ_by_model_and_text_len_and_share_cleaned_sentences(tiny_pipe, tmp_path):
    loader = CountingLoader(tiny_pipe)
    cache = EmbeddingCache(tmp_path)
    encode_sentences(['the  "red" circle'], loader, cache, 16, "m1")
    encode_sentences(["the red circle "], loader, cache, 16, "m1")  # cleaned-equal: same entry
    assert loader.calls == 1
    encode_sentences(["the red circle"], loader, cache, 8, "m1")
    assert loader.calls == 2
    out = encode_sentences(["the red circle"], loader, cache, 16, "m2")
    assert loader.calls == 3
    assert out.shape == (1, 16, tiny_pipe.text_encoder.config.d_model)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    assert EmbeddingCache.key("m1", "a  dog", 16) == EmbeddingCache.key("m1", "a dog", 16)


def test_cache_survives_bad_files_and_can_be_off(tiny_pipe, tmp_path, monkeypatch):
    loader = CountingLoader(tiny_pipe)
    cache = EmbeddingCache(tmp_path)
    good = encode_sentences(["a dog"], loader, cache, 16, "m")
    (entry,) = tmp_path.glob("*.safetensors")
    entry.write_bytes(b"not a safetensors file")
    again = encode_sentences(["a dog"], loader, EmbeddingCache(tmp_path), 16, "m")  # a miss, not a crash
    assert loader.calls == 2 and torch.equal(again, good)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files

    memory = EmbeddingCache(None)
    encode_sentences(["a dog"], loader, memory, 16, "m")
    encode_sentences(["a dog"], loader, memory, 16, "m")
    assert loader.calls == 3  # memory-only: cached within the object, nothing on disk
    encode_sentences(["a dog"], loader, None, 16, "m")
    assert loader.calls == 4

    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "c"))
    assert default_cache_folder() == tmp_path / "c" / "embeddings"
    monkeypatch.setenv("FLOWRVS_CACHE", "off")
    assert default_cache_folder() is None and EmbeddingCache.default().folder is None
    monkeypatch.delenv("FLOWRVS_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_folder().parts[-3:] == (".cache", "flowrvs", "embeddings")
    with pytest.raises(FlowRVSError):
        encode_sentences(["  "], loader, memory, 16, "m")


def test_streamed_text_encoder_reads_weights_from_disk_layer_by_layer(tiny_pipe, tmp_path):
    from flowrvs.models.text import load_streamed_text_encoder

    folder = tmp_path / "text_encoder"
    tiny_pipe.text_encoder.save_pretrained(folder, max_shard_size="100KB")  # sharded, like umT5-XXL's
    assert (folder / "model.safetensors.index.json").is_file()
    streamed = load_streamed_text_encoder(folder)
    assert {p.device.type for p in streamed.parameters()} == {"meta"}  # nothing resident
    sentences = ["the red circle", "a dog", "the red circle"]
    expected = PromptEncoder(tiny_pipe.tokenizer, tiny_pipe.text_encoder, 16).encode(sentences)
    out = encode_sentences(sentences, lambda: (tiny_pipe.tokenizer, streamed), None, 16, "m")
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    assert {p.device.type for p in streamed.parameters()} == {"meta"}  # and nothing left after
    ids = tiny_pipe.tokenizer(["a dog", "the red circle"], padding="longest", return_tensors="pt").input_ids
    assert streamed.shared.rows_read == len(ids.unique())  # the batch's distinct tokens, not the table

    sorted(folder.glob("model-*.safetensors"))[-1].unlink()  # a shard the index names is gone
    with pytest.raises(FlowRVSError):
        load_streamed_text_encoder(folder)


def test_cache_entry_with_flipped_bytes_is_a_miss_and_is_rewritten(tiny_pipe, tmp_path, caplog):
    """Issue 24: bytes flipped inside the tensor (same size, still valid safetensors) never reach the masks."""
    from safetensors.torch import load_file

    loader = CountingLoader(tiny_pipe)
    good = encode_sentences(["a dog"], loader, EmbeddingCache(tmp_path), 16, "m")
    (entry,) = tmp_path.glob("*.safetensors")
    raw = bytearray(entry.read_bytes())
    raw[-5] ^= 0xFF  # inside the tensor data at the end of the file
    entry.write_bytes(bytes(raw))
    flipped = load_file(entry)["embedding"]  # still loads: only the digest can tell
    assert not torch.equal(flipped, good[0, : flipped.shape[0]].to(flipped.dtype))
    with caplog.at_level("WARNING"):
        again = encode_sentences(["a dog"], loader, EmbeddingCache(tmp_path), 16, "m")
    assert loader.calls == 2 and torch.equal(again, good)
    assert "does not match its digest" in caplog.text
    third = encode_sentences(["a dog"], loader, EmbeddingCache(tmp_path), 16, "m")  # rewritten: a hit now
    assert loader.calls == 2 and torch.equal(third, good)


def test_cache_entry_under_another_key_is_a_miss(tiny_pipe, tmp_path):
    loader = CountingLoader(tiny_pipe)
    cache = EmbeddingCache(tmp_path)
    encode_sentences(["a dog"], loader, cache, 16, "m")
    encode_sentences(["a cat"], loader, cache, 16, "m")
    dog, cat = (tmp_path / f"{EmbeddingCache.key('m', s, 16)}.safetensors" for s in ("a dog", "a cat"))
    cat.write_bytes(dog.read_bytes())  # a valid entry, filed under the wrong sentence
    assert EmbeddingCache(tmp_path).get("m", "a cat", 16) is None

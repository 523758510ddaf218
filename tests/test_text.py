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

"""Text side: prompt cleaning, the umT5 encoder (frozen at inference), and an embedding cache.

Embeddings follow Wan 2.1: tokens are encoded with their attention mask, everything past the
real token length is zero, and the sequence is zero-padded to a fixed length (``text_len``,
256 for current checkpoints, 64 for older ones). With the attention mask, umT5's embeddings of
the real tokens do not depend on the padding, so prompts are tokenized to their real length
only and padded afterwards.
"""

from __future__ import annotations

import html
import re

import torch

from ..errors import FlowRVSError

_WHITESPACE = re.compile(r"\s+")


def clean_prompt(text: str) -> str:
    """Unescape HTML entities, drop double quotes and backslashes, collapse whitespace."""
    text = html.unescape(html.unescape(text))
    text = text.replace('"', "").replace("\\", "")
    return _WHITESPACE.sub(" ", text).strip()


def check_prompts(prompts) -> list[str]:
    """Validate prompts: a non-empty list of strings that are not empty after cleaning."""
    if prompts is None:
        raise FlowRVSError("no prompt given")
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise FlowRVSError("no prompt given")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise FlowRVSError(f"prompt {i} is not a string: {p!r}")
        if not clean_prompt(p):
            raise FlowRVSError(f"prompt {i} is empty")
    return prompts


class PromptEncoder:
    """Turns prompts into ``(B, text_len, D)`` embeddings, each distinct prompt encoded once.

    ``tokenizer``: a transformers tokenizer (umT5's, or a small word-level one for tiny
    models); ``text_encoder``: a transformers ``UMT5EncoderModel``. The cache holds embeddings
    on the CPU keyed by the cleaned prompt; :meth:`clear_cache` empties it.
    """

    def __init__(self, tokenizer, text_encoder, text_len: int):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.text_len = text_len
        self._cache: dict[str, torch.Tensor] = {}

    def clear_cache(self) -> None:
        self._cache.clear()

    def _embed(self, prompts: list[str]) -> list[torch.Tensor]:
        """Per prompt, the embeddings ``(n_tokens, D)`` of its real tokens (on the encoder's device)."""
        tokens = self.tokenizer(
            prompts,
            padding="longest",
            truncation=True,
            max_length=self.text_len,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        device = self.text_encoder.device
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.text_encoder(ids, attention_mask=mask).last_hidden_state
        lengths = mask.sum(dim=1).tolist()
        return [hidden[i, :n] for i, n in enumerate(lengths)]

    def _pad(self, embeds: list[torch.Tensor]) -> torch.Tensor:
        out = embeds[0].new_zeros(len(embeds), self.text_len, embeds[0].shape[-1])
        for i, emb in enumerate(embeds):
            out[i, : emb.shape[0]] = emb
        return out

    def encode(self, prompts: list[str], device=None, dtype=None) -> torch.Tensor:
        """Embeddings ``(B, text_len, D)``: real tokens, then zeros."""
        keys = [clean_prompt(p) for p in check_prompts(prompts)]
        missing = sorted({k for k in keys if k not in self._cache})
        if missing:
            with torch.no_grad():
                for key, emb in zip(missing, self._embed(missing)):
                    self._cache[key] = emb.cpu()
        return self._pad([self._cache[k] for k in keys]).to(device=device, dtype=dtype)

    def encode_with_grad(self, prompts: list[str]) -> torch.Tensor:
        """Like :meth:`encode`, but uncached and differentiable (for training the text encoder);
        on the encoder's device and dtype."""
        return self._pad(self._embed([clean_prompt(p) for p in check_prompts(prompts)]))

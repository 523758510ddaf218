"""Text side: prompt cleaning, the umT5 encoder (frozen at inference), and an embedding cache.

Embeddings follow Wan 2.1: tokens are encoded with their attention mask, everything past the
real token length is zero, and the sequence is zero-padded to a fixed length (``text_len``,
256 for current checkpoints, 64 for older ones). With the attention mask, umT5's embeddings of
the real tokens do not depend on the padding, so prompts are tokenized to their real length
only and padded afterwards.

Peak memory is the largest part, never the sum: :func:`encode_sentences` loads the encoder
only for sentences that an on-disk :class:`EmbeddingCache` has not seen, and frees it (memory
returned to the OS) before the DiT and the VAE run.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import torch

from flowrvs.errors import FlowRVSError, first_line
from flowrvs.models.text_weights import layers_in_dtype
from flowrvs.runtime.cache import cache_root, speed_caches_enabled

logger = logging.getLogger(__name__)

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


def execution_device(encoder: torch.nn.Module) -> torch.device:
    """Where ``encoder`` computes: its parameters' device, or the one a streamed encoder names."""
    return getattr(encoder, "flowrvs_execution_device", None) or encoder.device


class PromptEncoder:
    """Turns prompts into ``(B, text_len, D)`` embeddings, each distinct prompt encoded once.

    ``tokenizer``: a transformers tokenizer (umT5's, or a small word-level one for tiny
    models); ``text_encoder``: a transformers ``UMT5EncoderModel``. The cache holds embeddings
    on the CPU keyed by the cleaned prompt; :meth:`clear_cache` empties it. ``max_length``:
    tokens the encoder sees (default ``text_len``); a prompt encoded to more than ``text_len``
    tokens keeps its first ``text_len`` embeddings, with one warning (REM: 512 and 77).
    """

    def __init__(self, tokenizer, text_encoder, text_len: int, max_length: int | None = None):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.text_len = text_len
        self.max_length = text_len if max_length is None else max_length
        self._cache: dict[str, torch.Tensor] = {}

    def clear_cache(self) -> None:
        self._cache.clear()

    def _embed(self, prompts: list[str]) -> list[torch.Tensor]:
        """Per prompt, the embeddings ``(n_tokens, D)`` of its real tokens (on the encoder's device)."""
        tokens = self.tokenizer(
            prompts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        device = execution_device(self.text_encoder)
        ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.text_encoder(ids, attention_mask=mask).last_hidden_state
        lengths = mask.sum(dim=1).tolist()
        for prompt, n in zip(prompts, lengths):
            if n > self.text_len:
                logger.warning("the prompt %r has %d tokens; the model takes the first %d", prompt[:60], n, self.text_len)
        return [hidden[i, : min(n, self.text_len)] for i, n in enumerate(lengths)]

    def _pad(self, embeds: list[torch.Tensor]) -> torch.Tensor:
        return pad_embeddings(embeds, self.text_len)

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


# ---- embeddings on disk ------------------------------------------------------------------
def default_cache_folder() -> Path | None:
    """``embeddings/`` under :func:`flowrvs.runtime.cache.cache_root`; ``None`` when
    ``$FLOWRVS_CACHE`` turns the speed caches off (embeddings then stay in memory)."""
    return cache_root() / "embeddings" if speed_caches_enabled() else None


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a CPU tensor's dtype, shape and bytes (what a cache entry must reproduce)."""
    data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    head = f"{tensor.dtype}|{tuple(tensor.shape)}|".encode()
    return hashlib.sha256(head + data).hexdigest()


class EmbeddingCache:
    """Sentence embeddings ``(n_tokens, D)`` of the real tokens, one safetensors file each.

    Keyed by ``(model, cleaned sentence, text_len)``: ``model`` is any string that changes with
    the encoder's weights and compute dtype (e.g. ``f"{model_fingerprint(folder)}-bfloat16"``).
    Files are ``<folder>/<sha256 of the key>.safetensors`` written atomically; each records its key
    and a digest of its tensor, checked when read, so an unreadable, foreign or corrupted file
    (same size, still valid safetensors) is a miss with one warning line, recomputed and rewritten.
    A folder that cannot be written (read-only, full) costs speed only: one warning, and this
    object keeps later entries in memory. ``folder=None`` (or :meth:`memory_only`) keeps entries
    in this process only.
    Use :meth:`default` for the user's cache folder.
    """

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder).expanduser() if folder is not None else None
        self._memory: dict[str, torch.Tensor] = {}
        self._unwritable = False  # a write failed: warned once, later entries stay in memory

    @classmethod
    def default(cls) -> "EmbeddingCache":
        return cls(default_cache_folder())

    @classmethod
    def memory_only(cls) -> "EmbeddingCache":
        return cls(None)

    @staticmethod
    def key(model: str, sentence: str, text_len: int) -> str:
        payload = json.dumps([str(model), clean_prompt(sentence), int(text_len)], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def get(self, model: str, sentence: str, text_len: int) -> torch.Tensor | None:
        """The cached ``(n_tokens, D)`` embedding on the CPU, or ``None``."""
        key = self.key(model, sentence, text_len)
        if key in self._memory:
            return self._memory[key]
        if self.folder is None or not self._path(key).is_file():
            return None
        from safetensors import SafetensorError, safe_open

        path = self._path(key)
        try:
            with safe_open(str(path), framework="pt") as entry:
                meta = entry.metadata() or {}
                embedding = entry.get_tensor("embedding")
        except (SafetensorError, KeyError, FileNotFoundError) as err:  # damaged, foreign or just removed
            logger.warning("ignoring unreadable cached embedding %s: %s", path, first_line(err))
            return None
        if meta.get("key") != key or meta.get("digest") != tensor_digest(embedding):
            logger.warning("ignoring cached embedding %s: its content does not match its digest", path)
            return None
        self._memory[key] = embedding
        return embedding

    def put(self, model: str, sentence: str, text_len: int, embedding: torch.Tensor) -> None:
        """Store ``(n_tokens, D)``; on disk atomically (a failed write leaves no file)."""
        key = self.key(model, sentence, text_len)
        embedding = embedding.detach().to("cpu").contiguous()
        self._memory[key] = embedding
        if self.folder is None or self._unwritable:
            return
        from safetensors.torch import save_file

        from flowrvs.io.atomic import atomic_path

        meta = {"model": str(model), "sentence": clean_prompt(sentence), "text_len": str(int(text_len)),
                "key": key, "digest": tensor_digest(embedding)}
        try:
            with atomic_path(self._path(key)) as tmp:
                save_file({"embedding": embedding}, str(tmp), metadata=meta)
        except OSError as err:  # a read-only or full disk costs speed, not the result: one warning
            self._unwritable = True
            logger.warning("cannot write the embedding cache in %s (entries stay in memory): %s", self.folder,
                           first_line(err))

    def __contains__(self, item: tuple[str, str, int]) -> bool:
        return self.get(*item) is not None


def pad_embeddings(embeds: Sequence[torch.Tensor], text_len: int) -> torch.Tensor:
    """Stack ``(n_i, D)`` embeddings into ``(B, text_len, D)``, zeros past each real length."""
    out = embeds[0].new_zeros(len(embeds), text_len, embeds[0].shape[-1])
    for i, emb in enumerate(embeds):
        out[i, : emb.shape[0]] = emb[:text_len]
    return out


def encode_sentences(
    sentences: Sequence[str] | str,
    load_encoder: Callable[[], tuple[object, torch.nn.Module]],
    cache: EmbeddingCache | None,
    text_len: int,
    model: str,
    device=None,
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
    max_length: int | None = None,
) -> torch.Tensor:
    """Embeddings ``(B, text_len, D)`` of ``sentences``, loading the text encoder only on a miss.

    load_encoder: returns ``(tokenizer, text_encoder)``, freshly loaded; it is called at most
    once, only when some cleaned sentence is not in ``cache``, and both are dropped (and the
    memory returned to the OS) before this returns, so the caller must not keep references.
    cache: ``None`` encodes every time. model: the cache key of the encoder (weights and dtype).
    device/dtype: of the result (default: CPU, the cached dtype). max_length: as
    :class:`PromptEncoder` (part of ``model``, the cache key, when it is not ``text_len``).
    """
    from flowrvs.runtime.memory import release_memory

    keys = [clean_prompt(s) for s in check_prompts(sentences)]
    cache = cache if cache is not None else EmbeddingCache.memory_only()
    missing = [k for k in dict.fromkeys(keys) if cache.get(model, k, text_len) is None]
    if missing:
        tokenizer, encoder = load_encoder()
        prompt_encoder = None
        try:
            prompt_encoder = PromptEncoder(tokenizer, encoder, text_len, max_length=max_length)
            with torch.no_grad():
                for start in range(0, len(missing), batch_size):
                    chunk = missing[start : start + batch_size]
                    for key, emb in zip(chunk, prompt_encoder._embed(chunk)):
                        cache.put(model, key, text_len, emb)
        finally:
            del tokenizer, encoder, prompt_encoder
            release_memory()
    embeds = [cache.get(model, k, text_len) for k in keys]
    return pad_embeddings(embeds, text_len).to(device=device, dtype=dtype)


# ---- an encoder whose weights stay on disk -----------------------------------------------
def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text()).get("weight_map")
        except json.JSONDecodeError as err:
            raise FlowRVSError(f"cannot read {index}: {first_line(err)}") from err
        if not isinstance(weight_map, dict):
            raise FlowRVSError(f"{index} has no weight_map")
        return [folder / name for name in sorted(set(weight_map.values()))]
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    raise FlowRVSError(f"{folder} has no model.safetensors or model.safetensors.index.json")


class RowsFromDisk(torch.nn.Module):
    """An embedding table left in its safetensors file: a lookup reads only the rows it needs.

    ids ``(...)`` int -> ``(..., D)`` in ``dtype``. umT5-XXL's table is 256384 x 4096 (4.2 GB
    in float32); a prompt needs a few dozen rows.
    """

    def __init__(self, path: Path, name: str, shape: tuple[int, int], dtype: torch.dtype, device):
        super().__init__()
        self.path, self.name, self.shape, self.dtype, self.device = str(path), name, tuple(shape), dtype, device
        self.rows_read = 0

    @property
    def num_embeddings(self) -> int:
        return self.shape[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        from safetensors import safe_open

        unique, inverse = torch.unique(ids.cpu(), return_inverse=True)
        if len(unique) and not 0 <= int(unique[0]) <= int(unique[-1]) < self.shape[0]:
            raise FlowRVSError(f"token id {int(unique[-1])} is outside the text encoder's table of {self.shape[0]} rows")
        with safe_open(self.path, framework="pt") as f:
            table = f.get_slice(self.name)
            rows = torch.cat([table[i : i + 1] for i in unique.tolist()]).to(self.dtype)
        self.rows_read += len(unique)
        return rows[inverse].to(self.device)


def load_streamed_text_encoder(folder: str | os.PathLike, dtype: torch.dtype = torch.float32, device="cpu"):
    """A umT5 encoder (``UMT5EncoderModel``) whose weights stay in its safetensors files.

    Built on the ``meta`` device; before each layer runs, accelerate's offload hooks read its
    weights from the shards (cast to ``dtype``, moved to ``device``) and drop them after, and the
    token embedding reads only the rows of the prompt's tokens. Layers stored wider than ``dtype``
    are read from a copy in ``dtype`` kept in the cache folder, written on first use
    (:mod:`flowrvs.models.text_weights`; same values, half the bytes to read for float32 -> bf16). Resident memory is one layer's
    weights plus activations (umT5-XXL: about 170 MB of weights instead of 22.7 GB in float32
    or 11.4 GB in bfloat16), for the price of reading the shards once per call: encode all
    sentences in one call, and cache the results (:func:`encode_sentences`).
    """
    from accelerate.hooks import attach_align_device_hook
    from accelerate.utils import OffloadedWeightsLoader
    from safetensors import SafetensorError, safe_open
    from transformers import UMT5Config, UMT5EncoderModel

    folder = Path(folder)
    dtype_name = str(dtype).removeprefix("torch.")
    index: dict[str, dict] = {}
    try:
        config = UMT5Config.from_pretrained(folder)
        with torch.device("meta"):  # thread-local, unlike accelerate's init_empty_weights (a global patch)
            model = UMT5EncoderModel(config)
    except Exception as err:  # transformers parsing the user's config.json: missing, values of the wrong type
        raise FlowRVSError(f"cannot read the text encoder in {folder} (config.json): "
                           f"{type(err).__name__}: {first_line(err)}") from err
    try:
        for path in _safetensors_files(folder):
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    index[key] = {"safetensors_file": str(path), "weight_name": key, "dtype": dtype_name}
    except (OSError, SafetensorError) as err:
        raise FlowRVSError(f"cannot read the text encoder in {folder}: {first_line(err)}") from err
    model.to(dtype)
    table_key = next((k for k in ("shared.weight", "encoder.embed_tokens.weight") if k in index), None)
    if table_key is None:
        raise FlowRVSError(f"the text encoder in {folder} has no shared.weight (token embedding)")
    try:
        index = layers_in_dtype(index, dtype, skip=frozenset({table_key}))
    except (OSError, SafetensorError) as err:
        raise FlowRVSError(f"cannot read the text encoder in {folder}: {first_line(err)}") from err
    shape = (config.vocab_size, config.d_model)
    model.set_input_embeddings(RowsFromDisk(Path(index[table_key]["safetensors_file"]), table_key, shape, dtype, device))
    missing = [name for name, _ in model.named_parameters() if name not in index]
    if missing:
        raise FlowRVSError(f"the text encoder in {folder} lacks {len(missing)} weight(s), e.g. {missing[0]}")
    model.eval().requires_grad_(False)
    attach_align_device_hook(model, execution_device=device, offload=True, weights_map=OffloadedWeightsLoader(index=index))
    model.flowrvs_execution_device = torch.device(device)
    return model

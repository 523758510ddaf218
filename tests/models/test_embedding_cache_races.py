"""The embedding cache under concurrent writers and on a disk that refuses writes (issue 24, point 2).

Two processes that miss the same entries at the same moment both write them (the barrier in the
encoder makes both miss first); both must end with the right embeddings, and the folder must
hold one valid entry per sentence and no temporary file. A cache folder that cannot be written
must cost speed only: the right result and one warning line.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import flowrvs.io.atomic as atomic
from flowrvs.models.text import EmbeddingCache, encode_sentences

SENTENCES = [f"object number {i} moving left" for i in range(12)]
TEXT_LEN, WIDTH = 16, 4096  # 16 x 4096 float32: 256 KB per entry, so the two writers overlap


class CharTokenizer:
    """Token ids are the characters' code points (at most ``max_length``)."""

    def __call__(self, prompts, max_length, **_):
        ids = [[ord(c) for c in p][:max_length] for p in prompts]
        longest = max(len(i) for i in ids)
        input_ids = torch.tensor([i + [0] * (longest - len(i)) for i in ids])
        mask = torch.tensor([[1] * len(i) + [0] * (longest - len(i)) for i in ids])
        return SimpleNamespace(input_ids=input_ids, attention_mask=mask)


class ScaleEncoder:
    """A deterministic "text encoder": token id times 1..WIDTH, per token."""

    device = torch.device("cpu")

    def __init__(self, barrier=None):
        self.barrier = barrier

    def __call__(self, ids, attention_mask):
        if self.barrier is not None:  # every process has missed the cache before anyone writes
            self.barrier.wait(timeout=120)
            self.barrier = None
        scale = torch.arange(1, WIDTH + 1, dtype=torch.float32)
        return SimpleNamespace(last_hidden_state=ids[..., None].float() * scale * attention_mask[..., None])


def expected() -> torch.Tensor:
    return encode_sentences(SENTENCES, lambda: (CharTokenizer(), ScaleEncoder()), None, TEXT_LEN, "race-model")


def _fill(folder: str, barrier, out: str) -> None:
    """One process: encode every sentence through the shared cache folder, save the result."""
    result = encode_sentences(SENTENCES, lambda: (CharTokenizer(), ScaleEncoder(barrier)),
                              EmbeddingCache(folder), TEXT_LEN, "race-model")
    torch.save(result, out)


def test_two_processes_filling_the_same_entries_both_get_them_right(tmp_path, caplog):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    folder = tmp_path / "embeddings"
    procs = [ctx.Process(target=_fill, args=(str(folder), barrier, str(tmp_path / f"out{i}.pt"))) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    want = expected()
    for i in range(2):
        assert torch.equal(torch.load(tmp_path / f"out{i}.pt", weights_only=True), want)
    entries = sorted(folder.iterdir())
    assert len(entries) == len(SENTENCES) and all(e.suffix == ".safetensors" for e in entries)  # no temp left
    fresh = EmbeddingCache(folder)
    with caplog.at_level(logging.WARNING, logger="flowrvs"):
        again = encode_sentences(SENTENCES, lambda: pytest.fail("the cache missed"), fresh, TEXT_LEN, "race-model")
    assert torch.equal(again, want) and not caplog.records  # every entry valid: read back, no warning


def test_a_cache_folder_that_refuses_writes_costs_speed_only(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "embeddings"
    encode_sentences(SENTENCES[:1], lambda: (CharTokenizer(), ScaleEncoder()), EmbeddingCache(folder), TEXT_LEN,
                     "race-model")  # one entry written while the disk still took writes
    real_open = atomic.os.open

    def read_only_open(path, flags, *args, **kwargs):  # what a read-only mount answers (root ignores chmod)
        if Path(path).parent == folder and flags & atomic.os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", read_only_open)
    calls = []

    def load():
        calls.append(1)
        return CharTokenizer(), ScaleEncoder()

    with caplog.at_level(logging.WARNING, logger="flowrvs"):
        result = encode_sentences(SENTENCES, load, EmbeddingCache(folder), TEXT_LEN, "race-model")
    assert torch.equal(result, expected())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot write the embedding cache" in warnings[0], warnings
    assert calls == [1] and sorted(p.name for p in folder.iterdir()) == [
        f"{EmbeddingCache.key('race-model', SENTENCES[0], TEXT_LEN)}.safetensors"]  # the old entry, read, kept

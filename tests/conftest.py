import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# sentence embeddings and converted models go to a throwaway folder, never the user's cache
os.environ["FLOWRVS_CACHE"] = tempfile.mkdtemp(prefix="flowrvs-test-cache-")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Two shared cores: oversubscribed threads make the tiny models several times slower.
    (Subprocesses the tests start choose their own.)"""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_pipe():
    """A tiny random pipeline with DVI (shared: tests must not modify it)."""
    from flowrvs.presets import build_pipeline

    return build_pipeline("tiny", dvi=True, seed=0)

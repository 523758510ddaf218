"""One cache root for converted models, sentence embeddings and the web page's examples."""

from __future__ import annotations

from pathlib import Path

from flowrvs.apps.web import default_cache_dir
from flowrvs.models.text import default_cache_folder
from flowrvs.runtime.cache import cache_root, speed_caches_enabled


def test_the_root_comes_from_flowrvs_cache_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "c" and speed_caches_enabled()
    monkeypatch.setenv("FLOWRVS_CACHE", "~/somewhere")
    assert cache_root() == Path.home() / "somewhere"
    monkeypatch.delenv("FLOWRVS_CACHE")
    assert cache_root() == tmp_path / "xdg" / "flowrvs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "flowrvs"


def test_off_keeps_embeddings_in_memory_and_the_rest_in_the_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    for off in ("0", "off", "None", " no "):
        monkeypatch.setenv("FLOWRVS_CACHE", off)
        assert not speed_caches_enabled() and default_cache_folder() is None
        assert cache_root() == tmp_path / "xdg" / "flowrvs"


def test_every_user_of_the_cache_lives_under_the_one_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWRVS_CACHE", str(tmp_path / "c"))
    assert default_cache_folder() == tmp_path / "c" / "embeddings"
    assert default_cache_dir() == tmp_path / "c" / "web-examples"

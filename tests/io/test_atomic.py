"""Tests for flowrvs.io.atomic: files appear whole, with the usual permissions, and no write
touches the process-wide umask (the web server writes from several threads)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from flowrvs.io.atomic import atomic_dir, atomic_path, write_json
from flowrvs.io.masks import write_mask_png


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_files_get_normal_permissions(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    mask = current_umask()
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask_without_setting_it(tmp_path, monkeypatch, umask):
    old = os.umask(umask)
    try:
        def refuse(_mask):
            raise AssertionError("os.umask was called by a write")

        monkeypatch.setattr(os, "umask", refuse)
        write_json(tmp_path / "a.json", {"x": 1})
        write_mask_png(tmp_path / "m.png", np.eye(4, dtype=bool))
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("y")
        monkeypatch.undo()
    finally:
        os.umask(old)
    for name in ("a.json", "m.png", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d" / "f").read_text() == "y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin", "d", "m.png"]  # no temp left


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert (tmp_path / "a.json").read_text() == "old"


def test_threads_writing_beside_each_other_get_distinct_temps(tmp_path):
    errors = []

    def write(i: int) -> None:
        try:
            for j in range(20):
                write_json(tmp_path / "same.json", {"i": i, "j": j})
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["same.json"]

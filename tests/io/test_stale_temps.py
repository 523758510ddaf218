"""io/atomic.remove_stale_temps: what a killed atomic write leaves behind goes, nothing else."""

from flowrvs.io.atomic import atomic_dir, remove_stale_temps


def test_removes_only_atomic_temporaries(tmp_path):
    with atomic_dir(tmp_path / "done") as tmp:
        (tmp / "a.png").write_bytes(b"x")
    (tmp_path / ".done.k3j.tmp").mkdir()
    (tmp_path / ".metrics.json.x1.tmp").write_text("{")
    (tmp_path / ".done.old-123").mkdir()
    (tmp_path / ".status").mkdir()
    (tmp_path / "keep.tmp").write_text("")
    remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".status", "done", "keep.tmp"]
    assert (tmp_path / "done" / "a.png").is_file()
    remove_stale_temps(tmp_path / "missing")  # nothing to do

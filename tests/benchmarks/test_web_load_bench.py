"""benchmarks/web_load.py at tiny size: fresh servers, visitors at once, each result checked, peaks read."""

from __future__ import annotations

import json

import pytest

from helpers.benchmarks import import_benchmark

web_load = import_benchmark("web_load")


@pytest.mark.slow
def test_a_tiny_run_reports_the_server_peak_per_visitor_count(tmp_path):
    out = tmp_path / "summary.json"
    summary = web_load.main(["--frames", "5", "--size", "32x48", "--visitors", "2", "--json", str(out)])
    assert json.loads(out.read_text()) == summary
    assert [r["visitors"] for r in summary["rounds"]] == [2]  # one fresh server a round: one round here
    for r in summary["rounds"]:
        assert 0 < r["idle_peak_mib"] <= r["peak_mib"]  # VmHWM of the server process, which only grows


def test_a_visitor_given_another_frame_count_fails_the_round(monkeypatch, tmp_path):
    """The round checks each visitor's result; a wrong one is an error, not a figure."""

    class Server:
        pid = None  # peak_rss_bytes(None): this process

        def terminate(self):
            pass

        def wait(self, timeout):
            pass

    monkeypatch.setattr(web_load, "start_server", lambda work, model: (Server(), "http://x/"))
    monkeypatch.setattr(web_load, "visit", lambda url, video, downloads: "1 sentence(s), 4 frames.")
    with pytest.raises(RuntimeError, match="expected '1 sentence"):
        web_load.one_round(2, [tmp_path / "a.mp4", tmp_path / "b.mp4"], 5, "tiny-synthetic", tmp_path)
    monkeypatch.setattr(web_load, "visit", lambda url, video, downloads: "1 sentence(s), 5 frames.")
    assert web_load.one_round(2, [tmp_path / "a.mp4"] * 2, 5, "tiny-synthetic", tmp_path)["visitors"] == 2

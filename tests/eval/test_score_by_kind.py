import pytest

from flowrvs.data.synth.generate import generate_video, video_rng
from flowrvs.data.synth.writer import write_split
from helpers.benchmarks import import_benchmark

score_by_kind = import_benchmark("score_by_kind")
kinds_of_split, summarize = score_by_kind.kinds_of_split, score_by_kind.summarize


def test_kinds_are_the_generators_and_a_wrong_seed_fails(tmp_path):
    write_split(tmp_path, "valid_u", videos=3, frames=5, size=(32, 48), seed=4, progress=False)
    kinds = kinds_of_split(tmp_path, "valid_u", 4)
    for i in range(3):
        video = generate_video(video_rng(4, i), 5, (32, 48))
        assert [kinds[(f"synth_4_{i:04d}", str(k))] for k in range(len(video.kinds))] == video.kinds
    with pytest.raises(SystemExit, match="seed 5 gives"):
        kinds_of_split(tmp_path, "valid_u", 5)


def test_summary_counts_missed_expressions_per_kind():
    rows = [
        {"video": "a", "exp_id": "0", "J": "0.9", "J&F": "0.8"},
        {"video": "a", "exp_id": "1", "J": "0.05", "J&F": "0.1"},
        {"video": "b", "exp_id": "0", "J": "0.0", "J&F": "0.0"},
    ]
    kinds = {("a", "0"): "appearance", ("a", "1"): "appearance", ("b", "0"): "motion"}
    summary = summarize(rows, kinds)
    assert summary["appearance"] == pytest.approx((2, 0.45, 0.5, 0.8))
    assert summary["motion"][:3] == pytest.approx((1, 0.0, 1.0)) and summary["motion"][3] is None
    assert summary["all"] == pytest.approx((3, 0.3, 2 / 3, 0.8))
    assert "relation" not in summary

"""flowrvs.eval.paired: the paired difference the benchmark tables report."""

from __future__ import annotations

import math

import pytest

from flowrvs.eval.paired import format_difference, paired_difference


def test_paired_difference_is_the_mean_and_its_standard_error():
    values, baseline = [0.5, 0.7, 0.2, 0.9], [0.4, 0.4, 0.4, 0.4]
    diffs = [v - b for v, b in zip(values, baseline)]
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) / math.sqrt(len(diffs))
    assert paired_difference(values, baseline) == pytest.approx((mean, se), abs=1e-15)
    one_mean, one_se = paired_difference([0.3], [0.1])
    assert one_mean == pytest.approx(0.2) and math.isnan(one_se)
    for bad in (([], []), ([1.0, 2.0], [1.0])):
        with pytest.raises(ValueError):
            paired_difference(*bad)
    assert format_difference(-0.05, 0.0123) == "-0.0500 ± 0.0123"

"""Pure statistics: percentiles, RTF, stage medians."""

from __future__ import annotations

import math

import pytest

from harness.stats.percentiles import percentile, real_time_factor, stage_medians, summarize


def test_percentiles_use_linear_interpolation() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == pytest.approx(50.5)
    assert percentile(samples, 90) == pytest.approx(90.1)
    assert percentile(samples, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0


def test_summarize_orders_and_spreads() -> None:
    stats = summarize([10.0, 30.0, 20.0, 40.0])
    assert (stats.min, stats.p50, stats.max, stats.mean) == (10.0, 25.0, 40.0, 25.0)
    assert stats.std == pytest.approx(math.sqrt(500 / 3))
    assert stats.p50 <= stats.p90 <= stats.p99 <= stats.max
    assert summarize([5.0]).std == 0.0


def test_summarize_rejects_empty_and_non_finite() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, float("nan")])
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rtf_is_compute_over_audio() -> None:
    assert real_time_factor(40.0, 80.0) == 0.5  # twice as fast as real time
    assert real_time_factor(120.0, 80.0) == 1.5
    with pytest.raises(ValueError):
        real_time_factor(40.0, 0.0)


def test_stage_medians_skip_empty_stages() -> None:
    assert stage_medians({"encode": [1.0, 3.0], "decode": []}) == {"encode": 2.0}


def test_coverage_of_a_band_is_a_one_sided_binomial_test() -> None:
    from harness.stats.coverage import at_most_probability

    assert at_most_probability(5, 5, 0.8) == pytest.approx(1.0)
    assert at_most_probability(3, 5, 0.8) == pytest.approx(1 - 0.8**5 - 5 * 0.8**4 * 0.2)  # 0.263
    assert at_most_probability(0, 10, 0.8) == pytest.approx(0.2**10)
    assert at_most_probability(2, 20, 0.8) < 0.05 < at_most_probability(14, 20, 0.8)
    assert at_most_probability(0, 0, 0.8) == 1.0

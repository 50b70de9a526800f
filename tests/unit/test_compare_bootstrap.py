"""The block bootstrap (harness.stats.bootstrap): block lengths follow the autocorrelation, blocks stay inside
their process, intervals cover what they claim on series whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from harness.compare.methods import bootstrap_change
from harness.stats.bootstrap import (
    _resample_indices,
    autocovariance,
    block_length,
    bootstrap_percentiles,
    ratio_interval,
)
from tests.unit.test_compare import ar1


def test_autocovariance_of_a_known_series() -> None:
    acv = autocovariance([1.0, -1.0] * 50, 2)
    assert acv[0] == pytest.approx(1.0) and acv[1] == pytest.approx(-0.99) and acv[2] == pytest.approx(0.98)
    with pytest.raises(ValueError):
        autocovariance([], 1)


def test_block_length_grows_with_the_autocorrelation() -> None:
    independent = list(np.random.default_rng(0).normal(50, 5, 500))
    assert block_length(independent) < 2.5
    assert block_length([50.0] * 100) == 1.0 and block_length([1.0, 2.0]) == 1.0
    weak, strong = block_length(ar1(50, 500, seed=1, phi=0.5)), block_length(ar1(50, 500, seed=1, phi=0.9))
    assert 1.5 < weak < strong <= 3 * np.sqrt(500)
    # Cross-checked against arch 8.0.0's optimal_block_length (circular column) on the same series.
    assert block_length(ar1(50, 300, seed=3, phi=0.5)) == pytest.approx(7.87, abs=0.01)
    assert block_length(ar1(50, 1000, seed=3, phi=0.9)) == pytest.approx(38.59, abs=0.01)


def test_blocks_never_cross_a_process_boundary() -> None:
    idx = _resample_indices([30, 50, 20], [7, 7, 7], 200, np.random.default_rng(0))
    assert idx.shape == (200, 100)
    assert idx[:, :30].min() >= 0 and idx[:, :30].max() < 30
    assert idx[:, 30:80].min() >= 30 and idx[:, 30:80].max() < 80
    assert idx[:, 80:].min() >= 80 and idx[:, 80:].max() < 100
    # consecutive indices inside a block (circular within the segment): most steps are +1
    steps = np.diff(idx[:, 30:80], axis=1) % 50
    assert (steps == 1).mean() > 0.8


def test_bootstrap_is_reproducible_and_the_mean_is_a_statistic_too() -> None:
    x = ar1(50, 200, seed=3)
    a = bootstrap_percentiles([x], 50.0, 300, seed=7)
    assert a == bootstrap_percentiles([x], 50.0, 300, seed=7) and len(a) == 300
    means = bootstrap_percentiles([x], None, 300, seed=7)
    assert abs(np.mean(means) - np.mean(x)) < 0.02 * np.mean(x)
    with pytest.raises(ValueError):
        bootstrap_percentiles([[]], 50.0, 10, 0)


def test_interval_on_a_two_fold_change_covers_it() -> None:
    base, cur = ar1(50, 400, seed=4), [2 * v for v in ar1(50, 400, seed=5)]
    interval = ratio_interval([base], [cur], 50.0, 0.98)
    assert interval.low < 1.0 < interval.high and interval.low > 0.7
    assert interval.estimate == pytest.approx(float(np.median(cur) / np.median(base) - 1))
    assert interval.baseline_block > 1


def test_interval_coverage_on_autocorrelated_series_of_one_distribution() -> None:
    """100 independent pairs from one AR(1) process, 90% intervals of the median ratio: the frame-by-frame
    (iid) bootstrap holds 0 in only about half of them; the block bootstrap widened by batch medians, as
    compare uses it, in about 90%."""
    iid = combined = 0
    for seed in range(100):
        base, cur = ar1(50, 300, 2 * seed), ar1(50, 300, 2 * seed + 1)
        ratios = (np.array(bootstrap_percentiles([cur], 50.0, 400, 1, blocks=[1]))
                  / np.array(bootstrap_percentiles([base], 50.0, 400, 2, blocks=[1])) - 1)
        low, high = np.percentile(ratios, [5, 95])
        iid += low <= 0.0 <= high
        change = bootstrap_change([base], [cur], "p50", 0.90, resamples=400)
        combined += change.low <= 0.0 <= change.high
    assert iid < 70 and combined >= 84, (iid, combined)

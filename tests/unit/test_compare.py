"""Regression verdicts: Mann-Whitney U plus effect-size thresholds, on known samples."""

from __future__ import annotations

import numpy as np
import pytest

from harness.compare.regression import ThresholdError, compare_sessions, markdown, parse_threshold
from tests.unit.test_verdict import _run, _session

T = [parse_threshold("p50:5%"), parse_threshold("p99:10%")]


def _samples(mean: float, n: int = 300, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).normal(mean, mean * 0.05, n))


def _compare(base: list[float], cur: list[float]):  # noqa: ANN202
    a, b = _session([_run("r", base)]), _session([_run("r", cur)])
    return compare_sessions(a, b, T, 0.01, "a", "b")


def test_thresholds_parse_like_pytest_benchmark() -> None:
    assert str(parse_threshold("p50:5%")) == "p50:5%" and parse_threshold("p99:12.5%").fraction == 0.125
    for bad in ("p50", "p42:5%", "p50:5", "median:5%"):
        with pytest.raises(ThresholdError):
            parse_threshold(bad)


def test_same_distribution_is_unchanged() -> None:
    result = _compare(_samples(50, seed=1), _samples(50, seed=2))
    assert not result.regressed and result.runs[0].outcome == "unchanged"


def test_thirty_percent_slower_is_a_regression_and_faster_an_improvement() -> None:
    slower = _compare(_samples(50), _samples(65, seed=3))
    run = slower.runs[0]
    assert slower.regressed and run.outcome == "regression" and run.p_slower < 1e-10
    assert run.exceeded == ["p50:5%", "p99:10%"] and run.change["p50"] == pytest.approx(0.3, abs=0.03)
    faster = _compare(_samples(65), _samples(50, seed=4))
    assert not faster.regressed and faster.runs[0].outcome == "improvement"


def test_significant_but_small_is_not_a_regression() -> None:
    result = _compare(_samples(50, n=20000, seed=5), _samples(50.5, n=20000, seed=6))  # +1%: p tiny, effect small
    run = result.runs[0]
    assert run.p_slower < 0.01 and run.outcome == "unchanged"


def test_big_but_noisy_is_not_a_regression() -> None:
    result = _compare([50.0, 80.0, 45.0], [70.0, 52.0, 60.0])  # +15% median on 3 frames: not significant
    assert result.runs[0].outcome == "unchanged"


def test_failed_missing_and_other_machine() -> None:
    base = _session([_run("a", _samples(50)), _run("b", _samples(50))])
    cur = _session([_run("a", None, status="failed"), _run("c", _samples(50))])
    cur.machine = cur.machine.model_copy(update={"fingerprint": "other", "cpu_model": "other cpu"})
    result = compare_sessions(base, cur, T, 0.01, "base", "cur")
    outcomes = {r.name: r.outcome for r in result.runs}
    assert outcomes == {"a": "failed", "b": "missing", "c": "new"} and result.regressed
    assert "different machines" in result.warnings[0]
    text = markdown(result)
    assert text.startswith("## Performance: REGRESSION") and "> warning: different machines" in text

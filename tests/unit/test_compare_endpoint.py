"""`harness compare` on endpoint results: a 3x slower server is a regression, a re-measurement of the same one is
not, another server kind is refused, too few callers is "not judged" (exit 7), a failed caller counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.compare.endpoint import compare_endpoints
from harness.compare.regression import default_thresholds, parse_threshold
from harness.records.identity import endpoint_measurement_of
from tests.conftest import run_cli
from tests.endpoint_records import endpoint_results, write


@pytest.fixture(scope="module")
def baseline():  # noqa: ANN201
    return endpoint_results(seed=1)


def _rows(comparison) -> dict:  # noqa: ANN001
    return {r.name.split(": ", 1)[1]: r for r in comparison.runs if ": " in r.name}


def test_a_three_times_slower_server_regresses(baseline) -> None:  # noqa: ANN001
    slow = endpoint_results(step_ms=90.0 * 3 / 2, prefill_ms=1200.0, seed=2)  # 45 -> 135 ms steps, prefill x3
    c = compare_endpoints(baseline, slow, default_thresholds(), 0.01, "a", "b")
    rows = _rows(c)
    assert c.exit_code == 1 and c.headline == "REGRESSION"
    assert rows["packet interval ms"].outcome == "regression"
    assert rows["time to handshake ms"].outcome == "regression"
    assert rows["deficit frames"].outcome == "regression"
    assert rows["failed callers"].outcome == "unchanged"


def test_the_same_server_measured_again_passes(baseline) -> None:  # noqa: ANN001
    # 4 callers resolve a first audio of +-5% per step to about +-13% (98%): a threshold above that is judged
    again = endpoint_results(seed=3)
    c = compare_endpoints(baseline, again, [parse_threshold("p50:20%")], 0.01, "a", "b")
    assert c.exit_code == 0, [(r.name, r.outcome, r.note) for r in c.runs]
    judged = [s for r in c.runs for s in r.statistics]
    assert judged and all(s.verdict == "same" for s in judged)


def test_another_server_kind_is_not_comparable(baseline) -> None:  # noqa: ANN001
    other = endpoint_results(seed=1, server="personaplex")
    c = compare_endpoints(baseline, other, default_thresholds(), 0.01, "a", "b")
    assert c.exit_code == 5 and c.runs[0].outcome == "not comparable"
    assert c.runs[0].differences == ["server moshi -> personaplex"]
    allowed = compare_endpoints(baseline, other, default_thresholds(), 0.01, "a", "b",
                                allow_differences={"server"})
    assert allowed.exit_code not in (1, 5) and any("server may differ" in w for w in allowed.warnings)
    assert all(r.outcome != "not comparable" for r in allowed.runs)


def test_the_identity_is_the_one_rule_of_runs() -> None:
    a, b = endpoint_results(callers=3), endpoint_results(callers=3, seconds=5.0)
    assert endpoint_measurement_of(a).differences(endpoint_measurement_of(b)) == [
        "call_seconds 10.0 -> 5.0"]


def test_one_caller_is_not_judged_where_a_threshold_needs_callers() -> None:
    one, two = endpoint_results(callers=1, seed=4), endpoint_results(callers=1, seed=5)
    asked = compare_endpoints(one, two, [parse_threshold("p50:10%")], 0.01, "a", "b")
    rows = _rows(asked)
    assert rows["first audio ms"].outcome == "not judged" and "needs 3" in rows["first audio ms"].note
    assert asked.exit_code == 7 and asked.headline == "NOT JUDGED"  # never a silent pass
    assert rows["packet interval ms"].statistics[0].verdict == "same"  # 124 gaps a side: the bootstrap judges it


def test_failed_callers_stay_in_the_denominator(baseline) -> None:  # noqa: ANN001
    broken = endpoint_results(seed=6, failed=1)
    c = compare_endpoints(baseline, broken, default_thresholds(), 0.01, "a", "b")
    row = _rows(c)["failed callers"]
    assert row.outcome == "failed" and c.exit_code == 1 and "1/4 callers failed now, 0/4" in row.note


def test_cli_judges_endpoint_folders(baseline, tmp_path: Path) -> None:  # noqa: ANN001
    base = write(baseline, tmp_path / "base")
    slow = write(endpoint_results(step_ms=135.0, prefill_ms=1200.0, seed=2), tmp_path / "slow")
    done = run_cli("compare", str(base), str(slow / "endpoint.json"), "--threshold", "p50:10%", "--json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["headline"] == "REGRESSION"
    done = run_cli("compare", str(tmp_path / "none"), str(base))
    assert done.returncode == 4 and "NO BASELINE" in done.stdout

"""The late-frame certificate under bursts (harness.stats.certify), on seeded simulated series.

A true late share of 2% in bursts of 10 frames: the rule before (frames as independent trials, 459 frames)
certified about 40% of such runs; blocks of 10 frames over the new default length certify at most 1%.
Independent clean series are still certified at that length. `python -m tests.benchmarks.burst_certification`
prints the same figures for more cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.records.scenario import Criteria, Scenario
from harness.session.run_rules import frames_to_measure
from harness.stats.certify import certify_late_share, clean_frames_to_certify, count_late_blocks, late_runs
from tests.benchmarks.burst_certification import Case, bursty_flags, certified_share, independent_flags

RUNS = 2000


def test_bursty_late_frames_are_no_longer_certified() -> None:
    bursty = lambda n, rng: bursty_flags(n, 0.02, 10, rng)  # noqa: E731
    before = certified_share(bursty, Case("before", 459, 1), RUNS, seed=1)
    after = certified_share(bursty, Case("after", clean_frames_to_certify(10, 0.01, 0.99), 10), RUNS, seed=2)
    assert 0.30 < before < 0.50, "the flaw: about exp(-0.002 x 459) = 40% of bursty runs pass as clean"
    assert after <= 0.01


def test_clean_independent_runs_are_still_certified_at_the_default_length() -> None:
    frames = frames_to_measure(Scenario(name="s", preset="personaplex-tiny", frame_budget_ms=1000.0))
    assert frames == 4590 == clean_frames_to_certify(10, 0.01, 0.99)
    clean = lambda n, rng: independent_flags(n, 0.0, rng)  # noqa: E731
    assert certified_share(clean, Case("after", frames, 10), 50, seed=3) == 1.0


def test_default_frames_follow_the_criteria_and_explicit_frames_are_kept() -> None:
    independent = Criteria(burst_frames=1)
    assert frames_to_measure(Scenario(name="s", preset="personaplex-tiny", criteria=independent)) == 459
    assert frames_to_measure(Scenario(name="s", preset="personaplex-tiny", frames=30)) == 125  # min_seconds at 80 ms
    assert frames_to_measure(Scenario(name="s", preset="personaplex-tiny"), override=7) == 7


def test_blocks_never_cross_processes_and_partial_late_blocks_count() -> None:
    late_tail = [False] * 25
    late_tail[22] = True
    counts = count_late_blocks([[False] * 25, late_tail], 10)
    # 2 full blocks + a clean partial one (not counted) | 2 full blocks + a partial one holding the late frame
    assert (counts.blocks, counts.late_blocks, counts.block_frames) == (5, 1, 10)
    assert late_runs([True, True, False, True, False, False, True, True, True]) == [2, 1, 3]


def test_a_longer_burst_than_assumed_widens_the_blocks() -> None:
    flags = [False] * 4000 + [True] * 25 + [False] * 4000
    cert = certify_late_share([flags], 10, 0.01, 0.99)
    assert cert.counts.longest_late_run == 25 and cert.counts.block_frames >= 25 and not cert.certified


def test_independent_frames_rule_is_clopper_pearson() -> None:
    cert = certify_late_share([np.zeros(459, dtype=bool)], 1, 0.01, 0.99)
    assert cert.certified and cert.upper == pytest.approx(0.01, rel=0.01)


def test_a_run_that_is_certainly_not_real_time_stops_early_and_a_good_one_never_does() -> None:
    from harness.contract.stopping import EarlyStop, looks, should_stop

    stop = EarlyStop(deadline_ms=72.0, block_frames=10, target=0.01, confidence=0.99, min_frames=100, frames=4590)
    assert looks(stop) == [100, 200, 400, 800, 1600, 3200]
    slow = [True] * 100
    why = should_stop(slow, stop)
    assert why is not None and why.startswith("stopped after 100 of 4590 frames: 100 late (> 72 ms without waiting")
    assert should_stop([True] * 99, stop) is None, "only at a look"
    assert should_stop([False] * 3200, stop) is None
    # Independent late frames at the target itself: stopped in at most 1 - confidence of runs, over every look.
    rng = np.random.default_rng(5)
    stopped = 0
    for _ in range(300):
        flags = (rng.random(3200) < 0.01).tolist()
        stopped += any(should_stop(flags[:n], stop) for n in looks(stop))
    assert stopped / 300 <= 0.01

"""The late-frame certificate under bursts (harness.stats.certify), on seeded simulated series, both directions.

A certificate must not pass a run whose late share is at the target when late frames come in bursts up to the
stated length (false certification at most 1 - confidence), and a good run must be able to reach it: a clean run
at the clean length, isolated late frames ten times rarer than the target within 3x that length.
`python -m tests.benchmarks.burst_certification` prints the same figures for more series.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.records.scenario import Criteria, Scenario
from harness.session.run_rules import frames_to_measure
from harness.stats.certify import (
    burst_upper_bound,
    certify_late_share,
    certify_step_times,
    clean_frames_to_certify,
    frames_to_reach,
    late_runs,
    shown_above,
)
from tests.benchmarks.burst_certification import (
    certified_flags_share,
    certified_share,
    fixed_bursts,
    isolated,
    markov_bursts,
)

RUNS = 2000
CLEAN = 4606


def test_the_clean_length_follows_the_bound() -> None:
    assert clean_frames_to_certify(10, 0.01, 0.99) == CLEAN  # 10 x ln(100) / 1%
    assert burst_upper_bound(0, CLEAN, 10, 0.99) <= 0.01 < burst_upper_bound(0, CLEAN - 1, 10, 0.99)
    frames = frames_to_measure(Scenario(name="s", preset="personaplex-tiny", frame_budget_ms=1000.0))
    assert frames == CLEAN


def test_bursts_up_to_the_stated_length_are_not_certified_at_the_target() -> None:
    # A seeded simulation: at the boundary (exactly the target share) the bound allows 1%; binomial noise on
    # 2000 runs is about 0.2%, hence the margin. Above the target, or with shorter bursts, next to none.
    assert certified_share(fixed_bursts(0.01, 10), CLEAN, RUNS, seed=2) <= 0.015
    assert certified_share(fixed_bursts(0.02, 10), CLEAN, RUNS, seed=3) <= 0.01
    assert certified_share(fixed_bursts(0.01, 5), CLEAN, RUNS, seed=4) <= 0.01
    assert certified_share(markov_bursts(0.01, 3.0), CLEAN, RUNS, seed=5) <= 0.01


def test_rare_isolated_late_frames_certify_within_three_clean_lengths() -> None:
    # A tenth of the target in isolated late frames: the block rule it replaces never certified these.
    assert certified_share(isolated(0.001), 3 * CLEAN, 500, seed=6) >= 0.95
    assert certified_share(isolated(0.001), 2 * CLEAN, 500, seed=7) >= 0.90
    assert certified_share(isolated(0.0005), 2 * CLEAN, 500, seed=8) >= 0.95
    assert certified_share(isolated(0.0), CLEAN, 50, seed=9) == 1.0
    # Flags alone (no step times) give the same answer.
    assert certified_flags_share(lambda n, rng: rng.random(n) < 0.001, 3 * CLEAN, 300, seed=10) >= 0.95


def test_the_burst_length_does_not_grow_with_the_run() -> None:
    rng = np.random.default_rng(11)
    for frames in (CLEAN, 20_000, 80_000):
        flags = np.zeros(frames, dtype=bool)
        for start in rng.choice(frames - 3, size=frames // 1000, replace=False):
            flags[start:start + 3] = True  # bursts of exactly 3 frames
        cert = certify_late_share([flags], 10, 0.01, 0.99)
        assert cert.burst_frames == 10, frames


def test_a_longer_burst_than_assumed_widens_it_and_fails_to_certify() -> None:
    flags = [False] * 4000 + [True] * 25 + [False] * 4000
    cert = certify_late_share([flags], 10, 0.01, 0.99)
    assert cert.longest_late_run == 25 and cert.burst_frames == 25 and not cert.certified
    assert late_runs([True, True, False, True, False, False, True, True, True]) == [2, 1, 3]


def test_bursts_never_cross_processes() -> None:
    end_late = [False] * 2000 + [True] * 6
    start_late = [True] * 6 + [False] * 2000
    cert = certify_late_share([end_late, start_late], 10, 0.01, 0.99)
    assert cert.longest_late_run == 6 and cert.burst_frames == 10


def test_near_late_stretches_widen_the_burst_and_a_far_drift_does_not() -> None:
    rng = np.random.default_rng(12)
    n = 6000
    # A GPU drifting slowly with its temperature, far under the deadline: its top 1% is one long stretch, but
    # nowhere near 72 ms: no burst is visible, the clean run certifies.
    drift = 30.0 + 0.3 * np.sin(np.linspace(0, 3, n)) + 0.05 * rng.standard_normal(n)
    assert certify_step_times([drift], 72.0, 10, 0.01, 0.99).certified
    # The same shape just under the deadline: 60 consecutive frames within 10% of it are a burst waiting to happen.
    close = drift.copy()
    close[3000:3060] = 70.0
    cert = certify_step_times([close], 72.0, 10, 0.01, 0.99)
    assert cert.longest_near_run >= 60 and cert.burst_frames >= 60 and not cert.certified


def test_a_late_share_above_the_target_is_shown_not_just_uncertified() -> None:
    assert shown_above(150, CLEAN, 10, 0.01, 0.99)  # 3.3% late
    assert not shown_above(60, CLEAN, 10, 0.01, 0.99)  # 1.3% in bursts of 10: could be chance at 1%
    assert frames_to_reach(0.02, 10, 0.01, 0.99) is None
    assert frames_to_reach(0.0, 10, 0.01, 0.99) == CLEAN
    assert CLEAN < frames_to_reach(0.001, 10, 0.01, 0.99) < 2 * CLEAN  # type: ignore[operator]


def test_default_frames_follow_the_criteria_and_explicit_frames_are_kept() -> None:
    independent = Criteria(burst_frames=1)
    assert frames_to_measure(Scenario(name="s", preset="personaplex-tiny", criteria=independent)) == 459
    assert frames_to_measure(Scenario(name="s", preset="personaplex-tiny", frames=30)) == 125  # min_seconds at 80 ms
    assert frames_to_measure(Scenario(name="s", preset="personaplex-tiny"), override=7) == 7


def test_independent_frames_bound_is_clopper_pearson() -> None:
    cert = certify_late_share([np.zeros(459, dtype=bool)], 1, 0.01, 0.99)
    assert cert.certified and cert.upper == pytest.approx(0.01, rel=0.01)
    assert not certify_late_share([np.zeros(458, dtype=bool)], 1, 0.01, 0.99).certified
    assert shown_above(15, 459, 1, 0.01, 0.99) and not shown_above(8, 459, 1, 0.01, 0.99)


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

"""Issue 26, the endpoint side: blame only what was measured. The lock wait is split from the prefill only where
it is known (per server; not on a server that runs calls together), and a run whose load generator fell behind is
limited by the load generator, not a server failure. Fabricated caller timings through the real assessment,
verdict and search (no timing of this machine is asserted)."""

from __future__ import annotations

import pytest

from harness.endpoint.assess import load_run
from harness.endpoint.caller import CallOutcome
from harness.endpoint.client import BEHIND_MS, CALLERS_PER_PROCESS, client_health, processes_for, send_stalls_ms
from harness.endpoint.search import search
from harness.records.endpoint import CallerRaw, Slo
from harness.verdict.endpoint import slo_verdict


def _outcome(upgraded: float, handshake: float, end: float, server: int = 0, frames: int = 5,
             gap_s: float = 0.08, stall_s: float = 0.0) -> CallOutcome:
    """A caller that streamed `frames` frames; `gap_s` between the packets it heard; `stall_s` its sender's stall
    before its third frame (frames after it leave that much later: the caller never catches up in a burst)."""
    due = [handshake + 0.08 * i for i in range(frames)]
    sent = [d + (stall_s if i >= 2 else 0.0) for i, d in enumerate(due)]
    audio = [handshake + 0.1 + gap_s * i for i in range(frames)]
    raw = CallerRaw(scheduled_start_s=0.0, connect_start_s=upgraded - 0.01, upgraded_s=upgraded, handshake_s=handshake,
                    end_s=end, send_scheduled_s=due, send_s=sent, audio_s=audio, audio_samples=[1920] * frames,
                    server=server)
    return CallOutcome(raw=raw, close_reason="caller hung up after its stream")


def test_three_callers_on_three_servers_are_all_prefill() -> None:
    """The issue's case: each server prefilled its only caller for 1 s. One lock over all servers made callers 1 and 2
    'lock wait ~1000 + prefill 0'; per server there was no call before any of them."""
    run = load_run("closed", [_outcome(0.0, 1.0, 3.0, server=s) for s in range(3)], Slo(), 0.4, servers=3)
    for caller in run.callers:
        assert caller.lock_wait_ms == pytest.approx(0.0) and caller.prefill_ms == pytest.approx(1000.0)
        assert caller.lock_split == "no call before"


def test_a_server_that_runs_calls_together_leaves_the_split_unknown() -> None:
    run = load_run("closed", [_outcome(0.0, 1.0, 3.0), _outcome(0.01, 1.5, 3.0), _outcome(0.02, 2.0, 3.0)],
                   Slo(), 0.4)
    assert run.one_call_at_a_time is False
    for caller in run.callers:
        assert caller.lock_wait_ms is None and caller.prefill_ms is None
        assert caller.lock_split == "unknown: its server ran calls concurrently"
        assert caller.handshake_ms is not None, "the handshake itself is still measured"


def test_a_one_call_server_splits_its_queue_per_server() -> None:
    """Two servers, each serving one call at a time, two callers each: the second of each waited for the first of
    its own server, not for the other server's call."""
    outcomes = [_outcome(0.0, 0.1, 1.0, server=0), _outcome(0.0, 0.3, 1.2, server=1),
                _outcome(0.01, 1.05, 2.0, server=0), _outcome(0.01, 1.25, 2.2, server=1)]
    run = load_run("closed", outcomes, Slo(), 0.4, servers=2)
    waits = [c.lock_wait_ms for c in run.callers]
    assert waits == pytest.approx([0.0, 0.0, 990.0, 1190.0])
    assert [c.prefill_ms for c in run.callers] == pytest.approx([100.0, 300.0, 50.0, 50.0])
    assert run.one_call_at_a_time is True and [c.lock_split for c in run.callers][2:] == ["measured"] * 2


def test_send_stalls_are_the_growth_of_a_callers_lateness() -> None:
    assert send_stalls_ms([0.0, 0.0, 200.0, 200.0, 250.0]) == pytest.approx([0.0, 0.0, 200.0, 0.0, 50.0])
    healthy = client_health([[1.0] * 200], [[0.0] * 50], 4)
    assert not healthy.fell_behind and healthy.loop_lag_p99_ms == pytest.approx(1.0)
    behind = client_health([[1.0] * 100, [1.0] * 50 + [300.0] * 50], [[0.0] * 50], 8)
    assert behind.fell_behind and f"event-loop lag p99 300 ms > {BEHIND_MS:g} ms" in behind.note
    assert processes_for(1) == 1 and processes_for(40, asked=3) == 3 and processes_for(2, asked=5) == 2
    assert processes_for(CALLERS_PER_PROCESS + 1) == min(2, __import__("os").cpu_count() or 1)


def _gappy(lag_ms: float, callers: int = 2) -> tuple[list[CallOutcome], list[list[float]]]:
    """Callers that heard packets 300 ms apart (over the 160 ms SLO), with the loop lagging `lag_ms`."""
    outcomes = [_outcome(0.0, 0.1, 3.0, server=i, frames=20, gap_s=0.3) for i in range(callers)]
    return outcomes, [[lag_ms] * 300]


def test_a_run_whose_client_fell_behind_is_limited_by_the_load_generator() -> None:
    outcomes, lags = _gappy(lag_ms=250.0)
    run = load_run("closed", outcomes, Slo(), 1.6, servers=2, lags_by_process=lags, callers_per_process=2)
    assert not run.passed and run.limited_by_client and run.client is not None and run.client.fell_behind
    assert "limited by the load generator, not a server failure" in run.note
    verdict = slo_verdict([run], None)
    assert verdict.word == "INCONCLUSIVE" and verdict.reasons[0].startswith("limited by the load generator")
    found, _ = search("sessions", lambda n: run if n > 1 else load_run(
        "closed", [_outcome(0.0, 0.1, 3.0, frames=20)], Slo(), 1.6, lags_by_process=[[1.0] * 300]), 4)
    assert found.largest_passing == 1 and found.limited_by.startswith("the load generator at 2, not the server")


def test_the_same_gaps_with_a_client_that_kept_up_are_the_servers() -> None:
    outcomes, lags = _gappy(lag_ms=1.0)
    run = load_run("closed", outcomes, Slo(), 1.6, servers=2, lags_by_process=lags, callers_per_process=2)
    assert not run.passed and not run.limited_by_client and run.client is not None and not run.client.fell_behind
    assert slo_verdict([run], None).word == "NO-GO"


def test_a_client_that_fell_behind_does_not_excuse_a_queue() -> None:
    """A caller queued behind another call is the server's, whatever the client did."""
    run = load_run("closed", [_outcome(0.0, 0.1, 1.0), _outcome(0.01, 1.05, 2.0)], Slo(), 0.4,
                   lags_by_process=[[250.0] * 300])
    assert not run.passed and not run.limited_by_client and run.client is not None and run.client.fell_behind
    assert slo_verdict([run], None).word == "NO-GO" and "fell behind" in run.note

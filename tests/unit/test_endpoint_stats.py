"""The served view's figures as pure functions, and the protocol's URL rules (no server needed)."""

from __future__ import annotations

import pytest

from harness.endpoint.assess import load_run, one_call_at_a_time
from harness.endpoint.caller import CallOutcome
from harness.endpoint.protocol import UrlError, chat_url, split_message
from harness.endpoint.search import search
from harness.records.endpoint import CallerRaw, LoadRun, Slo
from harness.stats.endpoint import (
    calls_overlap,
    deficit_frames,
    drift_ms_per_s,
    packet_intervals,
    poisson_arrivals,
    split_handshake,
    underrun_s,
)


def test_chat_url_adds_the_route_and_the_persona_but_never_a_seed() -> None:
    url = chat_url("ws://127.0.0.1:8998?seed=4&x=1", "NATF2.pt", "")
    assert url.startswith("ws://127.0.0.1:8998/api/chat?")
    assert "seed" not in url and "voice_prompt=NATF2.pt" in url and url.endswith("text_prompt=") and "x=1" in url
    assert chat_url("https://host/custom", None, "be kind").startswith("wss://host/custom?text_prompt=be+kind")
    with pytest.raises(UrlError, match="ws:// or wss://"):
        chat_url("ftp://host", None, None)
    with pytest.raises(UrlError, match="no host"):
        chat_url("ws://", None, None)
    assert split_message(b"\x02hi") == (2, b"hi") and split_message(b"") == (-1, b"")


def test_intervals_deficit_and_drift() -> None:
    sent = [i * 0.08 for i in range(10)]
    arrivals = [0.2 + i * 0.08 for i in range(9)]  # one frame behind, steady
    samples = [1920] * 9
    gaps = packet_intervals(arrivals)
    assert gaps is not None and gaps.p50_ms == pytest.approx(80.0) and gaps.max_ms == pytest.approx(80.0)
    assert deficit_frames(sent, arrivals, samples, 1920) == pytest.approx(10 - 8)
    assert abs(drift_ms_per_s(sent, arrivals, samples, 24000)) < 1.0
    slow = [0.2 + i * 0.16 for i in range(9)]  # half speed: falls behind by 500 ms every second
    assert drift_ms_per_s(sent, slow, samples, 24000) > 100.0
    assert packet_intervals([1.0]) is None


def test_underrun_counts_the_silence_a_speaker_plays() -> None:
    arrivals = [0.0, 0.08, 0.16, 0.6, 0.68]
    samples = [1920] * 5
    # speaker starts at 0.08 (one-frame buffer); wants the 4th frame at 0.32, it comes at 0.6
    assert underrun_s(arrivals, samples, 24000, 0.08) == pytest.approx(0.28)
    assert underrun_s(arrivals, samples, 24000, 1.0) == 0.0
    assert underrun_s(arrivals, samples, 24000, 0.08, owed_samples=3 * 1920) == 0.0  # the call had ended


def test_handshake_split_and_overlap() -> None:
    assert split_handshake(1.0, 1.5, None) == pytest.approx(split_handshake(1.0, 1.5, 0.5))
    split = split_handshake(1.0, 5.3, 5.0)
    assert split.lock_wait_s == pytest.approx(4.0) and split.prefill_s == pytest.approx(0.3)
    assert calls_overlap([(0, 2), (1, 3)]) and not calls_overlap([(0, 2), (2.5, 3)])
    starts = poisson_arrivals(2.0, 200, seed=1)
    assert starts[0] == 0.0 and all(b >= a for a, b in zip(starts, starts[1:]))


def _outcome(upgraded: float, handshake: float, end: float, frames: int = 5) -> CallOutcome:
    send = [handshake + 0.08 * i for i in range(frames)]
    audio = [s + 0.1 for s in send]
    raw = CallerRaw(scheduled_start_s=0.0, connect_start_s=upgraded - 0.01, upgraded_s=upgraded, handshake_s=handshake,
                    end_s=end, send_scheduled_s=send, send_s=send, audio_s=audio, audio_samples=[1920] * frames)
    return CallOutcome(raw=raw, close_reason="caller hung up after its stream")


def test_a_queued_second_caller_is_one_call_at_a_time_and_fails_the_slo() -> None:
    run = load_run("closed", [_outcome(0.0, 0.1, 1.0), _outcome(0.01, 1.05, 2.0)], Slo(), 0.4)
    assert run.one_call_at_a_time is True and "one call at a time" in run.note
    first, second = run.callers
    assert first.lock_wait_ms == pytest.approx(0.0) and second.lock_wait_ms == pytest.approx(990.0)
    assert second.prefill_ms == pytest.approx(50.0)
    assert not first.slo_failures and any("queued" in f for f in second.slo_failures) and not run.passed
    concurrent = load_run("closed", [_outcome(0.0, 0.1, 1.0), _outcome(0.01, 0.12, 1.0)], Slo(), 0.4)
    assert concurrent.one_call_at_a_time is False and concurrent.passed
    assert one_call_at_a_time(concurrent.callers[:1]) is None


def test_a_failed_caller_stays_in_the_denominator() -> None:
    failed = CallOutcome(raw=CallerRaw(scheduled_start_s=0.0), failure="cannot connect: refused",
                         close_reason="never connected")
    run = load_run("closed", [_outcome(0.0, 0.1, 1.0), failed], Slo(), 0.4)
    assert (run.ok, run.failed, run.sessions, run.passed) == (1, 1, 2, False)
    assert run.callers[1].slo_failures == ["failed: cannot connect: refused"]


def _run(passed: bool, serial: bool = False) -> LoadRun:
    return LoadRun(kind="closed", sessions=1, call_seconds=1, callers=[], ok=0, failed=0, passed=passed,
                   one_call_at_a_time=serial)


def test_search_doubles_then_bisects_and_stops_at_a_lock() -> None:
    found, runs = search("sessions", lambda n: _run(n <= 5), 16)
    assert found.largest_passing == 5 and found.first_failing == 6 and found.probes == [1, 2, 4, 8, 6, 5]
    found, _ = search("sessions", lambda n: _run(n <= 1, serial=n > 1), 16)
    assert found.probes == [1, 2] and found.largest_passing == 1 and "one call at a time" in found.limited_by
    found, _ = search("servers", lambda n: _run(True), 3)
    assert found.largest_passing == 3 and found.first_failing is None and found.probes == [1, 2, 3]

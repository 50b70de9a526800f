"""Telemetry and soak summaries on known series."""

from __future__ import annotations

import pytest

from harness.contract.wire import TelemetrySeries
from harness.session.summaries import summarize_soak, summarize_telemetry


def _series(n: int = 100, hz: float = 10.0, **columns) -> TelemetrySeries:
    base = {"hz": hz, "sources": {"gpu": "available", "host_temperature": "unavailable: no sensors"},
            "t_s": [i / hz for i in range(n)], "cpu_percent": [50.0] * n, "cpu_mhz": [3000.0] * n,
            "cpu_temp_c": [None] * n, "rss_bytes": [2.0**30] * n}
    base.update(columns)
    return TelemetrySeries(**base)


def test_energy_per_audio_second_and_missing_sources() -> None:
    series = _series(gpu_energy_j=[1000.0 + 30.0 * i / 10 for i in range(100)],  # 30 W
                     gpu_power_w=[30.0] * 100, gpu_temp_c=[60.0 + i / 10 for i in range(100)],
                     throttle_reasons=[0.0] * 100)
    summary = summarize_telemetry(series, start_s=1.0, end_s=9.0, audio_s=8.0)
    assert summary.samples == 81
    assert summary.gpu_energy_j == 240.0 and summary.joules_per_audio_second == 30.0
    assert summary.gpu_temp_max_c == 69.0 and summary.cpu_temp_max_c is None
    assert summary.unavailable == {"host_temperature": "unavailable: no sensors"}
    assert not summary.throttled and summary.throttle_onset_s is None


def test_energy_per_audio_second_is_over_the_span_it_was_sampled() -> None:
    """Issue 26: a short probe, 12 frames of 80 ms at real-time pace (0.96 s), sampled at 10 Hz from 0.05 s: the
    energy counted between the first and last reading (0.05-0.95 s: 27 J at 30 W) is for the 0.9 s of audio made
    in that span, 30 J per audio-second; dividing by the whole window's 0.96 s said 28.1 (6% low)."""
    hz, n = 10.0, 12
    t = [0.05 + i / hz for i in range(n)]
    series = _series(n=n, t_s=t, gpu_energy_j=[30.0 * x for x in t], gpu_power_w=[30.0] * n)
    frames = [(0.08 * i, 0.08 * (i + 1)) for i in range(12)]
    summary = summarize_telemetry(series, start_s=0.0, end_s=0.96, audio_s=0.96, frames=frames,
                                  audio_per_frame_s=0.08)
    assert summary.gpu_energy_j == pytest.approx(27.0)
    assert summary.joules_per_audio_second == pytest.approx(30.0)
    without = summarize_telemetry(series, start_s=0.0, end_s=0.96, audio_s=0.96)  # no frames: the span's share
    assert without.joules_per_audio_second == pytest.approx(30.0)


def test_throttling_is_flagged_with_its_onset_and_reasons() -> None:
    reasons = [0.0] * 50 + [0x40 | 0x4] * 50  # hardware thermal slowdown + software power cap from 5 s
    summary = summarize_telemetry(_series(throttle_reasons=reasons), start_s=2.0, end_s=9.9, audio_s=8.0)
    assert summary.throttled and summary.throttle_onset_s == 3.0
    assert set(summary.throttle_reasons) == {"hardware thermal slowdown", "software power cap"}
    idle = summarize_telemetry(_series(throttle_reasons=[1.0] * 100), 0.0, 9.9, 8.0)  # 0x1 = GPU idle: harmless
    assert not idle.throttled


def test_soak_finds_drift_and_leaks_and_not_on_a_flat_run() -> None:
    frames = 3000  # four minutes of 80 ms frames
    start = [i * 0.08 for i in range(frames)]
    flat = summarize_soak(start, [50.0 + (i % 5) for i in range(frames)], _series(n=2500))
    assert not flat.drifting and not flat.leak_suspected and abs(flat.drift_ms_per_min) < 0.1
    ramp = summarize_soak(start, [50.0 + 0.01 * i for i in range(frames)], None)
    assert ramp.drifting and ramp.drift_ms_per_min > 5 and ramp.first_vs_last_p50_change > 0.4
    leaking = _series(n=2500, rss_bytes=[2.0**30 + i * 2**20 for i in range(2500)])  # 1 MiB per 0.1 s
    leak = summarize_soak(start, [50.0] * frames, leaking)
    assert leak.leak_suspected and 500 < leak.rss_growth_mb_per_min < 700


def test_short_runs_are_not_judged_for_drift() -> None:
    start = [i * 0.08 for i in range(40)]  # 3 s
    short = summarize_soak(start, [50.0 + 2.0 * i for i in range(40)], None)
    assert not short.drifting and short.first_vs_last_p50_change > 0.5

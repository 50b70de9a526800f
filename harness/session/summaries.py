"""A run's telemetry and soak summaries: records built from the sampler's series with the stats' functions."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from harness.contract.wire import THROTTLE_BITS, TelemetrySeries
from harness.records.telemetry import SoakSummary, TelemetrySummary
from harness.stats.trend import slope, tail_change

LEAK_MB_PER_MIN = 5.0
DRIFT_CHANGE = 0.10
MIN_SOAK_S = 60.0  # drift and leaks are judged on a minute or more of frames, not on a short run's noise


def _present(values: Sequence[Optional[float]]) -> list[float]:
    return [float(v) for v in values if v is not None]


def _window(series: TelemetrySeries, start_s: float, end_s: float) -> list[int]:
    return [i for i, t in enumerate(series.t_s) if start_s <= t <= end_s]


def audio_in_span(frames: Sequence[tuple[float, float]], audio_per_frame_s: float, begin_s: float,
                  end_s: float) -> float:
    """Seconds of audio produced in [begin_s, end_s]: each frame (start, end) counts for the part of it inside."""
    total = 0.0
    for start, stop in frames:
        inside = min(stop, end_s) - max(start, begin_s)
        if inside > 0 and stop > start:
            total += audio_per_frame_s * inside / (stop - start)
    return total


def summarize_telemetry(series: TelemetrySeries, start_s: float, end_s: float, audio_s: float,
                        idle_window: Optional[Sequence[float]] = None,
                        frames: Optional[Sequence[tuple[float, float]]] = None,
                        audio_per_frame_s: float = 0.0) -> TelemetrySummary:
    """Summary over the measured window [start_s, end_s] of the sampler's clock; `idle_window` [start, end]: the
    worker's idle sampling after warmup (the device's power between frames).

    Energy per second of audio divides the energy counted between the first and the last energy sample by the audio
    produced between those same two instants (`frames`: each measured frame's (start, end) on the sampler's clock,
    `audio_per_frame_s` of audio each), not by the whole window's: the sampler's first reading comes up to one
    period after the window opens and its last up to one before it closes, and on a short run that gap is 5-10%.
    Without `frames`, the window's audio is scaled to the sampled span."""
    idx = _window(series, start_s, end_s) or list(range(len(series.t_s)))
    pick = lambda values: [values[i] for i in idx if i < len(values)]  # noqa: E731
    out = TelemetrySummary(samples=len(idx),
                           unavailable={k: v for k, v in series.sources.items() if v != "available"})
    cpu = _present(pick(series.cpu_percent))
    mhz = _present(pick(series.cpu_mhz))
    temp = _present(pick(series.cpu_temp_c))
    out.cpu_percent_mean = float(np.mean(cpu)) if cpu else None
    out.cpu_mhz_min = min(mhz) if mhz else None
    out.cpu_mhz_mean = float(np.mean(mhz)) if mhz else None
    out.cpu_temp_max_c = max(temp) if temp else None
    gpu_temp = _present(pick(series.gpu_temp_c))
    power = _present(pick(series.gpu_power_w))
    energy = _present(pick(series.gpu_energy_j))
    clocks = _present(pick(series.sm_clock_mhz))
    out.gpu_temp_max_c = max(gpu_temp) if gpu_temp else None
    out.gpu_power_mean_w = float(np.mean(power)) if power else None
    out.sm_clock_min_mhz = min(clocks) if clocks else None
    sampled = [series.t_s[i] for i in idx if i < len(series.gpu_energy_j) and series.gpu_energy_j[i] is not None]
    if len(energy) >= 2 and len(sampled) >= 2:
        out.gpu_energy_j = energy[-1] - energy[0]
        begin, end = sampled[0], sampled[-1]
        if frames:
            audio = audio_in_span(frames, audio_per_frame_s, begin, end)
        else:
            window = end_s - start_s
            audio = audio_s * min(1.0, (end - begin) / window) if window > 0 else 0.0
        out.joules_per_audio_second = out.gpu_energy_j / audio if audio > 0 else None
    seen: list[str] = []
    for i in idx:
        if i >= len(series.throttle_reasons) or series.throttle_reasons[i] is None:
            continue
        bits = int(series.throttle_reasons[i])  # type: ignore[arg-type]
        for bit, name in THROTTLE_BITS.items():
            if bits & bit:
                if out.throttle_onset_s is None:
                    out.throttle_onset_s = series.t_s[i] - start_s
                if name not in seen:
                    seen.append(name)
    out.throttled, out.throttle_reasons = bool(seen), seen
    violations = [_present(pick(series.power_violation_ns)), _present(pick(series.thermal_violation_ns))]
    deltas = [v[-1] - v[0] for v in violations if len(v) >= 2]
    out.violation_ms = sum(deltas) / 1e6 if deltas else None
    if idle_window is not None and len(idle_window) == 2:
        # Skip the first fifth of the window: NVML's power reading averages over a recent interval.
        begin = idle_window[0] + 0.2 * (idle_window[1] - idle_window[0])
        idle = _present([series.gpu_power_w[i] for i in _window(series, begin, idle_window[1])
                         if i < len(series.gpu_power_w)])
        out.idle_power_w = float(np.median(idle)) if idle else None
    return out


def summarize_soak(frame_t_s: Sequence[float], samples_ms: Sequence[float],
                   series: Optional[TelemetrySeries]) -> SoakSummary:
    t = np.asarray(frame_t_s, dtype=float)
    y = np.asarray(samples_ms, dtype=float)
    duration = float(t[-1] - t[0]) if t.size > 1 else 0.0
    per_min, p_value = slope(t / 60.0, y)
    change = tail_change(y)
    out = SoakSummary(duration_s=duration, drift_ms_per_min=per_min, drift_p_value=p_value,
                      first_vs_last_p50_change=change)
    out.drifting = abs(change) > DRIFT_CHANGE and p_value < 0.01 and duration >= MIN_SOAK_S
    if out.drifting:
        out.notes.append(f"step time drifts: last tenth {change:+.0%} against the first ({per_min:+.2f} ms/min)")
    if series is not None and t.size:
        idx = _window(series, float(t[0]), float(t[-1]))
        if len(idx) > 2:
            ts = np.asarray([series.t_s[i] for i in idx]) / 60.0
            rss = np.asarray([series.rss_bytes[i] for i in idx]) / 2**20
            if np.ptp(ts) > 0:
                out.rss_growth_mb_per_min = slope(ts, rss)[0]
            out.rss_growth_mb = float(rss[-1] - rss[0])
            out.leak_suspected = (out.rss_growth_mb_per_min or 0.0) > LEAK_MB_PER_MIN and duration >= MIN_SOAK_S
            if out.leak_suspected:
                out.notes.append(f"memory grows {out.rss_growth_mb_per_min:.1f} MB/min: a leak is likely")
    return out

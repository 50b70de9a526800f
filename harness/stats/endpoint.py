"""What a caller of a served model gets, from the times its packets arrived: pure functions over numbers.

Every time is in seconds on the caller's clock (the load generator's monotonic clock, zero at the shared start).
Audio is counted in samples at 24 kHz; a frame is 80 ms (1920 samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

FRAME_S = 0.080


@dataclass(frozen=True)
class Intervals:
    p50_ms: float
    p99_ms: float
    max_ms: float
    count: int


def packet_intervals(arrivals_s: Sequence[float]) -> Optional[Intervals]:
    """Gaps between consecutive audio packets; None with fewer than two packets."""
    if len(arrivals_s) < 2:
        return None
    gaps = np.diff(np.asarray(arrivals_s, dtype=float)) * 1000.0
    return Intervals(p50_ms=float(np.percentile(gaps, 50)), p99_ms=float(np.percentile(gaps, 99)),
                     max_ms=float(gaps.max()), count=int(gaps.size))


def audio_by(arrivals_s: Sequence[float], samples: Sequence[int], at_s: float) -> int:
    """Samples received by time `at_s`."""
    return int(sum(n for t, n in zip(arrivals_s, samples) if t <= at_s))


def deficit_frames(sent_s: Sequence[float], arrivals_s: Sequence[float], samples: Sequence[int],
                   frame_samples: int, allowance_s: float = FRAME_S) -> Optional[float]:
    """Frames sent minus frames received, at the end of the stream (last send + `allowance_s`): audio the caller
    should have heard by then and had not. A real-time duplex server stays at its constant model delay."""
    if not sent_s:
        return None
    end = sent_s[-1] + allowance_s
    return len(sent_s) - audio_by(arrivals_s, samples, end) / frame_samples


def drift_ms_per_s(sent_s: Sequence[float], arrivals_s: Sequence[float], samples: Sequence[int],
                   sample_rate: int) -> Optional[float]:
    """Slope of the caller's lag (audio sent minus audio received, in ms) against time over the stream, by least
    squares at each packet's arrival: 0 for a server that keeps pace, positive for one falling behind."""
    if len(arrivals_s) < 3 or not sent_s:
        return None
    sent = np.asarray(sent_s, dtype=float)
    times = np.asarray(arrivals_s, dtype=float)
    inside = times <= sent[-1] + FRAME_S
    if inside.sum() < 3:
        return None
    received_ms = np.cumsum(np.asarray(samples, dtype=float))[inside] / sample_rate * 1000.0
    sent_ms = np.searchsorted(sent, times[inside], side="right") * FRAME_S * 1000.0
    lag = sent_ms - received_ms
    slope = np.polyfit(times[inside], lag, 1)[0]
    return float(slope)


def underrun_s(arrivals_s: Sequence[float], samples: Sequence[int], sample_rate: int, buffer_s: float,
               owed_samples: Optional[int] = None) -> float:
    """Seconds of silence a speaker plays: it starts `buffer_s` after the first packet and then wants audio at the
    real-time rate; when the next sample has not arrived it plays silence until it does (the delay stays).
    Only audio the server owed counts (`owed_samples`: one frame out per frame the caller sent): a gap after the
    server has answered everything is the end of the call, not an underrun."""
    if not arrivals_s:
        return 0.0
    play = arrivals_s[0] + buffer_s  # when the next buffered sample is due
    silence = 0.0
    heard = 0
    for t, n in zip(arrivals_s, samples):
        if owed_samples is not None and heard >= owed_samples:
            break
        heard += n
        if t > play:
            silence += t - play
            play = t
        play += n / sample_rate
    return silence


def send_lateness_ms(scheduled_s: Sequence[float], sent_s: Sequence[float]) -> list[float]:
    """How late each frame left the caller against its 80 ms schedule (a slow client, not the server)."""
    return [max(0.0, (s - d) * 1000.0) for d, s in zip(scheduled_s, sent_s)]


@dataclass(frozen=True)
class HandshakeSplit:
    lock_wait_s: Optional[float]
    prefill_s: Optional[float]


def split_handshake(upgraded_s: float, handshake_s: float, previous_end_s: Optional[float]) -> HandshakeSplit:
    """Time to handshake = lock wait + prefill, on a server that serves one call at a time: the lock is held until
    the call before this one ends (`previous_end_s`, seen by its own caller). Without a call before, all of it is
    the server's own work before the handshake (PersonaPlex's persona prefill)."""
    if previous_end_s is None or previous_end_s <= upgraded_s:
        return HandshakeSplit(lock_wait_s=0.0, prefill_s=handshake_s - upgraded_s)
    wait = min(previous_end_s, handshake_s) - upgraded_s
    return HandshakeSplit(lock_wait_s=wait, prefill_s=handshake_s - upgraded_s - wait)


def calls_overlap(spans: Sequence[tuple[float, float]], tolerance_s: float = 1e-3) -> bool:
    """True when two calls streamed at the same time (each span: handshake to end) by more than `tolerance_s`."""
    ordered = sorted(spans)
    return any(b[0] < a[1] - tolerance_s for a, b in zip(ordered, ordered[1:]))


def poisson_arrivals(rate_per_s: float, count: int, seed: int) -> list[float]:
    """Start times of `count` calls arriving as a Poisson process of `rate_per_s` (exponential gaps), from 0."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate_per_s, size=count)
    starts = np.cumsum(gaps) - gaps[0]
    return [float(s) for s in starts]


def more_failures_p(failed_before: int, callers_before: int, failed_now: int, callers_now: int) -> float:
    """One-sided Fisher exact p-value that callers fail more often now than before (each caller one trial)."""
    from scipy.stats import fisher_exact

    table = [[failed_now, callers_now - failed_now], [failed_before, callers_before - failed_before]]
    return float(fisher_exact(table, alternative="greater")[1])

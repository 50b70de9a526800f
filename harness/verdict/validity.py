"""Is a measurement good enough to conclude from? (in the spirit of MLPerf LoadGen)"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.records.scenario import Criteria
from harness.records.verdict import Validity
from harness.stats.certify import certify_step_times, late_rate_upper_bound

__all__ = ["assess_validity", "late_rate_upper_bound", "split", "burst_words"]


def split(samples: Sequence[float], process_frames: Sequence[int]) -> list[list[float]]:
    """The samples cut per worker process when the recorded sizes add up; else one segment."""
    sizes = list(process_frames)
    if len(sizes) < 2 or sum(sizes) != len(samples) or min(sizes) < 1:
        return [list(samples)]
    out, start = [], 0
    for size in sizes:
        out.append(list(samples[start:start + size]))
        start += size
    return out


def burst_words(burst_frames: int, budget_ms: float) -> str:
    """The certificate's assumption in frames and seconds of audio: 'bursts of up to 10 frames (0.8 s of audio)'."""
    return f"bursts of up to {burst_frames} frames ({burst_frames * budget_ms / 1000.0:.3g} s of audio)"


def assess_validity(samples_ms: Sequence[float], budget_ms: float, criteria: Criteria,
                    process_frames: Sequence[int] = ()) -> Validity:
    """Enough audio, stable, and the late-frame rate certified. Late = over `criteria.deadline_ms(budget)`,
    the same deadline the p99 rule uses. Measured seconds are seconds of audio (frames x budget): a fast
    configuration is not 'too short' for being fast. The late share is certified for late frames in bursts
    (harness.stats.certify), a burst never crossing a worker process."""
    arr = np.asarray(samples_ms, dtype=float)
    frames = int(arr.size)
    measured_s = frames * budget_ms / 1e3
    deadline = criteria.deadline_ms(budget_ms)
    mean = float(arr.mean()) if frames else 0.0
    cv = float(arr.std(ddof=1) / mean) if frames > 1 and mean > 0 else 0.0
    p50, p99 = (float(v) for v in np.percentile(arr, [50, 99])) if frames else (0.0, 0.0)
    tail_ratio = p99 / p50 if p50 > 0 else 0.0
    late = int((arr > deadline).sum())
    cert = certify_step_times(split(list(arr), process_frames), deadline, criteria.burst_frames,
                              criteria.late_frame_target, criteria.confidence)
    notes = []
    if frames < criteria.min_frames:
        notes.append(f"only {frames} measured frames (at least {criteria.min_frames} wanted)")
    if measured_s < criteria.min_seconds:
        notes.append(f"only {measured_s:.1f} s of audio measured (at least {criteria.min_seconds:g} s wanted)")
    stable = cv <= criteria.max_cv
    if not stable:
        notes.append(f"unstable: step times vary by {cv:.0%} of their mean (p99/p50 = {tail_ratio:.2f})")
    conf = f"{criteria.confidence:.0%}"
    bursts = burst_words(cert.burst_frames, budget_ms)
    if cert.burst_frames > criteria.burst_frames:
        bursts += (f", widened from {criteria.burst_frames}: the run shows {cert.longest_near_run} consecutive late "
                   "or near-late frames")
    if cert.certified:
        notes.append(f"P(frame > {deadline:g} ms) <= {cert.upper:.2%} at {conf} confidence ({late}/{frames} late, "
                     f"{bursts})")
    elif cert.frames_needed is None:
        notes.append(f"{late}/{frames} frames over {deadline:g} ms: at or above the {criteria.late_frame_target:.0%} "
                     f"allowed ({bursts}), more frames cannot certify it"
                     + ("; the run shows the share above the target" if cert.shown_above else ""))
    else:
        notes.append(f"P(frame > {deadline:g} ms) <= {cert.upper:.2%} at {conf} confidence ({late}/{frames} late, "
                     f"{bursts}); {cert.frames_to_certify} more frames would certify <= "
                     f"{criteria.late_frame_target:.0%}")
    return Validity(frames=frames, measured_s=measured_s, enough_frames=frames >= criteria.min_frames,
                    enough_seconds=measured_s >= criteria.min_seconds, cv=cv, tail_ratio=tail_ratio, stable=stable,
                    late_frames=late, late_rate=late / frames if frames else 0.0, late_rate_upper=cert.upper,
                    confidence=criteria.confidence, target=criteria.late_frame_target, certified=cert.certified,
                    frames_to_certify=cert.frames_to_certify, notes=notes, deadline_ms=deadline,
                    burst_frames=cert.burst_frames, longest_late_run=cert.longest_late_run,
                    longest_near_run=cert.longest_near_run, shown_above=cert.shown_above, frame_budget_ms=budget_ms)

"""Is a measurement good enough to conclude from? (in the spirit of MLPerf LoadGen)"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy.stats import beta

from harness.records.scenario import Criteria
from harness.records.verdict import Validity


def late_rate_upper_bound(late: int, frames: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on P(frame > budget)."""
    if frames <= 0:
        return 1.0
    if late >= frames:
        return 1.0
    return float(beta.ppf(confidence, late + 1, frames - late))


def frames_to_certify(late: int, frames: int, target: float, confidence: float) -> Optional[int]:
    """More frames needed, at the observed late rate, for the bound to fall to `target`; None if it never can."""
    if late_rate_upper_bound(late, frames, confidence) <= target:
        return 0
    rate = late / frames if frames else 0.0
    if rate >= target:
        return None
    low, high = frames, max(frames * 2, 16)
    while late_rate_upper_bound(math.ceil(rate * high), high, confidence) > target:
        low, high = high, high * 2
        if high > 10**9:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if late_rate_upper_bound(math.ceil(rate * mid), mid, confidence) <= target:
            high = mid
        else:
            low = mid
    return high - frames


def assess_validity(samples_ms: Sequence[float], budget_ms: float, criteria: Criteria) -> Validity:
    """Enough audio, stable, and the late-frame rate certified. Late = over `criteria.deadline_ms(budget)`,
    the same deadline the p99 rule uses. Measured seconds are seconds of audio (frames x budget): a fast
    configuration is not 'too short' for being fast."""
    arr = np.asarray(samples_ms, dtype=float)
    frames = int(arr.size)
    measured_s = frames * budget_ms / 1e3
    deadline = criteria.deadline_ms(budget_ms)
    mean = float(arr.mean()) if frames else 0.0
    cv = float(arr.std(ddof=1) / mean) if frames > 1 and mean > 0 else 0.0
    p50, p99 = (float(v) for v in np.percentile(arr, [50, 99])) if frames else (0.0, 0.0)
    tail_ratio = p99 / p50 if p50 > 0 else 0.0
    late = int((arr > deadline).sum())
    upper = late_rate_upper_bound(late, frames, criteria.confidence)
    needed = frames_to_certify(late, frames, criteria.late_frame_target, criteria.confidence)
    notes = []
    if frames < criteria.min_frames:
        notes.append(f"only {frames} measured frames (at least {criteria.min_frames} wanted)")
    if measured_s < criteria.min_seconds:
        notes.append(f"only {measured_s:.1f} s of audio measured (at least {criteria.min_seconds:g} s wanted)")
    stable = cv <= criteria.max_cv
    if not stable:
        notes.append(f"unstable: step times vary by {cv:.0%} of their mean (p99/p50 = {tail_ratio:.2f})")
    conf = f"{criteria.confidence:.0%}"
    if upper <= criteria.late_frame_target:
        notes.append(f"P(frame > {deadline:g} ms) <= {upper:.2%} at {conf} confidence")
    elif needed is None:
        notes.append(f"{late}/{frames} frames over {deadline:g} ms: more than the {criteria.late_frame_target:.0%} "
                     "allowed, more frames cannot certify it")
    else:
        notes.append(f"P(frame > {deadline:g} ms) <= {upper:.2%} at {conf} confidence; {needed} more frames "
                     f"would certify <= {criteria.late_frame_target:.0%}")
    return Validity(frames=frames, measured_s=measured_s, enough_frames=frames >= criteria.min_frames,
                    enough_seconds=measured_s >= criteria.min_seconds, cv=cv, tail_ratio=tail_ratio, stable=stable,
                    late_frames=late, late_rate=late / frames if frames else 0.0, late_rate_upper=upper,
                    confidence=criteria.confidence, target=criteria.late_frame_target,
                    certified=upper <= criteria.late_frame_target, frames_to_certify=needed, notes=notes,
                    deadline_ms=deadline)

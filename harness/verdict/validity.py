"""Is a measurement good enough to conclude from? (in the spirit of MLPerf LoadGen)"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from harness.records.scenario import Criteria
from harness.records.verdict import Validity
from harness.stats.certify import certify_late_share, late_rate_upper_bound, trials_to_certify

__all__ = ["assess_validity", "frames_to_certify", "late_rate_upper_bound", "split"]


def frames_to_certify(late: int, frames: int, target: float, confidence: float) -> Optional[int]:
    """More independent frames needed, at the observed late rate, for the bound to fall to `target`."""
    return trials_to_certify(late, frames, target, confidence)


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


def assess_validity(samples_ms: Sequence[float], budget_ms: float, criteria: Criteria,
                    process_frames: Sequence[int] = ()) -> Validity:
    """Enough audio, stable, and the late-frame rate certified. Late = over `criteria.deadline_ms(budget)`,
    the same deadline the p99 rule uses. Measured seconds are seconds of audio (frames x budget): a fast
    configuration is not 'too short' for being fast. The late share is certified over blocks of frames
    (harness.stats.certify: late frames come in bursts), blocks never crossing a worker process."""
    arr = np.asarray(samples_ms, dtype=float)
    frames = int(arr.size)
    measured_s = frames * budget_ms / 1e3
    deadline = criteria.deadline_ms(budget_ms)
    mean = float(arr.mean()) if frames else 0.0
    cv = float(arr.std(ddof=1) / mean) if frames > 1 and mean > 0 else 0.0
    p50, p99 = (float(v) for v in np.percentile(arr, [50, 99])) if frames else (0.0, 0.0)
    tail_ratio = p99 / p50 if p50 > 0 else 0.0
    late = int((arr > deadline).sum())
    cert = certify_late_share([[v > deadline for v in seg] for seg in split(list(arr), process_frames)],
                              criteria.burst_frames, criteria.late_frame_target, criteria.confidence)
    upper, needed, blocks = cert.upper, cert.frames_to_certify, cert.counts
    notes = []
    if frames < criteria.min_frames:
        notes.append(f"only {frames} measured frames (at least {criteria.min_frames} wanted)")
    if measured_s < criteria.min_seconds:
        notes.append(f"only {measured_s:.1f} s of audio measured (at least {criteria.min_seconds:g} s wanted)")
    stable = cv <= criteria.max_cv
    if not stable:
        notes.append(f"unstable: step times vary by {cv:.0%} of their mean (p99/p50 = {tail_ratio:.2f})")
    conf = f"{criteria.confidence:.0%}"
    over = (f"{blocks.late_blocks}/{blocks.blocks} blocks of {blocks.block_frames} frames hold a late frame "
            f"(bursts of up to {blocks.block_frames} frames)")
    if upper <= criteria.late_frame_target:
        notes.append(f"P(frame > {deadline:g} ms) <= {upper:.2%} at {conf} confidence; {over}")
    elif needed is None:
        notes.append(f"{late}/{frames} frames over {deadline:g} ms; {over}: more than the "
                     f"{criteria.late_frame_target:.0%} allowed, more frames cannot certify it")
    else:
        notes.append(f"P(frame > {deadline:g} ms) <= {upper:.2%} at {conf} confidence; {over}; {needed} more "
                     f"frames would certify <= {criteria.late_frame_target:.0%}")
    return Validity(frames=frames, measured_s=measured_s, enough_frames=frames >= criteria.min_frames,
                    enough_seconds=measured_s >= criteria.min_seconds, cv=cv, tail_ratio=tail_ratio, stable=stable,
                    late_frames=late, late_rate=late / frames if frames else 0.0, late_rate_upper=upper,
                    confidence=criteria.confidence, target=criteria.late_frame_target,
                    certified=upper <= criteria.late_frame_target, frames_to_certify=needed, notes=notes,
                    deadline_ms=deadline, burst_frames=blocks.block_frames, blocks=blocks.blocks,
                    late_blocks=blocks.late_blocks, longest_late_run=blocks.longest_late_run)

"""Stopping a run early once it is certainly not real time (standard library: the worker applies it).

A scenario at the defaults measures what certifies a clean run (4606 frames for 1% at 99% in bursts of 10); a
configuration whose frames are late far more often than that is known to fail long before. The worker stops when
the late-frame share is shown to be above the target: with late frames in bursts of up to `block_frames`, blocks of
that many frames are (about) independent, and the share of late frames in each block is a number in [0, 1] whose
mean is the late-frame share; Hoeffding's inequality bounds that mean from below. The test is made only at
`min_frames`, then each time the measured frames double (a handful of looks), each at (1 - confidence) / looks
(Bonferroni), so that a configuration that is in fact real time is stopped with probability at most
1 - confidence. A frame counts as late here only when it is late without the time its threads waited for a CPU
(run-queue wait, where Linux gives it): a disturbed machine must not stop a run (the verdict says "re-run" from
the whole record instead). The parent judges the frames measured; the record says the run stopped and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass
class EarlyStop:
    """What the worker needs to stop a run that cannot be real time (BenchJob.stop)."""

    __pydantic_config__ = {"extra": "forbid"}
    deadline_ms: float  # a frame slower than this is late
    block_frames: int
    target: float  # the late-frame share the criteria allow
    confidence: float
    min_frames: int  # first look
    frames: int  # what the run would measure in all


def looks(stop: EarlyStop) -> list[int]:
    """The measured-frame counts at which the test is made: min_frames, doubling, below the planned frames."""
    out, at = [], max(stop.min_frames, 2 * stop.block_frames)
    while at < stop.frames:
        out.append(at)
        at *= 2
    return out


def late_share_lower_bound(late: Sequence[bool], block_frames: int, alpha: float) -> Optional[float]:
    """Hoeffding's lower bound, at level alpha, on the late-frame share from whole blocks; None without a block."""
    blocks = len(late) // block_frames
    if blocks == 0:
        return None
    mean = sum(late[:blocks * block_frames]) / (blocks * block_frames)
    return mean - math.sqrt(math.log(1.0 / alpha) / (2.0 * blocks))


def should_stop(late: Sequence[bool], stop: EarlyStop) -> Optional[str]:
    """Why to stop now (at a look), or None to carry on."""
    planned = looks(stop)
    if len(late) not in planned:
        return None
    alpha = (1.0 - stop.confidence) / len(planned)
    bound = late_share_lower_bound(late, stop.block_frames, alpha)
    if bound is None or bound <= stop.target:
        return None
    return (f"stopped after {len(late)} of {stop.frames} frames: {sum(late)} late (> {stop.deadline_ms:g} ms without "
            "waiting for a CPU), so "
            f"the late share is above {bound:.1%} with {stop.confidence:.0%} confidence, more than the "
            f"{stop.target:.0%} allowed: the rest could not make it real time")

"""Certifying a late-frame share when late frames come in bursts: pure functions over late/on-time flags.

Clopper-Pearson on frames treats every frame as an independent trial. Late frames are not independent:
a collection, another process, a clock change or throttling makes several neighbouring frames late
together. With a true late share of 2% in bursts of 10 frames, a run of 459 frames sees no burst at all
40% of the time (exp(-0.002 x 459)), and 459 clean frames is exactly what certifies 1% at 99% when
frames are independent: 40% of such runs would be certified.

No estimate of the dependence taken from the run itself can repair that: in those 40% nothing is late,
and the series is indistinguishable from a clean one (an effective sample size or a block length
computed from it is that of a clean series). A certificate that holds must therefore state how long
a burst may be. The rule here, for bursts of at most `b` frames (frames further apart than a burst
behave independently):

- cut each process's frames into consecutive blocks of `b` frames (never across processes; a last,
  partial block counts only if it holds a late frame, which can only raise the bound);
- a block is late when any of its frames is;
- the late-frame share is at most the late-block share (a late frame lies in a late block, a block
  holds at most `b` late frames), and a burst of at most `b` frames makes at least one block late,
  so P(no late block in N blocks) <= exp(-share x N): the one-sided Clopper-Pearson bound on the
  late-block share at confidence c is an upper bound on the late-frame share at confidence c.

`b` is the larger of the burst length the criteria assume, the longest run of late frames this run
shows, and the Politis-White block length of its late flags (the dependence the series does show).
A clean run needs `b` times as many frames as the independent rule (4590 for 1% at 99% with b = 10).
`b = 1` is the independent-frame rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.stats import beta

from harness.stats.bootstrap import block_length


def late_rate_upper_bound(late: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on the share of late trials (frames, or blocks of frames)."""
    if trials <= 0 or late >= trials:
        return 1.0
    return float(beta.ppf(confidence, late + 1, trials - late))


def trials_to_certify(late: int, trials: int, target: float, confidence: float) -> Optional[int]:
    """More trials needed, at the observed late share, for the bound to fall to `target`; None if it never can."""
    if late_rate_upper_bound(late, trials, confidence) <= target:
        return 0
    rate = late / trials if trials else 0.0
    if rate >= target:
        return None
    low, high = trials, max(trials * 2, 16)
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
    return high - trials


def clean_frames_to_certify(burst_frames: int, target: float, confidence: float) -> int:
    """Frames with none late that certify `target` at `confidence` for bursts of `burst_frames` (4590 for 1%,
    99%, 10): what a scenario must measure by default to be able to conclude."""
    blocks = 1 + (trials_to_certify(0, 1, target, confidence) or 0)
    return blocks * max(1, burst_frames)


def late_runs(late: Sequence[bool]) -> list[int]:
    """Lengths of the runs of consecutive late frames, in order."""
    flags = np.asarray(late, dtype=np.int8)
    if flags.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], flags, [0])))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


@dataclass(frozen=True)
class BlockCount:
    block_frames: int
    blocks: int  # full blocks, plus partial last blocks that hold a late frame
    late_blocks: int
    longest_late_run: int


def count_late_blocks(segments: Sequence[Sequence[bool]], assumed_burst: int) -> BlockCount:
    """Blocks of each segment (one per process) and how many hold a late frame, the block length chosen as the
    module says."""
    longest = max((max(late_runs(s), default=0) for s in segments), default=0)
    dependence = max((math.ceil(block_length(np.asarray(s, dtype=float)))  # type: ignore[arg-type]
                      for s in segments if np.any(s)), default=1)
    b = max(1, assumed_burst, longest, dependence)
    blocks = late_blocks = 0
    for segment in segments:
        flags = np.asarray(segment, dtype=bool)
        full = flags.size // b
        blocks += full
        late_blocks += int(flags[:full * b].reshape(full, b).any(axis=1).sum()) if full else 0
        if flags[full * b:].any():  # a partial block: counted only when late, which only raises the bound
            blocks += 1
            late_blocks += 1
    return BlockCount(block_frames=b, blocks=blocks, late_blocks=late_blocks, longest_late_run=longest)


@dataclass(frozen=True)
class LateCertificate:
    """The late-frame share's upper bound over blocks, and what more would certify it."""

    counts: BlockCount
    upper: float
    certified: bool
    frames_to_certify: Optional[int]  # more frames at the observed late-block share; None: never


def certify_late_share(segments: Sequence[Sequence[bool]], assumed_burst: int, target: float,
                       confidence: float) -> LateCertificate:
    counts = count_late_blocks(segments, assumed_burst)
    upper = late_rate_upper_bound(counts.late_blocks, counts.blocks, confidence)
    more_blocks = trials_to_certify(counts.late_blocks, counts.blocks, target, confidence)
    return LateCertificate(counts=counts, upper=upper, certified=upper <= target,
                           frames_to_certify=None if more_blocks is None else more_blocks * counts.block_frames)

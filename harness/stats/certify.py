"""Certifying a late-frame share when late frames come in bursts: pure functions over step times and late flags.

Clopper-Pearson over frames treats every frame as an independent trial. Late frames are not independent: a
collection, another process, a clock change or throttling makes several neighbouring frames late together. With
a true late share of 2% in bursts of 10 frames, a run of 459 frames sees no burst at all 40% of the time, and 459
clean frames is exactly what certifies 1% at 99% when frames are independent. No estimate of the dependence taken
from a run can repair that (those runs look exactly like clean ones): a certificate that holds must state how long
a burst may be.

The model, and the bound:

- late frames come in bursts of at most `b` frames (the criteria's `burst_frames`, 10 frames = 0.8 s of audio at
  80 ms, raised to what the run shows: below), the bursts rare and starting independently of each other (a
  Poisson process of bursts; the frames of a burst are as dependent as they like);
- the late frames counted, S, are then a compound Poisson sum with jumps in [1, b] and mean N p (N frames, late
  share p). Whatever the mix of burst lengths, E[exp(-t S)] <= exp(N p (exp(-t b) - 1) / b) for t > 0 (the
  function (1 - exp(-t l)) / l falls as l grows, so bursts of exactly b frames are the worst case), and Chernoff's
  bound gives, with mu = N p / b bursts and k = S / b:

      P(S <= s) <= exp(-mu) (e mu / k)^k        (k < mu; exp(-mu) when k = 0)

- the share is certified <= target at confidence c when that bound, at p = target, is <= 1 - c. The upper bound
  reported is the p at which the bound equals 1 - c. A clean run needs mu >= ln(1 / (1 - c)): b ln(100) / 0.01 =
  4606 frames for 1% at 99% with b = 10 (the block rule it replaces needed 4590).

What this buys over a block-late flag: a rare isolated late frame costs one frame of S, not a whole block, so a run
whose late frames are isolated and ten times rarer than the target certifies at twice the clean length (the block
rule never certified it: each isolated frame made a block late, so the late-block share sat at the target). The
bound never uses fewer than `b` frames per burst, so a burst of up to `b` frames cannot slip through.

The same bound the other way (P(S >= s) <= exp(-mu) (e mu / k)^k for k > mu) says when the run SHOWS the late
share above the target: that is evidence that it misses, not a lack of evidence.

`b` is the larger of the criteria's burst length and the longest run of consecutive frames that are late or NEAR
late in one process (never across processes). What dependence visible in the step times means, decided here: the
step times' correlation as a whole says nothing about the tail (a GPU drifting by 1% with its temperature, 40 ms
under the deadline, would otherwise need hours to certify), so it sets no burst length by itself; but a stretch of
consecutive frames that are both in the run's own top 1% and within 10% of the deadline is the visible start of
a burst that a little more load would make late, and its length is the burst length the run shows. The length of
such runs depends on the process, not on how long it was measured (unlike the Politis-White block length used
before, which grows as n^(1/3)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.stats import beta, binom

# A frame above this share of the deadline (and in the run's top 1%) is near late: see the module docstring.
NEAR_LATE_SHARE = 0.9
NEAR_LATE_QUANTILE = 99.0


def late_rate_upper_bound(late: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on the share of late trials, for independent trials (the certificate
    for bursts of one frame)."""
    if trials <= 0 or late >= trials:
        return 1.0
    return float(beta.ppf(confidence, late + 1, trials - late))


def _log_tail(mu: float, k: float) -> float:
    """log of Chernoff's bound exp(-mu) (e mu / k)^k on a Poisson(mu)-sized sum of bursts: the lower tail
    P(S <= k b) when k < mu, the upper tail P(S >= k b) when k > mu; 0 (a bound of 1) at k == mu."""
    if k <= 0.0:
        return -mu
    if mu <= 0.0:
        return -math.inf if k > 0 else 0.0
    return -mu + k + k * math.log(mu / k)


def burst_upper_bound(late_frames: int, frames: int, burst: int, confidence: float) -> float:
    """Upper confidence bound on the late-frame share from `late_frames` of `frames`, bursts of up to `burst`
    (bursts of one frame: independent frames, for which Clopper-Pearson is exact and tighter)."""
    if frames <= 0:
        return 1.0
    b = max(1, burst)
    if b == 1:
        return late_rate_upper_bound(late_frames, frames, confidence)
    k = late_frames / b
    target_log = math.log(1.0 - confidence)
    # The bound at mu falls from 0 (mu = k) towards -inf: find mu where it equals log(1 - c).
    high = max(1.0, 2.0 * k)
    while _log_tail(high, k) > target_log:
        high *= 2.0
    mu = brentq(lambda m: _log_tail(m, k) - target_log, max(k, 1e-12), high) if k > 0 else -target_log
    return min(1.0, mu * b / frames)


def shown_above(late_frames: int, frames: int, burst: int, target: float, confidence: float) -> bool:
    """The run shows the late share above `target` at `confidence`, even if every burst were `burst` frames long
    (the longest bursts make many late frames most likely under a share at the target)."""
    if frames <= 0:
        return False
    b = max(1, burst)
    if b == 1:  # independent frames: the binomial tail itself
        return late_frames > frames * target and float(binom.sf(late_frames - 1, frames, target)) <= 1.0 - confidence
    mu, k = frames * target / b, late_frames / b
    return k > mu and _log_tail(mu, k) <= math.log(1.0 - confidence)


def frames_to_reach(late_share: float, burst: int, target: float, confidence: float) -> Optional[int]:
    """Frames that certify `target` when `late_share` of them are late (bursts of up to `burst`); None: never."""
    if late_share >= target:
        return None
    if burst_upper_bound(0, 1, burst, confidence) <= target:
        return 1
    low, high = 1, 16
    while burst_upper_bound(math.ceil(late_share * high), high, burst, confidence) > target:
        low, high = high, high * 2
        if high > 10**10:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if burst_upper_bound(math.ceil(late_share * mid), mid, burst, confidence) <= target:
            high = mid
        else:
            low = mid
    return high


def clean_frames_to_certify(burst_frames: int, target: float, confidence: float) -> int:
    """Frames with none late that certify `target` at `confidence` for bursts of `burst_frames` (4606 for 1%, 99%,
    10; 459 for independent frames): what a scenario must measure by default to be able to conclude."""
    if burst_frames <= 1:
        return math.ceil(math.log(1.0 - confidence) / math.log(1.0 - target) - 1e-9)
    return math.ceil(max(1, burst_frames) * math.log(1.0 / (1.0 - confidence)) / target - 1e-9)


def late_runs(late: Sequence[bool]) -> list[int]:
    """Lengths of the runs of consecutive late frames, in order."""
    flags = np.asarray(late, dtype=np.int8)
    if flags.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], flags, [0])))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


def near_late_flags(segments_ms: Sequence[Sequence[float]], deadline_ms: float) -> list[np.ndarray]:
    """Per process: late, or near late (in the run's own top 1% and above NEAR_LATE_SHARE of the deadline)."""
    values = [np.asarray(s, dtype=float) for s in segments_ms]
    every = np.concatenate(values) if values else np.zeros(0)
    if every.size == 0:
        return [np.zeros(0, dtype=bool) for _ in values]
    top = float(np.percentile(every, NEAR_LATE_QUANTILE))
    near = max(top, NEAR_LATE_SHARE * deadline_ms)
    return [(v > deadline_ms) | (v >= near) for v in values]


@dataclass(frozen=True)
class LateCertificate:
    """The late-frame share's upper bound under bursts, and what more would certify it."""

    frames: int
    late_frames: int
    burst_frames: int  # the burst length the bound assumed: the criteria's, or longer where the run showed it
    longest_late_run: int
    longest_near_run: int  # the longest run of late-or-near-late frames in one process
    upper: float
    certified: bool
    shown_above: bool  # the run shows the share above the target: evidence of a miss
    frames_needed: Optional[int]  # frames in all, at the observed late share, that would certify; None: never

    @property
    def frames_to_certify(self) -> Optional[int]:
        """More frames than measured that would certify (0 when certified); None: never at this late share."""
        if self.frames_needed is None:
            return None
        return max(0, self.frames_needed - self.frames)


def certify_late_share(late_segments: Sequence[Sequence[bool]], assumed_burst: int, target: float,
                       confidence: float, near_segments: Optional[Sequence[Sequence[bool]]] = None
                       ) -> LateCertificate:
    """The certificate from per-process late flags (and, where step times are known, late-or-near-late flags:
    `near_late_flags`); without them the late runs alone widen the burst."""
    late = [np.asarray(s, dtype=bool) for s in late_segments]
    near = late if near_segments is None else [np.asarray(s, dtype=bool) for s in near_segments]
    frames = int(sum(s.size for s in late))
    late_frames = int(sum(int(s.sum()) for s in late))
    longest = max((max(late_runs(s), default=0) for s in late), default=0)
    longest_near = max([longest] + [max(late_runs(s), default=0) for s in near])
    b = max(1, assumed_burst, longest_near)
    upper = burst_upper_bound(late_frames, frames, b, confidence)
    share = late_frames / frames if frames else 0.0
    return LateCertificate(frames=frames, late_frames=late_frames, burst_frames=b, longest_late_run=longest,
                           longest_near_run=longest_near, upper=upper, certified=frames > 0 and upper <= target,
                           shown_above=shown_above(late_frames, frames, b, target, confidence),
                           frames_needed=frames_to_reach(share, b, target, confidence) if frames else
                           clean_frames_to_certify(b, target, confidence))


def certify_step_times(segments_ms: Sequence[Sequence[float]], deadline_ms: float, assumed_burst: int,
                       target: float, confidence: float) -> LateCertificate:
    """The certificate of per-process step times against `deadline_ms` (late: strictly slower)."""
    late = [np.asarray(s, dtype=float) > deadline_ms for s in segments_ms]
    return certify_late_share(late, assumed_burst, target, confidence, near_late_flags(segments_ms, deadline_ms))

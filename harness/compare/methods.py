"""How much slower, with an interval: process medians when there are processes, else a block bootstrap.

Two methods, chosen per statistic:
- both sides ran >= 3 worker processes (scenario `repeat`) with enough frames each: the statistic
  of each process is one observation, and the interval comes from Welch's t on their logarithms.
  This is the only method that sees the noise *between* processes (a process that landed on a
  busy core, another memory layout), which on a shared VM is larger than the noise inside one.
- otherwise: a circular block bootstrap of the frames (harness.stats.bootstrap), blocks as long as
  the series' autocorrelation needs and never crossing a process boundary, widened for the median
  and the mean to the interval that consecutive batches of frames give (the method of batch means)
  where that is wider. With one process per side the interval only knows the noise inside each
  process; the note says so.
Mann-Whitney U on raw frames is gone: it treated autocorrelated frames as independent and called a
process-to-process shift of +15% "p = 5.5e-7".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from harness.records.schema import RunMetrics
from harness.stats.bootstrap import DEFAULT_RESAMPLES, ratio_interval
from harness.stats.welch import welch_log_ratio
from harness.verdict.validity import split

QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
MIN_PROCESSES = 3
# Frames the bootstrap needs to judge a statistic: at least 10 beyond a tail percentile; never the maximum.
BOOTSTRAP_MIN_FRAMES: dict[str, Optional[int]] = {"p50": 1, "mean": 1, "p90": 100, "p99": 1000, "max": None}
# Batch statistics for one or two processes: this many stretches per side, each at least this long.
BATCHES = 5
MIN_BATCH_FRAMES = 10
# Past this many frames a side the block bootstrap (resamples x frames) is not bounded in time (a 2-million-frame
# file did not finish in 5 minutes); the statistic of each of LARGE_BATCHES consecutive stretches is then the
# observation, as for processes: the method of batch means, in time linear in the frames.
MAX_BOOTSTRAP_FRAMES = 200_000
LARGE_BATCHES = 30


@dataclass(frozen=True)
class Change:
    """Relative change current / baseline - 1 of one statistic, with a two-sided interval."""

    estimate: float
    low: float
    high: float
    method: str
    spread: Optional[float] = None  # between-process spread (process path), larger of the two sides
    note: str = ""

    @property
    def noise(self) -> float:
        """What this measurement cannot resolve: half the interval, or the spread between processes."""
        return max((self.high - self.low) / 2.0, self.spread or 0.0)


def segments(metrics: RunMetrics) -> list[list[float]]:
    """The samples split per worker process when the split adds up; else one segment (as the verdict cuts them)."""
    return split(metrics.samples_ms, [p.frames for p in metrics.processes])


def _statistic(values: Sequence[float], statistic: str) -> float:
    if statistic == "mean":
        return float(np.mean(values))
    return float(np.percentile(np.asarray(values, dtype=float), QUANTILES[statistic]))


def _spread(values: Sequence[float]) -> float:
    centre = float(np.median(values))
    return (max(values) - min(values)) / centre if centre > 0 else 0.0


def process_change(base: list[list[float]], cur: list[list[float]], statistic: str, confidence: float,
                   unit: str = "process") -> Change:
    """Welch's t on the logarithm of each process's statistic: a ratio interval that holds whatever the
    frames inside a process do, since each process counts once."""
    return values_change([_statistic(s, statistic) for s in base], [_statistic(s, statistic) for s in cur],
                         statistic, confidence, unit)


def values_change(raw_b: list[float], raw_c: list[float], statistic: str, confidence: float,
                  unit: str = "process") -> Change:
    if min(raw_b + raw_c) <= 0.0:
        raise ValueError(f"a process's {statistic} is not positive: no ratio to form")
    ratio = welch_log_ratio(raw_b, raw_c, confidence)
    spread = max(_spread(raw_b), _spread(raw_c))
    return Change(estimate=ratio.estimate, low=ratio.low, high=ratio.high,
                  method=f"{unit} {statistic}s, Welch t on logs ({len(raw_b)} vs {len(raw_c)} {unit}es)",
                  spread=spread)


def batches(parts: list[list[float]], count: int = BATCHES, min_frames: int = 1) -> list[list[float]]:
    """Consecutive stretches of each process (never across processes), `count` in all when the frames allow,
    each at least `min_frames` long: the method of batch means, here batch statistics."""
    per_part = max(1, count // len(parts))
    out = []
    for part in parts:
        k = max(1, min(per_part, len(part) // max(min_frames, MIN_BATCH_FRAMES)))
        out += [list(chunk) for chunk in np.array_split(np.asarray(part, dtype=float), k)]
    return out


def bootstrap_change(base: list[list[float]], cur: list[list[float]], statistic: str, confidence: float,
                     min_frames: int = 1, resamples: int = DEFAULT_RESAMPLES) -> Change:
    """Block bootstrap of the frames, widened to the batch-statistics interval where that is wider.

    The block bootstrap under-covers when the autocorrelation is long against the series (its blocks
    are capped at a third of the frames); the batch-statistics interval (Welch t on the logarithms of
    the statistic of each consecutive stretch, few degrees of freedom) stays honest there. The gate
    takes the union of both: a regression must be shown by each.
    """
    q = None if statistic == "mean" else QUANTILES[statistic]
    interval = ratio_interval(base, cur, q, confidence, resamples)
    low, high = interval.low, interval.high
    method = (f"circular block bootstrap of frames (blocks {interval.baseline_block:.0f}/"
              f"{interval.current_block:.0f} frames, {len(base)} vs {len(cur)} processes)")
    if statistic in ("p50", "mean"):
        bb, bc = batches(base, min_frames=min_frames), batches(cur, min_frames=min_frames)
        if len(bb) >= MIN_PROCESSES and len(bc) >= MIN_PROCESSES:
            by_batch = process_change(bb, bc, statistic, confidence, unit="batch")
            low, high = min(low, by_batch.low), max(high, by_batch.high)
            method += f" and of {len(bb)}/{len(bc)} consecutive batches"
    one = len(base) == 1 and len(cur) == 1
    note = ("one process per side: the noise between processes is not measured (scenario `repeat: 3` "
            "measures it)") if one else ""
    return Change(estimate=interval.estimate, low=low, high=high, method=method, note=note)


def estimate_change(base: RunMetrics, cur: RunMetrics, statistic: str, confidence: float,
                    min_frames: int) -> Change:
    """The right method for this pair: process statistics when both sides have >= 3 processes with
    `min_frames` each, else the block bootstrap over all frames."""
    sb, sc = segments(base), segments(cur)
    if (len(sb) >= MIN_PROCESSES and len(sc) >= MIN_PROCESSES
            and min(len(s) for s in sb + sc) >= min_frames):
        return process_change(sb, sc, statistic, confidence)
    recorded = {"p50": lambda p: p.p50_ms, "p99": lambda p: p.p99_ms}.get(statistic)
    if (recorded is not None and min(len(base.processes), len(cur.processes)) >= MIN_PROCESSES
            and min(p.frames for p in [*base.processes, *cur.processes]) >= min_frames):
        # The samples do not split by the recorded frame counts: use the statistics each process recorded.
        return values_change([recorded(p) for p in base.processes], [recorded(p) for p in cur.processes],
                             statistic, confidence)
    need = BOOTSTRAP_MIN_FRAMES.get(statistic, 1)
    frames = min(sum(len(s) for s in sb), sum(len(s) for s in sc))
    if max(sum(len(s) for s in sb), sum(len(s) for s in sc)) > MAX_BOOTSTRAP_FRAMES and frames >= 1000:
        bb = batches(sb, LARGE_BATCHES, max(min_frames, 100))
        bc = batches(sc, LARGE_BATCHES, max(min_frames, 100))
        if len(bb) >= MIN_PROCESSES and len(bc) >= MIN_PROCESSES:
            change = process_change(bb, bc, statistic, confidence, unit="batch")
            return Change(estimate=change.estimate, low=change.low, high=change.high,
                          method=change.method, spread=None,
                          note=f"{frames}+ frames a side: judged by {len(bb)}/{len(bc)} consecutive batches, not "
                               f"by a bootstrap (bounded at {MAX_BOOTSTRAP_FRAMES} frames)")
    if need is None or frames < need:
        # A resample never holds a frame slower than the slowest measured one, so the bootstrap of a tail
        # percentile with few frames beyond it is far too sure of itself (a p99 of 100 frames is their maximum).
        raise ValueError(f"{frames} frames for a bootstrap of {statistic} (needs "
                         + (f"{need}, 10 beyond it" if need else "processes: it cannot be resampled")
                         + f"); `repeat: {MIN_PROCESSES}` with {min_frames} frames per process judges it per "
                           "process")
    return bootstrap_change(sb, sc, statistic, confidence, min_frames)

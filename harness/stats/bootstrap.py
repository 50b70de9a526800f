"""Block bootstrap for autocorrelated step times: pure functions over lists of floats.

Frames of one process are not independent: a slow stretch (another process on the core, a
frequency change, an allocator phase) makes neighbouring frames slow together. A test that
treats them as independent (Mann-Whitney U on raw frames) is wildly over-confident. The
circular block bootstrap resamples whole blocks of consecutive frames instead, so the
dependence inside a block survives; the block length comes from the series' own
autocorrelation (Politis and White 2004, with the correction of Patton, Politis and White 2009).
Blocks never cross a process boundary: each process's series is resampled on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000
# Resample at most this many indices at once, so that a long soak does not allocate gigabytes.
_CHUNK_ELEMENTS = 2_000_000


def autocovariance(series: Sequence[float], max_lag: int) -> list[float]:
    """Biased sample autocovariance (divided by n) for lags 0..max_lag, the series centred on its mean."""
    x = np.asarray(series, dtype=float)
    n = len(x)
    if n == 0:
        raise ValueError("autocovariance of an empty series")
    x = x - x.mean()
    top = min(max_lag, n - 1)
    return [float(np.dot(x[: n - k], x[k:]) / n) for k in range(top + 1)]


def _flat_top(s: float) -> float:
    s = abs(s)
    return 1.0 if s <= 0.5 else 2.0 * (1.0 - s) if s <= 1.0 else 0.0


def block_length(series: Sequence[float]) -> float:
    """Expected block length for a circular block bootstrap of the mean (Politis-White rule).

    1 means no detectable autocorrelation (the ordinary bootstrap); the result is capped at
    min(3 sqrt(n), n / 3) so that a resample still mixes several blocks.
    """
    n = len(series)
    if n < 4:
        return 1.0
    k_n = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = math.ceil(math.sqrt(n)) + k_n
    b_max = max(1.0, min(3.0 * math.sqrt(n), n / 3.0))
    acv = autocovariance(series, m_max + k_n)
    if acv[0] <= 0.0:
        return 1.0  # a constant series: nothing to preserve
    rho = [a / acv[0] for a in acv]
    # The correlogram is negligible from lag m on when K_N consecutive lags from m stay inside the band
    # (m as Patton's reference code counts it: the first lag of that run).
    band = 2.0 * math.sqrt(math.log10(n) / n)
    m_hat = None
    for m in range(1, len(rho) - k_n + 1):
        if all(abs(rho[m + k]) < band for k in range(k_n)):
            m_hat = m
            break
    big_m = m_max if m_hat is None else min(2 * max(m_hat, 1), m_max)
    big_m = min(big_m, len(acv) - 1)
    if big_m < 1:
        return 1.0
    weights = [_flat_top(k / big_m) for k in range(big_m + 1)]
    g = 2.0 * sum(weights[k] * k * acv[k] for k in range(1, big_m + 1))
    spectrum0 = acv[0] + 2.0 * sum(weights[k] * acv[k] for k in range(1, big_m + 1))
    d_circular = (4.0 / 3.0) * spectrum0 ** 2
    if d_circular <= 0.0 or g == 0.0:
        return 1.0
    b = (2.0 * g * g / d_circular) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return float(min(max(b, 1.0), b_max))


def _resample_indices(lengths: list[int], blocks: list[int], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` rows of indices into the concatenated segments; each segment is rebuilt from circular blocks
    drawn inside that segment only."""
    parts = []
    offset = 0
    for n, b in zip(lengths, blocks):
        b = max(1, min(b, n))
        per_row = math.ceil(n / b)
        starts = rng.integers(0, n, size=(count, per_row))
        idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(count, per_row * b)[:, :n] % n
        parts.append(idx + offset)
        offset += n
    return np.concatenate(parts, axis=1)


def _statistic(values: np.ndarray, q: Optional[float], axis: Optional[int] = None) -> np.ndarray:
    """The q-th percentile (numpy's linear rule, as harness.stats.percentiles), or the mean when q is None."""
    return np.mean(values, axis=axis) if q is None else np.percentile(values, q, axis=axis)


def bootstrap_percentiles(segments: Sequence[Sequence[float]], q: Optional[float], resamples: int, seed: int,
                          blocks: Sequence[int] | None = None) -> list[float]:
    """The q-th percentile (the mean if q is None) of `resamples` block-bootstrap copies of the segments."""
    clean = [list(s) for s in segments if len(s) > 0]
    if not clean:
        raise ValueError("bootstrap of no samples")
    lengths = [len(s) for s in clean]
    lens = list(blocks) if blocks is not None else [max(1, round(block_length(s))) for s in clean]
    values = np.concatenate([np.asarray(s, dtype=float) for s in clean])
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // max(1, len(values)))
    out: list[float] = []
    while len(out) < resamples:
        count = min(rows, resamples - len(out))
        idx = _resample_indices(lengths, lens, count, rng)
        out.extend(float(v) for v in _statistic(values[idx], q, axis=1))
    return out


@dataclass(frozen=True)
class RatioInterval:
    """Relative change current/baseline - 1 of a percentile, with a two-sided interval."""

    estimate: float
    low: float
    high: float
    baseline_block: float  # mean block length used for each side, in frames
    current_block: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


def ratio_interval(baseline: Sequence[Sequence[float]], current: Sequence[Sequence[float]], q: Optional[float],
                   confidence: float, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> RatioInterval:
    """Percentile-bootstrap interval of percentile_q(current) / percentile_q(baseline) - 1 (means if q is None).

    Each argument is a list of segments (one per process). The two sides are resampled
    independently (different processes, different times); `confidence` is two-sided, so each
    bound alone holds at (1 + confidence) / 2. A fixed seed keeps a verdict reproducible.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    base_blocks = [max(1, round(block_length(s))) for s in baseline if len(s) > 0]
    cur_blocks = [max(1, round(block_length(s))) for s in current if len(s) > 0]
    b = np.asarray(bootstrap_percentiles(baseline, q, resamples, seed, base_blocks))
    c = np.asarray(bootstrap_percentiles(current, q, resamples, seed + 1, cur_blocks))
    point_b = float(_statistic(np.concatenate([np.asarray(s, float) for s in baseline]), q))
    point_c = float(_statistic(np.concatenate([np.asarray(s, float) for s in current]), q))
    if point_b <= 0.0 or np.any(b <= 0.0):
        raise ValueError("baseline percentiles must be positive to form a ratio")
    ratios = c / b - 1.0
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = (float(v) for v in np.percentile(ratios, [tail, 100.0 - tail]))
    return RatioInterval(estimate=point_c / point_b - 1.0, low=low, high=high,
                         baseline_block=float(np.mean(base_blocks)), current_block=float(np.mean(cur_blocks)))

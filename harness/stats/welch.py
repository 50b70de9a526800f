"""Welch's t on logarithms: a ratio interval between two small sets of positive observations (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import t as student_t


@dataclass(frozen=True)
class RatioInterval:
    """current / baseline - 1, with a two-sided interval at the confidence asked."""

    estimate: float
    low: float
    high: float


def welch_log_ratio(baseline: Sequence[float], current: Sequence[float], confidence: float) -> RatioInterval:
    """Each observation counts once (e.g. one per worker process), so the interval holds whatever happens inside
    the process. Observations must be positive (a ratio of step times); two or more on each side."""
    if min([*baseline, *current]) <= 0.0:
        raise ValueError("observations must be positive: no ratio to form")
    logs = welch_difference(np.log(np.asarray(baseline, dtype=float)), np.log(np.asarray(current, dtype=float)),
                            confidence)
    return RatioInterval(estimate=math.expm1(logs.estimate), low=math.expm1(logs.low), high=math.expm1(logs.high))


@dataclass(frozen=True)
class DifferenceInterval:
    """mean(current) - mean(baseline), with a two-sided interval at the confidence asked."""

    estimate: float
    low: float
    high: float


def welch_difference(baseline: Sequence[float], current: Sequence[float], confidence: float) -> DifferenceInterval:
    """Welch's t on the raw values, for quantities that sit near zero where a ratio means nothing (frames of deficit,
    seconds of underrun): each observation counts once; two or more on each side."""
    if len(baseline) < 2 or len(current) < 2:
        raise ValueError("Welch's t needs at least two observations on each side")
    vb, vc = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    diff = float(vc.mean() - vb.mean())
    var_b, var_c = float(vb.var(ddof=1)) / len(vb), float(vc.var(ddof=1)) / len(vc)
    se = math.sqrt(var_b + var_c)
    if se == 0.0:
        return DifferenceInterval(diff, diff, diff)
    # Welch-Satterthwaite degrees of freedom; a side with zero variance contributes none.
    denom = sum(v * v / (n - 1) for v, n in ((var_b, len(vb)), (var_c, len(vc))) if v > 0)
    half = float(student_t.ppf((1.0 + confidence) / 2.0, se ** 4 / denom)) * se
    return DifferenceInterval(diff, diff - half, diff + half)

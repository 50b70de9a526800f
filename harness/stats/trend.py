"""Trends over time: pure functions over numbers."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import linregress


def slope(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of y against x and its two-sided p-value; (0, 1) when x does not vary."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.size <= 2 or np.ptp(xs) == 0:
        return 0.0, 1.0
    fit = linregress(xs, ys)
    return float(fit.slope), float(fit.pvalue)


def tail_change(y: Sequence[float], share: float = 0.1) -> float:
    """Median of the last `share` of the values over the median of the first, minus one."""
    ys = np.asarray(y, dtype=float)
    if ys.size == 0:
        return 0.0
    k = max(1, int(ys.size * share))
    return float(np.median(ys[-k:]) / np.median(ys[:k]) - 1)

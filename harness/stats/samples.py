"""Is a list of step times something a statistic can be computed from at all? (pure, numbers only)

A step time is a duration: finite and positive. A NaN, an infinity, a negative or zero time, or no time at all
means the measurement (or the file it came from) is broken, and any percentile, verdict or comparison made from
it would be garbage: such a run is invalid, with this reason, never GO and never "unchanged".
"""

from __future__ import annotations

import math
from typing import Optional, Sequence


def sample_problem(samples: Sequence[float], what: str = "step times") -> Optional[str]:
    """Why `samples` cannot be judged, or None when every value is a finite positive number."""
    if len(samples) == 0:
        return f"no {what} measured"
    nan = inf = negative = zero = 0
    for value in samples:
        if value != value:
            nan += 1
        elif math.isinf(value):
            inf += 1
        elif value < 0:
            negative += 1
        elif value == 0:
            zero += 1
    found = [f"{n} {label}" for n, label in ((nan, "NaN"), (inf, "infinite"), (negative, "negative"),
                                             (zero, "zero")) if n]
    if not found:
        return None
    return f"{' and '.join(found)} of {len(samples)} {what} (a step time is a finite positive duration)"


def values_problem(values: dict[str, float], what: str = "statistics") -> Optional[str]:
    """Why summary statistics (p50, p99, ...) cannot be judged, or None."""
    bad = [name for name, value in values.items() if not (math.isfinite(value) and value > 0)]
    return f"{what} not finite positive: {', '.join(bad)}" if bad else None

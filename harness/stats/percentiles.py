"""Step-time statistics shared by every part of the harness.

Definitions (DESIGN.md):
- a step is one full-duplex frame: Mimi encode -> LMGen.step -> Mimi decode, in milliseconds;
- warmup frames are excluded before any of these functions is called;
- percentiles use linear interpolation between order statistics (numpy's default, Hyndman-Fan type 7);
- RTF = step time / frame budget (80 ms of audio): below 1 is faster than real time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class StepSummary:
    """Milliseconds over the measured frames."""

    p50: float
    p90: float
    p99: float
    max: float
    min: float
    mean: float
    std: float


def percentile(samples: Sequence[float], q: float) -> float:
    if not samples:
        raise ValueError("percentile of an empty sample list")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within [0, 100], got {q}")
    return float(np.percentile(np.asarray(samples, dtype=float), q))


def summarize(samples: Sequence[float]) -> StepSummary:
    if not samples:
        raise ValueError("cannot summarize an empty sample list")
    arr = np.asarray(samples, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError("samples contain NaN or infinity")
    p50, p90, p99 = (float(v) for v in np.percentile(arr, [50, 90, 99]))
    return StepSummary(
        p50=p50, p90=p90, p99=p99,
        max=float(arr.max()), min=float(arr.min()),
        mean=float(arr.mean()), std=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
    )


def real_time_factor(step_ms: float, frame_budget_ms: float) -> float:
    if frame_budget_ms <= 0 or not math.isfinite(frame_budget_ms):
        raise ValueError(f"frame budget must be a positive number of milliseconds, got {frame_budget_ms}")
    return step_ms / frame_budget_ms


def stage_medians(stage_samples: dict[str, Sequence[float]]) -> dict[str, float]:
    return {stage: percentile(values, 50) for stage, values in stage_samples.items() if values}

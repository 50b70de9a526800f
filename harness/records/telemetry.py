"""Telemetry samples (columnar, one entry per sample) and their summaries, including soak analysis."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from harness.records.base import Record


class TelemetrySummary(Record):
    samples: int
    unavailable: dict[str, str] = Field(default_factory=dict)
    cpu_percent_mean: Optional[float] = None
    cpu_mhz_min: Optional[float] = None
    cpu_mhz_mean: Optional[float] = None
    cpu_temp_max_c: Optional[float] = None
    gpu_temp_max_c: Optional[float] = None
    gpu_power_mean_w: Optional[float] = None
    gpu_energy_j: Optional[float] = None
    joules_per_audio_second: Optional[float] = None
    idle_power_w: Optional[float] = Field(default=None, description="GPU power in the idle window after warmup "
                                                                    "(median), when the run asked for one")
    sm_clock_min_mhz: Optional[float] = None
    throttled: bool = False
    throttle_reasons: list[str] = Field(default_factory=list)
    throttle_onset_s: Optional[float] = Field(default=None, description="seconds into the measured frames")
    violation_ms: Optional[float] = None


class SoakSummary(Record):
    duration_s: float
    drift_ms_per_min: float = Field(description="slope of step time against wall time")
    drift_p_value: float
    first_vs_last_p50_change: float = Field(description="median of the last tenth / first tenth - 1")
    rss_growth_mb_per_min: Optional[float] = None
    rss_growth_mb: Optional[float] = None
    leak_suspected: bool = False
    drifting: bool = False
    notes: list[str] = Field(default_factory=list)

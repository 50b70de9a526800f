"""Telemetry samples (columnar, one entry per sample) and their summaries, including soak analysis."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from harness.records.base import Record

# NVML clock-event ("throttle") reason bits that mean the GPU slowed itself down.
THROTTLE_BITS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


class TelemetrySeries(Record):
    hz: float
    sources: dict[str, str] = Field(default_factory=dict, description="'available' or 'unavailable: why'")
    sampler_cpu_s: float = Field(default=0.0, description="CPU time the sampler thread itself used")
    sampler_wall_s: float = 0.0
    t_s: list[float] = Field(default_factory=list, description="seconds since the sampler started")
    cpu_percent: list[float] = Field(default_factory=list)
    cpu_mhz: list[Optional[float]] = Field(default_factory=list)
    cpu_temp_c: list[Optional[float]] = Field(default_factory=list)
    rss_bytes: list[float] = Field(default_factory=list)
    gpu_temp_c: list[Optional[float]] = Field(default_factory=list)
    gpu_power_w: list[Optional[float]] = Field(default_factory=list)
    gpu_energy_j: list[Optional[float]] = Field(default_factory=list)
    sm_clock_mhz: list[Optional[float]] = Field(default_factory=list)
    mem_clock_mhz: list[Optional[float]] = Field(default_factory=list)
    gpu_util_percent: list[Optional[float]] = Field(default_factory=list)
    gpu_mem_used_bytes: list[Optional[float]] = Field(default_factory=list)
    throttle_reasons: list[Optional[float]] = Field(default_factory=list)
    power_violation_ns: list[Optional[float]] = Field(default_factory=list)
    thermal_violation_ns: list[Optional[float]] = Field(default_factory=list)


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

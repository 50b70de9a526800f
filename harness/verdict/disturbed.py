"""Which measured frames the machine disturbed, from the worker's own per-frame evidence (harness.stats.disturbance),
and what it says about them; the verdict judges a configuration without the time it could not run."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.records.schema import RunMetrics
from harness.stats.disturbance import disturbed_frames, spans, stolen_ms, undisturbed


@dataclass(frozen=True)
class FrameDisturbance:
    frames: list[int] = field(default_factory=list)  # indices into samples_ms
    stolen_ms: list[float] = field(default_factory=list)
    corrected: list[float] = field(default_factory=list)  # samples_ms less the stolen time of those frames
    evidence: str = ""


def frame_disturbance(m: RunMetrics, device: str) -> FrameDisturbance:
    """Nothing when the run has no per-frame CPU evidence (older files, or a worker that could not read it)."""
    cpu = m.frame_cpu
    if cpu is None or not cpu.cpu_ms:
        return FrameDisturbance()
    stolen = stolen_ms(m.samples_ms, cpu.cpu_ms, cpu.run_wait_ms, cpu_bound=device == "cpu")
    frames = disturbed_frames(m.samples_ms, stolen)
    if not frames:
        return FrameDisturbance(stolen_ms=stolen, corrected=list(m.samples_ms))
    lost = sum(stolen[i] for i in frames)
    wall = sum(m.samples_ms[i] for i in frames)
    parts = [f"measured frames {spans(frames)}: the worker could not run for {lost:.0f} of their {wall:.0f} ms"]
    if len(cpu.run_wait_ms) == len(m.samples_ms):
        waited = sum(cpu.run_wait_ms[i] for i in frames)
        parts.append(f"its threads waited {waited:.0f} ms for a CPU")
    if len(cpu.others_cpu_ms) == len(m.samples_ms):
        others = sum(cpu.others_cpu_ms[i] for i in frames)
        parts.append(f"other processes used {others:.0f} ms of CPU meanwhile")
    return FrameDisturbance(frames=frames, stolen_ms=stolen, corrected=undisturbed(m.samples_ms, stolen, frames),
                            evidence="; ".join(parts))

"""Which measured frames something outside the configuration disturbed, from the worker's own per-frame evidence
(harness.stats.disturbance), and what it says about them; the verdict judges a configuration without the time it
could not run only for those frames.

A frame counts as disturbed only with corroboration: the threads that carry it (the main thread, and on a CPU run
torch's intra-op pool; never the telemetry sampler) waited beyond their usual AND other processes used the CPU
meanwhile in a comparable amount. Waits nothing outside explains stay the configuration's (its own threads, page
faults, I/O), and a run whose threads outnumber its cores is told so with its fix (`torch_threads`). Either way the
evidence is kept as a finding, and no sentence blames the machine beside figures that say nothing else ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from harness.records.schema import FrameCpuSamples, RunMetrics
from harness.stats.disturbance import (
    CORROBORATION,
    STEADY_SHARE,
    corroborated,
    disturbed_frames,
    spans,
    stolen_ms,
    undisturbed,
)


@dataclass(frozen=True)
class FrameDisturbance:
    frames: list[int] = field(default_factory=list)  # indices into samples_ms: disturbed from outside, corroborated
    stolen_ms: list[float] = field(default_factory=list)  # per frame, counted only in `frames` (0 elsewhere)
    corrected: list[float] = field(default_factory=list)  # samples_ms less the stolen time of those frames
    evidence: str = ""  # why `frames` are the machine's (empty when there are none)
    own_frames: list[int] = field(default_factory=list)  # waited beyond the usual, but nothing outside explains it
    findings: list[str] = field(default_factory=list)  # the configuration's own waits, oversubscription: flags
    threads: int = 0  # torch threads of the run (every process), 0 when not recorded
    cores: int = 0  # CPUs the worker could run on, 0 when not recorded


def _waits(cpu: FrameCpuSamples, n: int, device: str) -> tuple[list[float], str]:
    """The run-queue waits of the threads that carry the frame; older records have only any thread's."""
    if device == "cpu" and len(cpu.frame_wait_ms) == n:
        return cpu.frame_wait_ms, "its threads"
    if len(cpu.main_wait_ms) == n:
        return cpu.main_wait_ms, "its main thread"
    if len(cpu.run_wait_ms) == n:
        return cpu.run_wait_ms, "its threads"  # recorded before the carriers were told apart
    return [], ""


def _oversubscribed(cpu: FrameCpuSamples, waits: list[float]) -> Optional[str]:
    if not (cpu.threads and cpu.cores and cpu.threads > cpu.cores):
        return None
    usual = f" (a median {float(np.median(waits)):.1f} ms wait for a CPU per frame)" if waits else ""
    return (f"configuration: the run's {cpu.threads} torch threads exceed the {cpu.cores} cores it may use, so they "
            f"wait for each other's CPUs{usual}; set torch_threads: {cpu.cores} or fewer")


def _others(cpu: FrameCpuSamples, n: int) -> Optional[list[float]]:
    return cpu.others_cpu_ms if len(cpu.others_cpu_ms) == n else None


def frame_disturbance(m: RunMetrics, device: str) -> FrameDisturbance:
    """Nothing when the run has no per-frame CPU evidence (older files, or a worker that could not read it)."""
    cpu = m.frame_cpu
    if cpu is None or not cpu.cpu_ms:
        return FrameDisturbance(corrected=list(m.samples_ms))
    wall, n = m.samples_ms, len(m.samples_ms)
    waits, who = _waits(cpu, n, device)
    oversubscribed = _oversubscribed(cpu, waits)
    # Outnumbered by its own threads, the run waits in every frame: only the wait beyond its usual is anyone else's.
    usual = float(np.median(waits)) if oversubscribed and waits else 0.0
    raw = stolen_ms(wall, cpu.cpu_ms, waits, cpu_bound=device == "cpu", own_wait_ms=usual)
    candidates = disturbed_frames(wall, raw)
    others = _others(cpu, n)
    frames = corroborated(candidates, raw, others or [])
    counted = set(frames)
    own = [i for i in candidates if i not in counted]
    steady = bool(own) and len(own) >= STEADY_SHARE * n
    findings = []
    if oversubscribed:
        findings.append(oversubscribed)
    if own:
        lost = sum(raw[i] for i in own)
        meanwhile = (f"other processes used {sum(others[i] for i in own):.0f} ms of CPU meanwhile"
                     if others is not None else "other processes' CPU was not recorded")
        why = ("in most frames: the configuration's steady state, not a disturbance" if steady else
               f"nothing outside explains it ({meanwhile}, under {CORROBORATION:.0%} of it): the configuration's own "
               "wait (its threads, page faults or I/O), kept in the figures")
        findings.append(f"frames {spans(own)}: {who} could not run for {lost:.0f} ms"
                        + (" beyond their usual" if usual else "") + f"; {why}"
                        + (f" ({meanwhile})" if steady else ""))
    stolen = [raw[i] if i in counted else 0.0 for i in range(n)]
    base = FrameDisturbance(stolen_ms=stolen, corrected=list(wall), own_frames=own, findings=findings,
                            threads=cpu.threads, cores=cpu.cores)
    if not frames:
        return base
    assert others is not None
    lost = sum(raw[i] for i in frames)
    evidence = (f"measured frames {spans(frames)}: the worker could not run for {lost:.0f} of their "
                f"{sum(wall[i] for i in frames):.0f} ms" + (" beyond its usual" if usual else ""))
    if waits:
        evidence += f"; {who} waited {sum(waits[i] for i in frames):.0f} ms for a CPU"
    evidence += f"; other processes used {sum(others[i] for i in frames):.0f} ms of CPU meanwhile"
    return FrameDisturbance(frames=frames, stolen_ms=stolen, corrected=undisturbed(wall, stolen, frames),
                            evidence=evidence, own_frames=own, findings=findings, threads=cpu.threads,
                            cores=cpu.cores)

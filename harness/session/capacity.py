"""Capacity search: the largest lockstep batch (sessions) that stays real time, and its cost per conversation-hour.

Sizes 1, 2, 4, ... are probed until one fails (or `max_sessions` passes), then the gap is bisected, so the result
names both the largest size that passed and the next size, which failed. A size the planner says cannot fit in
memory is recorded as memory-limited without running it. Each probe that runs is one worker process at that
batch, judged by the verdict's own rule (`assess_run`: p99 within the deadline, no underrun, memory headroom);
certification of the late-tick rate is reported beside it (and the ticks it would take), not mixed into it,
so that a short probe says "real time, not certified: N ticks" instead of failing for being short.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import numpy as np

from harness.contract.wire import ArchitectureFacts
from harness.knowledge.prices import resolve_price
from harness.plan.capacity import gpu_table_bounds, memory_bound, session_cost
from harness.plan.planner import plan_run
from harness.plan.target import PlanTarget
from harness.records.capacity import (
    Admission,
    CapacityProbe,
    CapacityResult,
    CapacitySpec,
    CostLine,
    GpuSessions,
    LimitedBy,
)
from harness.records.config import Device, RunConfig
from harness.records.scenario import Criteria
from harness.records.schema import RunResult, Session
from harness.verdict.recommend import assess_run
from harness.verdict.validity import assess_validity, frames_to_certify

OOM_KINDS = {"oom", "cuda_oom"}


def ticks_to_certify(criteria: Criteria) -> int:
    """Ticks with none late that certify the late-tick target at the confidence (459 for 1% at 99%)."""
    return 1 + (frames_to_certify(0, 1, criteria.late_frame_target, criteria.confidence) or 0)


# --- the search (pure: sizes in, probes out) --------------------------------------------------------------------

def search(max_sessions: int, fits: Callable[[int], Optional[str]],
           measure: Callable[[int], CapacityProbe]) -> tuple[list[CapacityProbe], int, LimitedBy]:
    """Double from 1 until a size fails, then bisect. `fits(n)` is None when the planner says n fits, else why
    not; `measure(n)` runs a probe. Returns the probes in the order tried, the largest real-time size, and what
    stopped it: the first failing size's kind, or `max_sessions` when the largest allowed size passed."""
    probes: list[CapacityProbe] = []

    def passes(n: int) -> bool:
        why = fits(n)
        probe = (CapacityProbe(sessions=n, verdict="memory", ran=False, reasons=[why]) if why is not None
                 else measure(n))
        probes.append(probe)
        return probe.verdict == "realtime"

    best, failing, n = 0, None, 1
    while True:
        if not passes(n):
            failing = n
            break
        best = n
        if n >= max_sessions:
            break
        n = min(2 * n, max_sessions)
    if failing is not None:
        while failing - best > 1:
            mid = (best + failing) // 2
            if passes(mid):
                best = mid
            else:
                failing = mid
    if failing is None:
        return probes, best, "max_sessions"
    verdict = next(p.verdict for p in probes if p.sessions == failing)
    limited: LimitedBy = {"late": "time", "memory": "memory"}.get(verdict, "failed")  # type: ignore[assignment]
    return probes, best, limited


# --- one probe: a measured RunResult judged by the verdict's rule ------------------------------------------------

def _peak_memory(result: RunResult) -> Optional[int]:
    m = result.metrics
    if m is None:
        return None
    return m.cuda.peak_allocated_bytes if m.cuda is not None else m.peak_rss_bytes


def judge(result: RunResult, sessions: int, session: Session, criteria: Criteria,
          predicted_bytes: Optional[int] = None) -> CapacityProbe:
    probe = CapacityProbe(sessions=sessions, verdict="failed", ran=True, predicted_memory_bytes=predicted_bytes)
    if result.status != "ok" or result.metrics is None:
        kind = result.diagnosis.kind if result.diagnosis else ""
        probe.verdict = "memory" if kind in OOM_KINDS else "failed"
        probe.reasons.append(result.diagnosis.cause if result.diagnosis else (result.reason or result.status))
        return probe
    m = result.metrics
    # The verdict's rule without its length and certification requirements, which are reported separately below.
    timing = criteria.model_copy(update={"min_frames": 1, "min_seconds": 0.0, "late_frame_target": 1 - 1e-9})
    assessed = assess_run(result, session, timing)
    validity = assess_validity(m.samples_ms, m.frame_budget_ms, criteria)
    probe.ticks, probe.late_ticks = m.frames, validity.late_frames
    probe.tick_p50_ms, probe.tick_p99_ms = m.ms_per_step.p50, m.ms_per_step.p99
    probe.peak_memory_bytes = _peak_memory(result)
    probe.certified, probe.ticks_to_certify = validity.certified, validity.frames_to_certify
    probe.reasons = list(assessed.reasons)
    over_memory = (assessed.memory_fraction is not None and assessed.memory_fraction > 1 - criteria.memory_headroom)
    probe.verdict = "realtime" if assessed.realtime else ("memory" if over_memory and len(assessed.reasons) == 1
                                                          else "late")
    needed = ticks_to_certify(criteria)
    if probe.verdict == "realtime" and not validity.certified:
        probe.notes.append(f"real time over {m.frames} ticks but not certified: {needed} ticks with none late "
                           f"certify {criteria.late_frame_target:.0%} late at {criteria.confidence:.0%}"
                           + (f"; {validity.frames_to_certify} more would" if validity.frames_to_certify else ""))
    return probe


def admission(result: RunResult, deadline_ms: float) -> Optional[Admission]:
    sample = result.metrics.admission if result.metrics is not None else None
    if sample is None:
        return None
    return Admission(slot=sample.slot, at_tick=sample.at_tick, warmup_steps=sample.warmup_steps,
                     reset_ms=sample.reset_ms, tick_ms=sample.tick_ms,
                     late_ticks=sum(1 for ms in sample.tick_ms if ms > deadline_ms))


# --- the result ---------------------------------------------------------------------------------------------------

def memory_slope(probes: list[CapacityProbe]) -> Optional[int]:
    """Measured bytes per added session: least-squares slope of peak memory over the sizes that ran, from 2 sessions
    up when two such sizes ran: on the CPU going from 1 to 2 sessions added a one-off step of about two sessions'
    worth in every personaplex-tiny run measured (cause not established), which is not a per-session cost."""
    points = [(p.sessions, p.peak_memory_bytes) for p in probes if p.ran and p.peak_memory_bytes]
    batched = [(n, b) for n, b in points if n >= 2]
    if len({n for n, _ in batched}) >= 2:
        points = batched
    if len({n for n, _ in points}) < 2:
        return None
    x, y = np.array([n for n, _ in points], float), np.array([b for _, b in points], float)
    return int(np.polyfit(x, y, 1)[0])


def cost_line(spec: CapacitySpec, option_usd: Optional[float], device_name: str, sessions: int,
              joules_per_audio_s: Optional[float]) -> Optional[CostLine]:
    price = resolve_price(device_name, spec.gpu_hour_usd, option_usd)
    if price is None:
        return None
    line = CostLine(gpu_hour_usd=price.usd_per_hour, price_source=price.source, sessions=sessions)
    if sessions > 0:
        line.per_conversation_hour_usd = price.usd_per_hour / sessions
    if joules_per_audio_s is None:
        line.energy_note = "no energy counter here (NVML gives it on NVIDIA GPUs from Volta on)"
    elif sessions > 0:
        # One second of audio per tick-second serves `sessions` conversations at once: J/s of audio / sessions
        # is joules per conversation-second, numerically Wh per conversation-hour.
        line.energy_j_per_audio_s = joules_per_audio_s
        line.energy_wh_per_conversation_hour = joules_per_audio_s / sessions
    return line


class ProbeRunner(Protocol):
    """What the search needs from the session runner."""

    def probe(self, run: RunConfig, sessions: int) -> RunResult: ...


def summarize(probes: list[CapacityProbe], best: int, limited: LimitedBy, *, device: str, deadline_ms: float,
              bound: Optional[int], predicted_per_session: Optional[int]) -> CapacityResult:
    at_best = next((p for p in probes if p.sessions == best and p.ran), None)
    result = CapacityResult(max_realtime_sessions=best, limited_by=limited, device=device, deadline_ms=deadline_ms,
                            memory_bound_sessions=bound, memory_per_session_bytes=memory_slope(probes),
                            predicted_memory_per_session_bytes=predicted_per_session,
                            probes=sorted(probes, key=lambda p: p.sessions))
    if at_best is not None:
        result.tick_p50_ms, result.tick_p99_ms = at_best.tick_p50_ms, at_best.tick_p99_ms
        result.peak_memory_bytes = at_best.peak_memory_bytes
        if not at_best.certified:
            result.notes.append(f"{best} sessions: " + (at_best.notes[0] if at_best.notes else "not certified"))
    one = next((p.peak_memory_bytes for p in probes if p.ran and p.sessions == 1 and p.peak_memory_bytes), None)
    two = next((p.peak_memory_bytes for p in probes if p.ran and p.sessions == 2 and p.peak_memory_bytes), None)
    batched = {p.sessions for p in probes if p.ran and p.sessions >= 2 and p.peak_memory_bytes}
    if one and two and result.memory_per_session_bytes and len(batched) >= 2:
        result.notes.append(f"1 -> 2 sessions added {(two - one) / 2**20:.0f} MiB; the slope from 2 sessions up is "
                            f"{result.memory_per_session_bytes / 2**20:.1f} MiB per session")
    failing = [p for p in probes if p.sessions == best + 1]
    if failing:
        result.notes.append(f"{best + 1} sessions: {failing[0].verdict}"
                            + (f" ({failing[0].reasons[0]})" if failing[0].reasons else ""))
    return result


def device_label(run: RunConfig, session: Session) -> str:
    if run.device is Device.cuda and session.machine.gpus:
        return session.machine.gpus[0].name
    return session.machine.cpu_model


# --- orchestration: the runner's probes, the planner's bound, one RunResult with metrics.capacity ----------------

def capacity_run(runner: ProbeRunner, run: RunConfig, session: Session, criteria: Criteria, *,
                 note: Callable[[str], None], plan_target: Optional[PlanTarget] = None,
                 host_memory_limit_bytes: Optional[int] = None, option_usd: Optional[float] = None) -> RunResult:
    """Search, then return the run measured at its largest real-time size (the batch-1 probe when none is),
    its metrics carrying the whole search in `metrics.capacity`."""
    spec = run.capacity or CapacitySpec()
    arch = session.architecture
    bound = per_session = None
    if arch is not None and plan_target is not None:
        bound = memory_bound(arch, run, plan_target, host_memory_limit_bytes=host_memory_limit_bytes)
        per_session = session_cost(arch, run, plan_target).bytes

    def predicted(n: int) -> Optional[int]:
        if arch is None or plan_target is None:
            return None
        plan = plan_run(arch, run, plan_target, batch=n, host_memory_limit_bytes=host_memory_limit_bytes)
        return plan.device_allocated_bytes if plan.device_allocated_bytes is not None else plan.host_peak_bytes

    def fits(n: int) -> Optional[str]:
        if bound is None or n <= bound:
            return None
        return f"the planner predicts {n} sessions do not fit in memory ({bound} do)"

    results: dict[int, RunResult] = {}

    def measure(n: int) -> CapacityProbe:
        result = results[n] = runner.probe(run, n)
        probe = judge(result, n, session, criteria, predicted(n))
        budget = result.metrics.frame_budget_ms if result.metrics else 0.0
        probe.admission = admission(result, criteria.deadline_ms(budget))
        note(f"  capacity {run.name}: {n} session(s) {probe.verdict}"
             + (f", tick p99 {probe.tick_p99_ms:.1f} ms" if probe.tick_p99_ms is not None else "")
             + (f" ({probe.reasons[0]})" if probe.reasons else ""))
        return probe

    probes, best, limited = search(spec.max_sessions, fits, measure)
    chosen = results.get(best) or results.get(1) or next(iter(results.values()), None)
    deadline = criteria.deadline_ms(session.scenario.frame_budget_ms)
    summary = summarize(probes, best, limited, device=device_label(run, session), deadline_ms=deadline, bound=bound,
                        predicted_per_session=per_session)
    if chosen is None:  # only possible when even one session cannot fit: nothing ran
        out = RunResult(name=run.name, config=run.model_copy(update={"batch_size": 1}), status="skipped",
                        reason="capacity: " + (probes[0].reasons[0] if probes and probes[0].reasons else "nothing ran"))
        return out
    out = chosen.model_copy(update={"name": run.name, "config": run.model_copy(update={"batch_size": best or 1})})
    if out.metrics is None:
        out.reason = f"capacity search: {out.reason}"
        return out
    summary.cost = cost_line(spec, option_usd, summary.device, best,
                             out.metrics.telemetry_summary.joules_per_audio_second
                             if out.metrics.telemetry_summary else None)
    if arch is not None:
        summary.predicted_gpus = predicted_gpus(arch, run, session, deadline)
    out.metrics = out.metrics.model_copy(update={"capacity": summary})
    return out


def predicted_gpus(arch: ArchitectureFacts, run: RunConfig, session: Session, deadline_ms: float) -> list[GpuSessions]:
    """The planner's memory-bound sessions of this run's configuration on every GPU of the table."""
    return [GpuSessions(gpu=b.gpu or b.target, vram_bytes=b.capacity_bytes or 0, sessions_by_memory=b.max_sessions,
                        per_session_bytes=b.per_session.bytes, fixed_bytes=b.fixed_bytes,
                        floor_ms_at_max=b.floor_ms_at_max, sessions_by_floor=b.realtime_by_floor)
            for b in gpu_table_bounds(arch, run, session.machine, deadline_ms=deadline_ms)]

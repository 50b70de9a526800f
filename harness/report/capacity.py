"""The report's capacity section: server processes per machine (the stock deployment) beside sessions in lockstep
(which need a batching server), each search, its cost and energy, what a joining caller costs the others, and the
planner's prediction for every GPU of the table (decided in the session; rendered here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import matplotlib.pyplot as plt

from harness.records.capacity import Admission, CapacityResult, CostLine, ProcessCapacity
from harness.records.schema import Session
from harness.report.plots import BUDGET_COLOUR, Figure, _encode

MIB, GIB = 2**20, 2**30


@dataclass
class ProbeRow:
    sessions: int
    verdict: str
    ran: str
    ticks: str
    p50: str
    p99: str
    late: str
    memory: str
    predicted: str
    certified: str
    why: list[str] = field(default_factory=list)


@dataclass
class ProcessRow:
    processes: int
    verdict: str
    ran: str
    frames: str
    p50: str
    p99: str
    late: str
    memory: str
    certified: str
    why: list[str] = field(default_factory=list)


@dataclass
class ProcessesSection:
    headline: str
    how: str
    judged_by: str
    cost: str
    energy: str
    prediction: str
    notes: list[str]
    probes: list[ProcessRow]


@dataclass
class CapacitySection:
    run: str
    headline: str
    lockstep_needs: str
    judged_by: str
    processes: Optional[ProcessesSection]
    limited_by: str
    cost: str
    energy: str
    per_session: str
    admission: str
    notes: list[str]
    probes: list[ProbeRow]
    predicted: list[dict]
    figure: Optional[Figure]


def _mib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def _figure(run: str, cap: CapacityResult, budget_ms: float) -> Optional[Figure]:
    ran = [p for p in cap.probes if p.ran and p.tick_p99_ms is not None]
    if not ran:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    sizes = [p.sessions for p in ran]
    ax.plot(sizes, [p.tick_p99_ms for p in ran], "o-", label="tick p99")
    ax.plot(sizes, [p.tick_p50_ms for p in ran], "s--", alpha=0.6, label="tick p50")
    ax.axhline(budget_ms, color=BUDGET_COLOUR, label=f"budget {budget_ms:g} ms")
    ax.axhline(cap.deadline_ms, color=BUDGET_COLOUR, linestyle=":", label=f"deadline {cap.deadline_ms:g} ms")
    for p in cap.probes:
        if not p.ran:
            ax.axvline(p.sessions, color="grey", linestyle=":", alpha=0.5)
    ax.set_xlabel("sessions in lockstep (batch)")
    ax.set_ylabel("ms per tick")
    ax.legend(fontsize=8)
    return Figure(key=f"capacity-{run}", title=f"{run}: tick time against sessions",
                  caption="Each point is one probe (a worker run at that batch); a tick over the deadline is late for "
                          "every session in it. Dotted grey lines: sizes the planner said cannot fit (not run).",
                  png_base64=_encode(fig))


def _cost(c: Optional[CostLine], unit: str = "sessions") -> tuple[str, str]:
    if c is None:
        return ("no price for this device: give `capacity.gpu_hour_usd` or `harness run --gpu-hour-usd`", "-")
    if c.sessions == 0:
        one = "process" if unit == "processes" else "session"
        return (f"no cost per conversation-hour: not one {one} is real time here (${c.gpu_hour_usd:g} per hour, "
                f"price: {c.price_source})", "-")
    per = ("-" if c.per_conversation_hour_usd is None
           else f"${c.per_conversation_hour_usd:.4f} per conversation-hour")
    cost = f"{per} = ${c.gpu_hour_usd:g} per hour / {c.sessions} {unit} (price: {c.price_source})"
    energy = (f"{c.energy_wh_per_conversation_hour:.2f} Wh per conversation-hour ({c.energy_note}; whole device, "
              f"/ {c.sessions})" if c.energy_wh_per_conversation_hour is not None else (c.energy_note or "-"))
    return cost, energy


def _processes(p: ProcessCapacity) -> ProcessesSection:
    rows = [ProcessRow(processes=r.processes, verdict=r.verdict, ran="yes" if r.ran else "no (memory)",
                       frames=str(r.frames) if r.ran else "-", p50=_ms(r.step_p50_ms), p99=_ms(r.step_p99_ms),
                       late=f"{r.late_frames} ({r.late_starts} late starts)" if r.ran else "-",
                       memory=_mib(r.peak_memory_bytes),
                       certified="yes" if r.certified else ("-" if not r.ran else
                                                            f"no ({r.frames_to_certify} more)" if r.frames_to_certify
                                                            else "no"),
                       why=r.reasons + r.notes) for r in p.probes]
    limited = {"time": "time (the next K misses the deadline)", "memory": "memory",
               "max_sessions": "the search's max_processes (every K tried passed)", "failed": "a failure",
               "time_limit": "the run's --time-limit (stopped before a K failed: a lower bound)",
               "interrupted": "an interrupt (stopped before a K failed: a lower bound)",
               "disturbed": "a disturbed machine (the next K was disturbed twice: re-run on a quiet machine)"}
    headline = (f"{p.max_realtime_processes} server process(es) per machine, one call each, {p.how}; limited by "
                f"{limited[p.limited_by]}")
    cost, energy = _cost(p.cost, "processes")
    return ProcessesSection(headline=headline, how=p.how, judged_by=p.judged_by, cost=cost, energy=energy,
                            prediction=p.prediction_rule, notes=p.notes, probes=rows)


def _admission(a: Admission) -> str:
    at = a.others + 1
    if a.mode == "interleaved":
        return (f"at {at} sessions, a caller joining (slot {a.slot}, tick {a.at_tick}) stalls nobody: {a.how}. Those "
                f"{a.prompt_ticks} ticks took {_ms(a.prompt_tick_p50_ms)} ms (median), "
                f"{max(a.tick_ms, default=0):.0f} ms at most, {a.late_ticks} late (they are measured ticks, in the "
                f"percentiles); reset {a.reset_ms:.1f} ms; the joiner waited {a.handshake_ms / 1e3:.1f} s for its "
                "first live tick (its prompt's steps, one per tick)")
    return (f"at {at} sessions, a caller joining (slot {a.slot}, tick {a.at_tick}) stalls the other "
            f"{a.others} for {a.stall_ms:.0f} ms: {a.how}; reset {a.reset_ms:.1f} ms, {a.warmup_steps} steps"
            + (f" of {a.step_p50_ms:.1f} ms (median)" if a.step_p50_ms is not None else "")
            + (f", {a.wait_ms:.0f} ms of waits" if a.wait_ms else "")
            + f"; each other session falls {a.frames_behind} frame(s) behind; the admitting tick itself "
              f"took {', '.join(f'{t:.0f}' for t in a.tick_ms)} ms. The tick percentiles leave the stall "
              "out: a batching server interleaves a joining caller's prefill with the others' frames "
              "(`join: {mode: interleaved}`, the default)")


def _section(run: str, cap: CapacityResult, budget_ms: float) -> CapacitySection:
    rows = []
    for p in cap.probes:
        rows.append(ProbeRow(
            sessions=p.sessions, verdict=p.verdict, ran="yes" if p.ran else "no (planner)",
            ticks=str(p.ticks) if p.ran else "-", p50=_ms(p.tick_p50_ms), p99=_ms(p.tick_p99_ms),
            late=f"{p.late_ticks}" if p.ran else "-", memory=_mib(p.peak_memory_bytes),
            predicted=_mib(p.predicted_memory_bytes),
            certified="yes" if p.certified else ("-" if not p.ran else
                                                 f"no ({p.ticks_to_certify} more)" if p.ticks_to_certify
                                                 else "no"),
            why=p.reasons + p.notes))
    measured = cap.memory_per_session_bytes
    predicted = cap.predicted_memory_per_session_bytes
    per_session = f"measured {_mib(measured)} MiB per added session (slope over the probes that ran)"
    if predicted:
        per_session += f", predicted {_mib(predicted)} MiB"
        if measured:
            per_session += f" ({predicted / measured - 1:+.0%})"
    admitted = {p.sessions: p.admission for p in cap.probes if p.admission is not None}
    admission = "-"
    if admitted:  # at the size the search settled on, else the largest that admitted one
        a = admitted.get(cap.max_realtime_sessions) or admitted[max(admitted)]
        admission = _admission(a)
    cost, energy = _cost(cap.cost)
    predicted_rows = [{"gpu": g.gpu, "vram": f"{g.vram_bytes / GIB:.0f}", "sessions": g.sessions_by_memory,
                       "processes": "-" if g.processes_by_memory is None else str(g.processes_by_memory),
                       "per_session": f"{g.per_session_bytes / GIB:.2f}", "fixed": f"{g.fixed_bytes / GIB:.1f}",
                       "floor": _ms(g.floor_ms_at_max),
                       "by_floor": "-" if g.sessions_by_floor is None else str(g.sessions_by_floor)}
                      for g in cap.predicted_gpus]
    headline = (f"{cap.max_realtime_sessions} session(s) in lockstep in real time on {cap.device}"
                + (f": tick p50 {cap.tick_p50_ms:.1f} ms, p99 {cap.tick_p99_ms:.1f} ms against a "
                   f"{cap.deadline_ms:g} ms deadline" if cap.tick_p99_ms is not None else "")
                + (f", peak memory {_mib(cap.peak_memory_bytes)} MiB" if cap.peak_memory_bytes else ""))
    limited = {"time": "time (the next size misses the deadline)", "memory": "memory (the next size does not fit)",
               "max_sessions": "the search's max_sessions (every size tried passed)",
               "failed": "a failure (see the probes)",
               "time_limit": "the run's --time-limit (stopped before a size failed: a lower bound)",
               "interrupted": "an interrupt (stopped before a size failed: a lower bound)",
               "disturbed": "a disturbed machine (the next size was disturbed twice: re-run on a quiet machine)"
               }[cap.limited_by]
    return CapacitySection(run=run, headline=headline, lockstep_needs=cap.lockstep_needs, judged_by=cap.judged_by,
                           processes=_processes(cap.processes) if cap.processes is not None else None,
                           limited_by=limited, cost=cost, energy=energy,
                           per_session=per_session, admission=admission, notes=cap.notes, probes=rows,
                           predicted=predicted_rows, figure=_figure(run, cap, budget_ms))


def capacity_sections(session: Session) -> list[CapacitySection]:
    budget = session.scenario.frame_budget_ms
    return [_section(r.name, r.metrics.capacity, budget) for r in session.runs
            if r.metrics is not None and r.metrics.capacity is not None]


def capacity_markdown(session: Session) -> list[str]:
    """summary.md's capacity lines: both figures, each with what can deploy it, and the join's stall."""
    lines: list[str] = []
    for section in capacity_sections(session):
        lines += ["", f"Capacity of {section.run}:"]
        if section.processes is not None:
            lines.append(f"- {section.processes.headline} ({section.processes.judged_by}); {section.processes.cost}")
        lines.append(f"- {section.headline}: {section.lockstep_needs} ({section.judged_by or '-'}); {section.cost}")
        if section.admission != "-":
            lines.append(f"- {section.admission}")
    return lines

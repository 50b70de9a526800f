"""The report's capacity section: sessions in lockstep that stay real time, the search, the cost, the planner's
prediction for every GPU of the table (decided in the session; rendered here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import matplotlib.pyplot as plt

from harness.records.capacity import CapacityResult
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
class CapacitySection:
    run: str
    headline: str
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


def _cost(cap: CapacityResult) -> tuple[str, str]:
    c = cap.cost
    if c is None:
        return ("no price for this device: give `capacity.gpu_hour_usd` or `harness run --gpu-hour-usd`", "-")
    per = ("-" if c.per_conversation_hour_usd is None
           else f"${c.per_conversation_hour_usd:.4f} per conversation-hour")
    cost = f"{per} = ${c.gpu_hour_usd:g} per hour / {c.sessions} sessions (price: {c.price_source})"
    energy = (f"{c.energy_wh_per_conversation_hour:.2f} Wh per conversation-hour "
              f"({c.energy_j_per_audio_s:.1f} J per second of audio, whole device, / {c.sessions})"
              if c.energy_wh_per_conversation_hour is not None else (c.energy_note or "-"))
    return cost, energy


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
        admission = (f"joining slot {a.slot} at tick {a.at_tick}: reset {a.reset_ms:.1f} ms + {a.warmup_steps} warm-up "
                     f"steps; the admitting tick took {', '.join(f'{t:.0f}' for t in a.tick_ms)} ms "
                     f"({a.late_ticks} late for every session)")
    cost, energy = _cost(cap)
    predicted_rows = [{"gpu": g.gpu, "vram": f"{g.vram_bytes / GIB:.0f}", "sessions": g.sessions_by_memory,
                       "per_session": f"{g.per_session_bytes / GIB:.2f}", "fixed": f"{g.fixed_bytes / GIB:.1f}",
                       "floor": _ms(g.floor_ms_at_max),
                       "by_floor": "-" if g.sessions_by_floor is None else str(g.sessions_by_floor)}
                      for g in cap.predicted_gpus]
    headline = (f"{cap.max_realtime_sessions} session(s) in real time on {cap.device}"
                + (f": tick p50 {cap.tick_p50_ms:.1f} ms, p99 {cap.tick_p99_ms:.1f} ms against a "
                   f"{cap.deadline_ms:g} ms deadline" if cap.tick_p99_ms is not None else "")
                + (f", peak memory {_mib(cap.peak_memory_bytes)} MiB" if cap.peak_memory_bytes else ""))
    limited = {"time": "time (the next size misses the deadline)", "memory": "memory (the next size does not fit)",
               "max_sessions": "the search's max_sessions (every size tried passed)",
               "failed": "a failure (see the probes)"}[cap.limited_by]
    return CapacitySection(run=run, headline=headline, limited_by=limited, cost=cost, energy=energy,
                           per_session=per_session, admission=admission, notes=cap.notes, probes=rows,
                           predicted=predicted_rows, figure=_figure(run, cap, budget_ms))


def capacity_sections(session: Session) -> list[CapacitySection]:
    budget = session.scenario.frame_budget_ms
    return [_section(r.name, r.metrics.capacity, budget) for r in session.runs
            if r.metrics is not None and r.metrics.capacity is not None]

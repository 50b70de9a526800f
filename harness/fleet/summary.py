"""One machine's line in fleet.json, from its results.json (or from why there are none), and the buyer's order."""

from __future__ import annotations

import math
from typing import Optional

from harness.records.capacity import CapacityResult
from harness.records.exits import MEANING
from harness.records.fleet import FleetMachine
from harness.records.schema import Session

# `harness run` exit statuses (README): 0 all ok or skipped, 1 a run failed, 2 invalid input, 130 interrupted.
_EXIT_MEANING = {int(code): text for code, text in MEANING.items()}


def _best(session: Session) -> tuple[Optional[str], Optional[float]]:
    """The recommended deployment when GO; otherwise the fastest ok run by p99 (what comes closest)."""
    verdict = session.verdict
    if verdict is not None and verdict.recommended is not None:
        return verdict.recommended.run, verdict.recommended.p99_ms
    measured = [r for r in session.runs if r.status == "ok" and r.metrics is not None]
    if not measured:
        return None, None
    fastest = min(measured, key=lambda r: r.metrics.ms_per_step.p99)  # type: ignore[union-attr]
    return fastest.name, fastest.metrics.ms_per_step.p99  # type: ignore[union-attr]


def _capacities(session: Session) -> list[CapacityResult]:
    return [r.metrics.capacity for r in session.runs
            if r.status == "ok" and r.metrics is not None and r.metrics.capacity is not None]


def _deployable(session: Session) -> tuple[Optional[int], Optional[str], Optional[float]]:
    """Server processes per machine (the stock deployment) of the capacity run that holds most, how it was found,
    and its cost per conversation-hour."""
    found = [c.processes for c in _capacities(session) if c.processes is not None]
    if not found:
        return None, None, None
    best = max(found, key=lambda p: p.max_realtime_processes)
    return best.max_realtime_processes, best.how, best.cost.per_conversation_hour_usd if best.cost else None


def _lockstep(session: Session) -> tuple[Optional[int], Optional[float]]:
    """The largest lockstep batch any capacity run measured (needs a batching server), and its cost."""
    found = _capacities(session)
    if not found:
        return None, None
    best = max(found, key=lambda c: c.max_realtime_sessions)
    return best.max_realtime_sessions, best.cost.per_conversation_hour_usd if best.cost else None


def machine_from_session(session: Session, base: FleetMachine) -> FleetMachine:
    """Fill `base` (node, scenario, status, paths) with what the machine's results say."""
    machine = session.machine
    gpus = sorted({g.name for g in machine.gpus})
    best, p99 = _best(session)
    verdict = None if session.verdict is None else session.verdict.decision
    processes, how, cost = _deployable(session)
    lockstep, lockstep_cost = _lockstep(session)
    counts = {status: sum(1 for r in session.runs if r.status == status) for status in ("ok", "failed", "skipped")}
    return base.model_copy(update={
        "hostname": base.hostname or machine.hostname,
        "fingerprint": machine.fingerprint,
        "gpu": ", ".join(gpus) if gpus else None,
        "driver": machine.nvidia_driver,
        "torch": machine.packages.get("torch"),
        "verdict": verdict,
        "headline": session.verdict.headline if session.verdict is not None else "",
        "best": best,
        "p99_ms": p99,
        "server_processes": processes,
        "server_processes_how": how,
        "cost_per_conversation_hour": cost,
        "lockstep_sessions": lockstep,
        "lockstep_cost_per_conversation_hour": lockstep_cost,
        "runs_ok": counts["ok"],
        "runs_failed": counts["failed"],
        "runs_skipped": counts["skipped"],
    })


def exit_reason(exit_code: Optional[int], signal_name: Optional[str], wall_s: float, log_tail: str) -> str:
    """Why `harness run` on a node did not finish normally (empty when it did: exit 0 or 1)."""
    if signal_name is not None:
        return f"harness run was killed by {signal_name} after {wall_s:.1f} s"
    if exit_code in (0, 1):
        return ""
    meaning = _EXIT_MEANING.get(exit_code or 0, "an error")
    last = [line for line in log_tail.strip().splitlines() if line.strip()][-3:]
    detail = f": {' | '.join(last)}" if last else ""
    return f"harness run exited with status {exit_code} ({meaning}){detail}"


def _finite_or_inf(value: Optional[float]) -> float:
    return math.inf if value is None or not math.isfinite(value) else value


def buyer_order(machines: list[FleetMachine]) -> list[FleetMachine]:
    """GO first, then NO-GO, then machines without a verdict; within each, cheapest per conversation-hour as
    deployed (price / server processes: what the shipped servers run), then the most server processes, then
    lowest p99, then by name (a stable order). The lockstep figure never orders machines: no shipped server
    runs a lockstep batch."""
    rank = {"GO": 0, "INCONCLUSIVE": 1, "RE-RUN": 1, "NO-GO": 2, None: 3}
    return sorted(machines, key=lambda m: (m.scenario, rank[m.verdict], m.status != "ok",
                                           _finite_or_inf(m.cost_per_conversation_hour),
                                           -(m.server_processes or 0),
                                           _finite_or_inf(m.p99_ms), m.hostname, m.node_id or ""))

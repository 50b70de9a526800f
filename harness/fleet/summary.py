"""One machine's line in fleet.json, from its results.json (or from why there are none), and the buyer's order."""

from __future__ import annotations

import math
from typing import Optional

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


def _capacity(session: Session) -> tuple[Optional[int], Optional[float]]:
    """The largest real-time session count any capacity run measured, and its cost per conversation-hour."""
    found = [r.metrics.capacity for r in session.runs
             if r.status == "ok" and r.metrics is not None and r.metrics.capacity is not None]
    if not found:
        return None, None
    best = max(found, key=lambda c: c.max_realtime_sessions)
    return best.max_realtime_sessions, best.cost.per_conversation_hour_usd if best.cost else None


def machine_from_session(session: Session, base: FleetMachine) -> FleetMachine:
    """Fill `base` (node, scenario, status, paths) with what the machine's results say."""
    machine = session.machine
    gpus = sorted({g.name for g in machine.gpus})
    best, p99 = _best(session)
    verdict = None if session.verdict is None else ("GO" if session.verdict.go else "NO-GO")
    capacity, cost = _capacity(session)
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
        "capacity": capacity,
        "cost_per_conversation_hour": cost,
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
    """GO first, then NO-GO, then machines without a verdict; within each, cheapest per conversation-hour,
    then lowest p99, then by name (a stable order for the same results)."""
    rank = {"GO": 0, "NO-GO": 1, None: 2}
    return sorted(machines, key=lambda m: (m.scenario, rank[m.verdict], m.status != "ok",
                                           _finite_or_inf(m.cost_per_conversation_hour),
                                           _finite_or_inf(m.p99_ms), m.hostname, m.node_id or ""))

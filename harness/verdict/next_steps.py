"""Recommendations after a verdict that is not GO (MLPerf LoadGen's "Recommendations"): the cheapest changes
predicted to settle or pass, cheapest first, each with the exact command or figure that backs it.

Order of cost: more frames of a run that may already be real time (minutes of this machine), a re-run of a run the
machine disturbed, the remedy of a run that failed, the measured configuration closest to the deadline, then another
GPU that the planner predicts real time (a purchase). Only what the records hold is said: nothing is invented.
"""

from __future__ import annotations

import shlex
from typing import Optional

from harness.records.plan import RunPlan
from harness.records.scenario import Criteria
from harness.records.schema import RunResult, Session
from harness.records.verdict import RunAssessment, Verdict
from harness.verdict.screen import DECIDED_BEFORE

MAX_STEPS = 6  # a card, not a catalogue: the rest is in the per-run sections


def _command(session: Session, run: str, frames: Optional[int] = None) -> str:
    scenario = session.scenario_path or f"<{session.scenario.name}.yaml>"
    parts = ["harness", "run", scenario, "--only", run] + (["--frames", str(frames)] if frames else [])
    return shlex.join(parts)


def _frames_to_settle(a: RunAssessment, run: Optional[RunResult]) -> Optional[int]:
    """Frames one run must measure to settle a run that may be real time: the record's (harness.verdict.assess
    fills `frames_needed` with the frames its command measures); for verdicts written before it, the frames measured
    plus the validity's frames to certify. None: nothing to settle, or more frames cannot settle it."""
    if a.outcome not in ("not enough evidence", ""):
        return None
    if a.frames_needed:
        return a.frames_needed
    v = a.validity
    if a.outcome or a.realtime or v is None or not v.valid or v.certified or not v.frames_to_certify:
        return None
    if run is None or run.metrics is None or any(r.startswith("p99") or "underrun" in r for r in a.reasons):
        return None  # the evidence already shows a miss: more frames cannot turn it
    return run.metrics.frames + v.frames_to_certify


def settle_command(session: Session, a: RunAssessment) -> str:
    """The command that settles a run the evidence cannot judge yet: the record's, else more frames of it."""
    run = next((r for r in session.runs if r.name == a.name), None)
    total = _frames_to_settle(a, run)
    return a.settle or (_command(session, a.name, total) if total else "")


def _more_frames(session: Session, assessed: list[RunAssessment], runs: dict[str, RunResult]) -> list[str]:
    """Runs that may be real time: one longer run settles each (at the late share seen so far)."""
    out = []
    for a in assessed:
        run = runs.get(a.name)
        total = _frames_to_settle(a, run)
        if total is None or run is None or run.metrics is None:
            continue
        minutes = total * run.metrics.frame_budget_ms / 60_000
        out.append(f"measure {a.name} longer: {total} frames in one run (it measured {run.metrics.frames}; about "
                   f"{minutes:.0f} min of audio) would settle it at the late share seen so far: "
                   f"{settle_command(session, a)}")
    return out


def _reruns(session: Session, verdict: Verdict, assessed: list[RunAssessment]) -> list[str]:
    names = verdict.rerun or [a.name for a in assessed if a.rerun or a.outcome == "re-run"]
    return [f"re-run {name} on a quiet machine (the machine was disturbed while it measured): "
            f"{_command(session, name)}" for name in names]


def _fixes(runs: list[RunResult]) -> list[str]:
    """A failed run whose cause is known: its remedy, once per cause."""
    seen: dict[str, list[str]] = {}
    remedies: dict[str, str] = {}
    for run in runs:
        if run.status == "failed" and run.diagnosis is not None and run.diagnosis.remedy:
            seen.setdefault(run.diagnosis.kind, []).append(run.name)
            remedies[run.diagnosis.kind] = run.diagnosis.remedy
    return [f"fix {', '.join(names)} ({kind}): {remedies[kind]}" for kind, names in seen.items()]


def _closest(assessed: list[RunAssessment], runs: dict[str, RunResult], criteria: Criteria) -> list[str]:
    """The measured configuration nearest the deadline that missed it: how far it is."""
    missed = []
    for a in assessed:
        run = runs.get(a.name)
        if run is None or run.metrics is None or a.realtime or _frames_to_settle(a, run) is not None:
            continue
        deadline = criteria.deadline_ms(run.metrics.frame_budget_ms)
        p99 = run.metrics.ms_per_step.p99
        if p99 > deadline:
            missed.append((p99 / deadline, a.name, p99, deadline))
    if not missed:
        return []
    ratio, name, p99, deadline = min(missed)
    on_gpu = runs[name].config.device.value == "cuda"
    options = ("another configuration (compile, CUDA graphs, a smaller dtype) or a faster GPU" if on_gpu else
               "another configuration (a smaller dtype, torch_threads) or a GPU (harness plan SCENARIO --gpu "
               "NAME predicts one)")
    return [f"the closest measured configuration, {name}, needs p99 {ratio - 1:.0%} lower ({p99:.1f} ms against "
            f"the {deadline:g} ms deadline): {options}"]


def _planned_gpu(session: Session) -> list[str]:
    """The scenario's target GPU, when the planner predicted it (Session.target_plans): its best predicted run."""
    plans: list[RunPlan] = [p for p in session.target_plans
                            if p.feasible and p.predicted_step_ms is not None and p.predicted_realtime == "yes"]
    if not plans:
        return []
    best = min(plans, key=lambda p: p.predicted_step_ms.p50)  # type: ignore[union-attr]
    band = best.predicted_step_ms
    assert band is not None
    return [f"on {best.target}: the planner predicts {best.run} real time, step p50 {band.p50:.1f} ms (band "
            f"{band.low:.0f}-{band.high:.0f} ms; a prediction, not a measurement): run this scenario there "
            f"(harness plan {shlex.quote(session.scenario_path or session.scenario.name)} shows every run)"]


def _alternatives(session: Session, verdict: Verdict) -> list[str]:
    """A GO decided on the frame recommended first (certify: decision): the other frames' screened best, which were
    not measured on, named as uncertified alternatives with the command that settles each."""
    runs = {r.name: r for r in session.runs}
    chosen = runs.get(verdict.ranked[0]) if verdict.ranked else None
    out = []
    for a in verdict.assessments:
        run = runs.get(a.name)
        if run is None or run.metrics is None or not run.screening.startswith(DECIDED_BEFORE):
            continue
        where = f" (the GO was decided on the {chosen.config.serving.label})" if chosen is not None else ""
        command = settle_command(session, a)
        out.append(f"uncertified alternative with the {run.config.serving.label}: {a.name}, screened only "
                   f"({run.metrics.frames} frames, p99 {run.metrics.ms_per_step.p99:.1f} ms){where}"
                   + (f"; to certify it: {command}" if command else ""))
    return out


def next_steps(session: Session, verdict: Verdict, criteria: Criteria) -> list[str]:
    """The Recommendations of a verdict; for a GO (its card shows the deploy command) only the uncertified
    alternatives of the frames after the GO's (harness.verdict.screen.DECIDED_BEFORE)."""
    if verdict.decision == "GO" or verdict.go:
        return _alternatives(session, verdict)[:MAX_STEPS]
    assessed = verdict.assessments
    runs = {r.name: r for r in session.runs}
    steps = (_more_frames(session, assessed, runs) + _reruns(session, verdict, assessed) + _fixes(session.runs)
             + _closest(assessed, runs, criteria) + _planned_gpu(session))
    return steps[:MAX_STEPS]

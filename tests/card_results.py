"""Fabricated results folders for the decision card: a GO, a NO-GO (with the planner's view of another GPU) and an
INCONCLUSIVE, each decided by the real verdict and written by the real report (results.json beside report.html)."""

from __future__ import annotations

from pathlib import Path

from harness.records.plan import RunPlan, StepBand
from harness.records.scenario import Scenario
from harness.records.schema import Session
from harness.records.store import write_session
from harness.records.verdict import Verdict
from harness.report.render import criteria_of, write_report
from harness.verdict.next_steps import next_steps
from harness.verdict.recommend import decide
from tests.unit.test_verdict import _run, _session

SCENARIO_PATH = "scenarios/rtx5090.yaml"


def _scenario(session: Session, name: str) -> Session:
    session.scenario = Scenario(name=name, preset="personaplex-7b", frame_budget_ms=80.0, frames=400, warmup_frames=10)
    session.scenario_path = SCENARIO_PATH
    return session


def go_session() -> Session:
    return _scenario(_session([
        _run("cuda-bf16-compile-graphs", [30.0 + (i % 7) for i in range(4700)], compile=True, cuda_graphs=True),
        _run("cuda-bf16-eager", [45.0 + (i % 5) for i in range(4700)]),
        _run("cuda-fp16-eager", [95.0 + (i % 3) for i in range(300)], dtype="float16"),
        _run("cuda-bf16-offload-eager", None, status="skipped"),
    ]), "rtx5090-go")


def no_go_session() -> Session:
    session = _scenario(_session([
        _run("cuda-bf16-eager", [95.0 + (i % 3) for i in range(600)]),
        _run("cuda-fp16-eager", [88.0 + (i % 5) for i in range(600)], dtype="float16"),
        _run("cuda-bf16-offload-eager", None, status="skipped"),
    ]), "rtx5090-nogo")
    session.target_plans = [RunPlan(run="cuda-bf16-compile-graphs", device="cuda", target="NVIDIA H100 SXM (80 GiB)",
                                    host_peak_bytes=2 * 2**30, items=[], bytes_per_step=17 * 2**30, feasible=True,
                                    predicted_step_ms=StepBand(p50=24.0, low=15.0, high=38.0),
                                    predicted_realtime="yes")]
    return session


def inconclusive_session() -> Session:
    """300 clean frames: the p99 meets the deadline, but 30 blocks cannot certify a 1% late share."""
    return _scenario(_session([
        _run("cuda-bf16-compile-graphs", [40.0 + (i % 4) for i in range(300)], compile=True, cuda_graphs=True),
        _run("cuda-fp16-eager", [95.0 + (i % 3) for i in range(300)], dtype="float16"),
    ]), "rtx5090-inconclusive")


def decided(session: Session, decision: str) -> Verdict:
    """The real verdict; while the verdict room does not yet say INCONCLUSIVE itself, the record is set to it (the
    card renders whatever the record holds) and its next steps are computed for it."""
    verdict = decide(session, criteria_of(session))
    if verdict.decision != decision:
        verdict = verdict.model_copy(update={"decision": decision, "go": decision == "GO",
                                             "headline": decision + ":" + verdict.headline.split(":", 1)[1]})
        verdict = verdict.model_copy(update={"next_steps": next_steps(session, verdict, criteria_of(session))})
    return verdict


def write(session: Session, decision: str, folder: Path) -> Path:
    session.verdict = decided(session, decision)
    write_session(session, folder)
    write_report(session, session.verdict, folder)
    return folder


CASES = {"GO": go_session, "NO-GO": no_go_session, "INCONCLUSIVE": inconclusive_session}

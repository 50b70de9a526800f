"""Certify what decides (fabricated sessions, the real verdict): a GO decided on the frame recommended first names
the other frames' screened best as uncertified alternatives; the plan reads an earlier run's cold starts only when
it measured the same scenario on the target's hardware."""

from __future__ import annotations

from harness.plan.scenario_plan import measured_costs
from harness.plan.target import PlanTarget
from harness.records.schema import ColdStart
from harness.verdict.recommend import decide
from harness.verdict.screen import DECIDED_BEFORE
from tests.unit.test_verdict import _run, _session


def _decided_session():  # noqa: ANN202 - a Session
    server = _run("server", [30.0 + (i % 7) for i in range(4700)], serving="personaplex-server")
    moshi = _run("moshi", [25.0 + (i % 5) for i in range(600)], serving="moshi-server")
    model = _run("model", [20.0 + (i % 5) for i in range(600)], serving="model")
    for run in (moshi, model):
        run.screen_frames = 600
        run.screening = f"{DECIDED_BEFORE} PersonaPlex server frame (server certified), ..."
    session = _session([server, moshi, model])
    session.machine.gpus = []  # a CPU-only record: no server lacks kernels here
    return session


def test_a_go_on_the_preferred_frame_names_the_others_as_uncertified_alternatives() -> None:
    session = _decided_session()
    verdict = decide(session, session.scenario.criteria)
    assert verdict.go and verdict.ranked == ["server"], verdict.headline
    outcomes = {a.name: a.outcome for a in verdict.assessments}
    assert outcomes["moshi"] == outcomes["model"] == "not enough evidence", "faster per step, but not certified"
    steps = [s for s in verdict.next_steps if s.startswith("uncertified alternative")]
    assert len(steps) == 2 and all("--only" in s and "--frames" in s for s in steps), verdict.next_steps


def test_a_go_without_screened_alternatives_has_no_next_steps() -> None:
    session = _decided_session()
    for run in session.runs:
        run.screening = "screened only: slower than server beyond the screen's noise"
    verdict = decide(session, session.scenario.criteria)
    assert verdict.go and verdict.next_steps == []


def test_cold_starts_are_read_only_from_the_same_scenario_on_the_same_hardware() -> None:
    session = _decided_session()
    session.machine.gpus = _session([]).machine.gpus  # measured on an RTX 5090
    session.runs[0].metrics.cold_start = ColdStart(import_s=2.0, load_s=5.0, warmup_s=30.0, total_s=37.0,
                                                   synthetic=True)
    rtx = PlanTarget(label="RTX 5090", gpu_name="NVIDIA GeForce RTX 5090", bandwidth_gbs=1792.0)
    costs, why = measured_costs(rtx, session, "reports/x", "s")
    assert why == "" and set(costs.measured) == {"server"} and costs.device_gbs == 1792.0
    h100 = PlanTarget(label="H100", gpu_name="NVIDIA H100 SXM")
    costs, why = measured_costs(h100, session, "reports/x", "s")
    assert not costs.measured and "not the target" in why
    costs, why = measured_costs(rtx, session, "reports/x", "another")
    assert not costs.measured and "scenario s, not another" in why

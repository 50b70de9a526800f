"""The report's planner rows: the predicted step (band) beside the measured p50, where both exist."""

from __future__ import annotations

from harness.knowledge.gpus import find_gpu
from harness.plan.calibrate import calibration_architecture
from harness.plan.planner import compare
from harness.plan.predict import predict_step
from harness.plan.target import from_spec
from harness.records.plan import RunPlan
from harness.report.planner import predicted_vs_measured
from harness.report.render import criteria_of, summary_markdown
from harness.verdict.recommend import decide
from tests.unit.test_verdict import _run, _session


def _plan(run_name: str, band_run) -> RunPlan:  # noqa: ANN001
    step = predict_step(calibration_architecture(), band_run.config, from_spec(find_gpu("rtx5090"), None))
    assert step is not None
    return RunPlan(run=run_name, device="cuda", target="t", host_peak_bytes=1, items=[], bytes_per_step=1,
                   feasible=True, predicted_step_ms=step.band, step_parts=step.parts, predicted_realtime=step.realtime)


def test_predicted_beside_measured_in_the_summary() -> None:
    measured = _run("cuda-bf16-eager-graphs", [40.0 + (i % 5) for i in range(500)], cuda_graphs=True)
    plain = _run("no-plan", [50.0] * 300)
    measured.plan = _plan(measured.name, measured)
    measured.plan_check = compare(measured.plan, measured.metrics)  # type: ignore[arg-type]
    check = measured.plan_check
    assert check.measured_step_p50_ms == measured.metrics.ms_per_step.p50  # type: ignore[union-attr]
    assert check.step_error == check.predicted_step_ms.p50 / check.measured_step_p50_ms - 1  # type: ignore[union-attr]
    assert check.step_in_band == (check.predicted_step_ms.low <= check.measured_step_p50_ms  # type: ignore[union-attr]
                                  <= check.predicted_step_ms.high)  # type: ignore[union-attr]
    rows = predicted_vs_measured([measured, plain])
    assert [r["run"] for r in rows] == [measured.name]  # only where both exist
    assert "graphs" in rows[0]["parts"]
    session = _session([measured, plain])
    text = summary_markdown(session, decide(session, criteria_of(session)))
    assert "predicted beside measured" in text and f"| {measured.name} | {rows[0]['predicted']} |" in text

"""The report's planner rows: the step time the planner predicted for this machine beside what was measured."""

from __future__ import annotations

from typing import Optional

from harness.records.plan import RunPlan, StepBand
from harness.records.schema import RunResult


def band_text(band: Optional[StepBand]) -> str:
    return "-" if band is None else f"{band.p50:.1f} ({band.low:.1f}-{band.high:.1f})"


def parts_text(plan: Optional[RunPlan]) -> str:
    parts = plan.step_parts if plan else None
    if parts is None:
        return "-"
    if parts.mode == "cpu":
        return (f"cpu: Mimi {parts.measured_ms:.1f} ms (timed here), LM ops {parts.host_ms:.1f} ms ({parts.host_ops} "
                f"ops x {parts.host_op_us:.2f} us), LM bytes/FLOPs {parts.gpu_ms:.1f} ms; {parts.combine}")
    return (f"{parts.mode}: GPU/compute {parts.gpu_ms:.1f} ms ({parts.kernels} kernels), host {parts.host_ms:.1f} ms "
            f"({parts.host_ops} ops x {parts.host_op_us:.2f} us); {parts.combine}")


def predicted_vs_measured(runs: list[RunResult]) -> list[dict]:
    """One row per run that has both a prediction and a measurement (ok runs on this machine)."""
    rows = []
    for run in runs:
        check = run.plan_check
        if check is None or check.predicted_step_ms is None or check.measured_step_p50_ms is None:
            continue
        rows.append({"run": run.name, "predicted": band_text(check.predicted_step_ms),
                     "measured": f"{check.measured_step_p50_ms:.1f}",
                     "error": f"{check.step_error:+.0%}" if check.step_error is not None else "-",
                     "in_band": "yes" if check.step_in_band else "no", "parts": parts_text(run.plan)})
    return rows

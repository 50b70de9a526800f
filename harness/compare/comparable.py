"""Which measurement settings must match before two runs' timings say anything about the code.

A run measured at batch 4, with other weights or another frame budget is a different experiment:
its step time differs for reasons no regression test should report. Such pairs are refused as
"not comparable", naming each differing field, unless the user names the field as an intended
difference (`--allow-difference batch_size`, e.g. to measure what a larger batch costs).
"""

from __future__ import annotations

from typing import Any, Optional

from harness.records.schema import RunResult, Session

# Scenario fields (Session.scenario) that change what one frame measures. `repeat` and `criteria`
# are absent on purpose: more processes or another GO rule do not change a frame's cost.
SCENARIO_FIELDS = {
    "preset": "preset",
    "frames": "frames",
    "duration": "duration",
    "warmup_frames": "warmup",
    "batch_size": "batch_size",
    "torch_threads": "torch_threads",
    "frame_budget_ms": "frame_budget_ms",
    "pace": "pace",
    "serving": "serving",
}
# Fields of the resolved run (RunResult.config).
# `serving`: the frame measured (bare core or a server's); its default follows the server that would deploy a run,
# so a baseline of the core and a current server frame are different experiments.
RUN_FIELDS = ("device", "dtype", "quantize", "offload", "offload_fraction", "compile", "cuda_graphs", "serving")
FIELDS = (*SCENARIO_FIELDS.values(), "weights", *RUN_FIELDS)


def _show(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(getattr(value, "value", value))


def _differ(label: str, before: Any, after: Any, allowed: set[str]) -> Optional[str]:
    if before == after or label in allowed:
        return None
    return f"{label} {_show(before)} -> {_show(after)}"


def session_differences(baseline: Session, current: Session, allowed: set[str]) -> list[str]:
    """Scenario-level settings that differ. A field one side does not record (an older results file) is
    not judged: absent is unknown, not different."""
    out = []
    for key, label in SCENARIO_FIELDS.items():
        if key in baseline.scenario and key in current.scenario:
            found = _differ(label, baseline.scenario[key], current.scenario[key], allowed)
            if found:
                out.append(found)
    found = _differ("weights", baseline.weights, current.weights, allowed)
    if found:
        out.append(found)
    return out


def run_differences(baseline: RunResult, current: RunResult, allowed: set[str]) -> list[str]:
    out = []
    for field in RUN_FIELDS:
        if field == "offload_fraction" and _show(baseline.config.offload) == "none" \
                and _show(current.config.offload) == "none":
            continue  # the fraction means nothing when nothing is offloaded
        found = _differ(field, getattr(baseline.config, field), getattr(current.config, field), allowed)
        if found:
            out.append(found)
    return out

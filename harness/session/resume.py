"""`--resume DIR`: which runs of the earlier session are kept, and which are dropped and why.

Nothing measured is dropped silently. A run of the earlier session is kept when it is still in the scenario and
was measured the way the scenario now asks (same measurement key, same hardware): with `--only X` the other runs
stay in results.json as they were. What is not kept is listed with the reason: the run left the scenario, its
settings changed (it is measured again), or it failed or was skipped before and is not run this time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from harness.records.config import RunConfig
from harness.records.schema import RunResult, Session


@dataclass
class ResumePlan:
    kept: list[RunResult] = field(default_factory=list)  # carried into the new session as they are
    dropped: list[str] = field(default_factory=list)  # "name: why", for the console


def plan_resume(previous: Session, scenario_runs: list[tuple[RunConfig, str]], selected: set[str],
                same_measurement: Callable[[RunResult, RunConfig], bool]) -> ResumePlan:
    """Runs of `previous` to carry over untouched (scenario runs not selected this time, measured the same way:
    harness.records.identity), and every earlier run that will not be in the new session, with why.
    `scenario_runs`: each run of the scenario as it will run here (`device: auto` resolved) with the name the
    scenario gives it (what `--only` selects). Selected runs are reused or measured again by the runner itself."""
    plan = ResumePlan()
    earlier = {r.name: r for r in previous.runs}
    current = {run.name: (run, configured_name) for run, configured_name in scenario_runs}
    for name, old in earlier.items():
        if name not in current:
            if old.status == "ok":
                plan.dropped.append(f"{name}: no longer in the scenario (its measurement is not carried over)")
            continue
        run, configured_name = current[name]
        same = same_measurement(old, run)
        if configured_name in selected:
            if old.status == "ok" and not same:
                plan.dropped.append(f"{name}: measured with other settings than the scenario now asks: "
                                    "measured again")
            continue
        if old.status != "ok":
            plan.dropped.append(f"{name}: {old.status} before and not selected (--only): run it to record it again")
        elif not same:
            plan.dropped.append(f"{name}: measured with other settings than the scenario now asks, and not "
                                "selected (--only): run it to measure it again")
        else:
            plan.kept.append(old.model_copy(update={"resumed": True}))
    return plan


def scenario_order(runs: list[RunResult], scenario_runs: list[RunConfig]) -> list[RunResult]:
    """The session's runs in the scenario's order (kept and new ones interleaved as the scenario lists them);
    `scenario_runs` as they run here (`device: auto` resolved)."""
    order = {r.name: i for i, r in enumerate(scenario_runs)}
    return sorted(runs, key=lambda r: order.get(r.name, len(order)))

"""A GO found at pace: fast is run again, paced like a call (harness.verdict.confirm judges it)."""

from __future__ import annotations

from harness.records.scenario import Pace, Scenario
from harness.records.schema import RunResult, Session
from harness.verdict.confirm import confirm_frames
from harness.verdict.recommend import decide

__all__ = ["confirm_frames", "to_confirm"]


def to_confirm(session: Session, scenario: Scenario) -> RunResult | None:
    """The run to confirm at pace: realtime: the GO of a fast-paced session, unless it was resumed (measured before)
    or a capacity search (its GO stands for a lockstep batch, not a single paced call); None: nothing to confirm
    (the verdict then says the GO was not confirmed)."""
    if scenario.pace is not Pace.fast or confirm_frames(scenario) == 0:
        return None
    verdict = decide(session, scenario.criteria)
    best = next((r for r in session.runs if verdict.go and r.name == verdict.ranked[0]), None)
    if best is None or best.resumed or best.config.capacity is not None:
        return None
    return best

"""A GO found at pace: fast, confirmed at pace: realtime.

At pace: fast each frame starts when the previous one ends: the processor never idles, its clocks stay up and its
caches warm. A call delivers a frame every 80 ms and the server idles in between, so a configuration can pass back
to back and miss its deadlines paced (clocks ramping down between frames, work migrating across cores). The
confirmation run is the recommended configuration again, paced; it is judged by the same timing rules (p99 under
the deadline, no underruns at the jitter buffer, the machine not disturbed), not by the certificate, which the
fast run already gave.
"""

from __future__ import annotations

import math
from typing import Optional

from harness.records.scenario import Criteria, Scenario
from harness.records.schema import Session
from harness.records.verdict import Confirmation
from harness.verdict.assess import assess_run


def confirm_frames(scenario: Scenario) -> int:
    """Frames of the confirmation run: the scenario's, else enough for the criteria's length (not for the
    certificate, which the fast run gave)."""
    if scenario.confirm_frames is not None:
        return scenario.confirm_frames
    c = scenario.criteria
    return max(c.min_frames, math.ceil(c.min_seconds * 1000.0 / scenario.frame_budget_ms - 1e-9))


def confirmation(session: Session, criteria: Criteria, recommended: str) -> Optional[Confirmation]:
    """The confirmation of `recommended`, or None when none ran (for it) or it was interrupted (its frames are
    kept in the record, never judged)."""
    run = session.confirmation
    if run is None or run.name != recommended or run.status == "interrupted":
        return None  # an interrupted confirmation measured too little to judge: the GO stands unconfirmed
    if run.status != "ok" or run.metrics is None:
        return Confirmation(run=recommended, confirmed=False, reasons=[f"the confirmation run {run.status}: "
                                                                       f"{run.reason}"])
    timing = criteria.timing_only()
    assessed = assess_run(run, session, timing)
    m = run.metrics
    return Confirmation(run=recommended, confirmed=assessed.realtime, frames=m.frames, p99_ms=m.ms_per_step.p99,
                        underruns=assessed.playback.at(criteria.buffer_ms(m.frame_budget_ms)).underruns
                        if assessed.playback and assessed.playback.at(criteria.buffer_ms(m.frame_budget_ms)) else 0,
                        late_frames=assessed.validity.late_frames if assessed.validity else 0,
                        late_start_frames=m.late_start_frames, reasons=list(assessed.reasons))

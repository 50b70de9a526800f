"""The size search both capacity figures use (sessions in lockstep, server processes): pure, sizes in, probes out;
and the late-share certificate both report beside their timing rule."""

from __future__ import annotations

from typing import Callable, Optional, Protocol, TypeVar

from harness.records.capacity import LimitedBy
from harness.records.scenario import Criteria
from harness.records.verdict import RunAssessment
from harness.stats.certify import certify_step_times


class Probe(Protocol):
    verdict: str


P = TypeVar("P", bound=Probe)


class OutOfTime(Exception):
    """Raised by `measure` when the session's time limit (`harness run --time-limit`) leaves no time for a probe."""


def search(max_size: int, fits: Callable[[int], Optional[str]], measure: Callable[[int], P],
           unfit: Callable[[int, str], P]) -> tuple[list[P], int, LimitedBy]:
    """Double from 1 until a size fails, then bisect. `fits(n)` is None when the planner says n fits, else why
    not (then `unfit(n, why)` records it without running); `measure(n)` runs a probe. Returns the probes in the
    order tried, the largest real-time size, and what stopped it: the first failing size's kind, or
    `max_sessions` when the largest allowed size passed, or `time_limit` when `measure` raised OutOfTime (what was
    measured is kept: the largest size that passed below any that failed, a lower bound)."""
    probes: list[P] = []
    verdicts: dict[int, str] = {}

    def passes(n: int) -> bool:
        why = fits(n)
        probe = unfit(n, why) if why is not None else measure(n)
        probes.append(probe)
        verdicts[n] = probe.verdict
        return probe.verdict == "realtime"

    try:
        return _double_then_bisect(max_size, passes, verdicts, probes)
    except OutOfTime:
        ceiling = min((n for n, v in verdicts.items() if v != "realtime"), default=None)
        best = max((n for n, v in verdicts.items() if v == "realtime" and (ceiling is None or n < ceiling)), default=0)
        return probes, best, "time_limit"


def _double_then_bisect(max_size: int, passes: Callable[[int], bool], verdicts: dict[int, str],
                        probes: list[P]) -> tuple[list[P], int, LimitedBy]:
    best, failing, n = 0, None, 1
    while True:
        if not passes(n):
            failing = n
            break
        best = n
        if n >= max_size:
            break
        n = min(2 * n, max_size)
    if failing is not None:
        while failing - best > 1:
            mid = (best + failing) // 2
            if passes(mid):
                best = mid
            else:
                failing = mid
    if failing is None:
        return probes, best, "max_sessions"
    limited: LimitedBy = {"late": "time", "memory": "memory",  # type: ignore[assignment]
                          "disturbed": "disturbed"}.get(verdicts[failing], "failed")
    return probes, best, limited


def late_certificate(segments: list[list[float]], budget_ms: float, criteria: Criteria) -> tuple[bool, Optional[int]]:
    """(certified, more ticks that would certify it; None: more cannot at this late rate) of the late share of
    one probe's frames, one segment per process (harness.stats.certify, the GO rule's certificate)."""
    certificate = certify_step_times(segments, criteria.deadline_ms(budget_ms), criteria.burst_frames,
                                     criteria.late_frame_target, criteria.confidence)
    return certificate.certified, (None if certificate.certified else certificate.frames_to_certify)


def timing_passed(assessed: RunAssessment) -> tuple[bool, list[str]]:
    """(passed, reasons) of the timing rule from an assessment under `criteria.timing_only()`: its only possible
    lack of evidence is the late share's certificate, reported beside the probe, so "not enough evidence" passed."""
    if assessed.outcome == "not enough evidence":
        return True, []
    return assessed.realtime, list(assessed.reasons)

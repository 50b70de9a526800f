"""One run judged on its own: real time (certified), not real time (the evidence shows a miss), not enough
evidence (it may be real time: how many more frames settle it, and the command), re-run (only a measured
disturbance of the machine explains the failure), or nothing to judge (failed, skipped, invalid).

MLPerf's LoadGen keeps "the measurement is not valid (too short, too few queries)" apart from "the system missed
its constraint"; so does this: a run too short to certify its late share is never called NOT real time for that.
"""

from __future__ import annotations

import math
import shlex
from typing import Optional

from harness.records.scenario import Criteria, Pace
from harness.records.schema import RunResult, Session
from harness.records.verdict import Playback, RunAssessment, Validity
from harness.stats.certify import clean_frames_to_certify, frames_to_reach
from harness.stats.percentiles import percentile
from harness.stats.samples import sample_problem, values_problem
from harness.verdict.disturbed import frame_disturbance
from harness.verdict.fidelity import fidelity_problem
from harness.verdict.playback import playback, simulate
from harness.verdict.validity import assess_validity, burst_words


def _memory(run: RunResult, session: Session) -> tuple[Optional[float], str]:
    m = run.metrics
    assert m is not None
    if m.cuda is not None and m.cuda.total_bytes:
        return m.cuda.peak_reserved_bytes / m.cuda.total_bytes, f"{m.cuda.device_name} memory"
    total = session.machine.ram_total_bytes
    return (m.peak_rss_bytes / total if total else None), "host RAM"


def _not_run(run: RunResult, out: RunAssessment) -> RunAssessment:
    why = run.diagnosis.cause if run.diagnosis else run.reason
    out.reasons.append(f"{run.status}: {why}")
    frames = len(run.metrics.samples_ms) if run.metrics is not None else 0
    if run.status == "skipped":
        out.outcome = "skipped"
    elif run.status == "interrupted":
        # Its frames are kept, never judged: a run that did not finish is no evidence either way.
        out.outcome = "not enough evidence"
        out.reasons[-1] = f"interrupted after {frames} measured frames (kept, not judged): {why}"
    else:
        out.outcome = "failed"
    return out


def assess_run(run: RunResult, session: Session, criteria: Criteria) -> RunAssessment:
    out = RunAssessment(name=run.name, status=run.status)
    if run.status != "ok" or run.metrics is None:
        return _not_run(run, out)
    m = run.metrics
    invalid = sample_problem(m.samples_ms) or values_problem(
        {name: getattr(m.ms_per_step, name) for name in ("p50", "p90", "p99", "max", "mean")}, "stored percentiles")
    if invalid is None and not (math.isfinite(m.frame_budget_ms) and m.frame_budget_ms > 0):
        invalid = f"frame budget {m.frame_budget_ms} ms is not a finite positive duration"
    if invalid is not None:  # garbage in: nothing is concluded from it, least of all GO
        out.reasons.append(f"invalid measurement: {invalid}")
        out.outcome = "invalid"
        return out
    process_frames = [p.frames for p in m.processes]
    out.validity, out.playback, timing = _timing(m.samples_ms, m.frame_budget_ms, criteria, process_frames)
    out.memory_fraction, out.memory_of = _memory(run, session)
    memory = []
    if out.memory_fraction is not None and out.memory_fraction > 1 - criteria.memory_headroom:
        memory.append(f"uses {out.memory_fraction:.0%} of {out.memory_of} (keep {criteria.memory_headroom:.0%} "
                      "free)")
    v = out.validity
    missed = timing + memory + ([] if timing else _late_share_missed(v))
    evidence = [] if missed else _evidence_lacking(v, criteria)
    out.reasons = missed + evidence
    out.outcome = "not real time" if missed else "not enough evidence" if evidence else "real time"
    unfaithful = fidelity_problem(run, session.scenario.fidelity)  # fast, but no longer saying what bf16 says
    if unfaithful:  # not recommended, and no number of frames (nor a quieter machine) can change that
        out.reasons.append(unfaithful)
        if out.outcome != "not real time":
            out.outcome = "not faithful"
    if out.outcome == "not enough evidence":
        out.frames_needed, out.settle, line = _settle(run, session, criteria, v)
        out.reasons.append(line)
    disturbance = frame_disturbance(m, run.config.device.value)
    if disturbance.frames:
        out.disturbed_frames = len(disturbance.frames)
        # The same judgement with the stolen time taken out of the disturbed frames: if that passes, the frames
        # that failed it are the machine's, not the configuration's (a disturbance that cannot explain the failure
        # leaves the verdict as it was).
        corrected, _, without = _timing(disturbance.corrected, m.frame_budget_ms, criteria, process_frames)
        failed_on_time = bool(timing) or bool(_late_share_missed(v)) or (v.valid and not v.certified)
        explained = corrected.certified or not v.valid or bool(m.stopped_early)
        if failed_on_time and not without and not memory and not unfaithful and explained:
            out.rerun = True
            out.outcome = "re-run"
            out.reasons = [f"the machine was disturbed during {len(disturbance.frames)} frames: re-run "
                           f"({disturbance.evidence}; without the time the worker could not run, its frames meet "
                           "the budget)"] + memory
        else:
            out.flags.append(f"the machine was disturbed during {len(disturbance.frames)} frames "
                             f"({disturbance.evidence})")
    out.flags += disturbance.findings  # the configuration's own waits and oversubscription: kept, never excused
    out.realtime = out.outcome == "real time"
    out.flags += _flags(run, out.validity)
    return out


def _timing(samples: list[float], budget: float, criteria: Criteria,
            process_frames: list[int]) -> tuple[Validity, Playback, list[str]]:
    """Validity, playback and the timing reasons of a series: the p99 rule and underruns at the buffer."""
    deadline = criteria.deadline_ms(budget)
    buffer = criteria.buffer_ms(budget)
    v = assess_validity(samples, budget, criteria, process_frames)
    result = playback(samples, budget)
    reasons = []
    p99 = percentile(samples, 99)
    if p99 > deadline:
        reasons.append(f"p99 {p99:.1f} ms > {deadline:g} ms deadline")
    at = simulate_at(result, buffer, samples, budget)
    if at:
        reasons.append(f"{at} underruns with a {buffer:g} ms jitter buffer")
    return v, result, reasons


def _late_share_missed(v: Validity) -> list[str]:
    """The late share shown above the target, or measured at or above it (more frames cannot certify it)."""
    if v.certified or v.frames_to_certify is not None or not v.frames:
        return []
    shown = "shown above" if v.shown_above else "measured at or above"
    return [f"late share {v.late_rate:.2%} ({v.late_frames}/{v.frames} frames > {v.deadline_ms:g} ms) {shown} the "
            f"{v.target:.0%} allowed"]


def _evidence_lacking(v: Validity, criteria: Criteria) -> list[str]:
    """Why the run, on time so far, is not yet certified real time (empty when it is)."""
    out = [n for n in v.notes if n.startswith("only")]
    if not v.certified:
        out.append(f"late share not certified yet: P(step > {v.deadline_ms:g} ms) <= {v.late_rate_upper:.2%} at "
                   f"{v.confidence:.0%} confidence ({v.late_frames}/{v.frames} late, "
                   f"{burst_words(v.burst_frames, v.frame_budget_ms)}), target {v.target:.0%}")
    return out


def frames_to_settle(v: Validity, criteria: Criteria, budget_ms: float) -> Optional[int]:
    """Frames one run must measure, at this run's late share and burst length, to be certified and long enough."""
    share = v.late_frames / v.frames if v.frames else 0.0
    certify = frames_to_reach(share, v.burst_frames, criteria.late_frame_target, criteria.confidence) \
        if v.frames else clean_frames_to_certify(v.burst_frames, criteria.late_frame_target, criteria.confidence)
    if certify is None:
        return None
    by_seconds = math.ceil(criteria.min_seconds * 1000.0 / budget_ms - 1e-9)
    return max(certify, criteria.min_frames, by_seconds)


def _settle(run: RunResult, session: Session, criteria: Criteria, v: Validity) -> tuple[Optional[int], str, str]:
    """How many frames settle it, the exact command, and the line that says both with the time it takes."""
    m = run.metrics
    assert m is not None
    frames = frames_to_settle(v, criteria, m.frame_budget_ms)
    if frames is None:
        return None, "", "more frames cannot certify it at this late share"
    per_frame_ms = max(m.ms_per_step.p50, m.frame_budget_ms) if session.scenario.pace is Pace.realtime \
        else m.ms_per_step.p50
    minutes = frames * per_frame_ms / 60_000.0
    command = " ".join(shlex.quote(a) for a in ("harness", "run", session.scenario_path or "SCENARIO", "--only",
                                                run.name, "--frames", str(frames)))
    return frames, command, (f"{frames} frames in one run settle it (about {minutes:.1f} min of frames at its p50, "
                             f"plus load and warmup): {command}")


def _flags(run: RunResult, validity: Validity) -> list[str]:
    """Worth knowing either way: they do not decide real time, but they qualify the figures."""
    m = run.metrics
    assert m is not None
    flags = []
    if not validity.stable:
        flags.append(f"unstable: step times vary by {validity.cv:.0%} of their mean (p99/p50 = "
                     f"{validity.tail_ratio:.2f})")
    if run.engine is not None and run.engine.recompiles_measured:
        flags.append(f"torch.compile recompiled {run.engine.recompiles_measured} time(s) during the measured frames: "
                     "those frames include compiling (raise warmup_frames)")
    if run.engine is not None and run.engine.cuda_graphs_captured_measured:
        flags.append(f"{run.engine.cuda_graphs_captured_measured} CUDA graph(s) were captured during the measured "
                     "frames: those frames include the capture (raise warmup_frames)")
    if m.stopped_early:
        flags.append(m.stopped_early)
    if run.config.resolved_from == "auto":
        flags.append(f"device auto resolved to {run.config.device.value}")
    if m.late_start_frames:
        flags.append(f"{m.late_start_frames} paced frame(s) started late (the previous frame overran)")
    summary = m.telemetry_summary
    if summary is not None and summary.throttled:
        onset = f" after {summary.throttle_onset_s:.0f} s" if summary.throttle_onset_s is not None else ""
        flags.append(f"throttled{onset}: {', '.join(summary.throttle_reasons)}")
    if m.soak is not None:
        flags += m.soak.notes
    return flags


def simulate_at(result: Playback, buffer_ms: float, samples: list[float], frame_ms: float) -> int:
    outcome = result.at(buffer_ms) or simulate(samples, frame_ms, buffer_ms)
    return outcome.underruns

"""GO / NO-GO: which measured configurations are real time here, the best of them, and why not otherwise."""

from __future__ import annotations

import math
from typing import Optional

from harness.contract.presets import PRESETS
from harness.knowledge.deploy import SERVERS
from harness.records.config import DType, Offload, Quantize, RunConfig, Serving
from harness.records.scenario import Criteria, Pace
from harness.records.schema import RunResult, Session
from harness.records.verdict import Deployment, Playback, Ranking, RunAssessment, Validity, Verdict
from harness.stats.percentiles import percentile
from harness.stats.samples import sample_problem, values_problem
from harness.verdict.confirm import confirmation
from harness.verdict.deploy import deployable_by, serving_order, software_gap
from harness.verdict.disturbed import frame_disturbance
from harness.verdict.next_steps import next_steps
from harness.verdict.playback import playback, simulate
from harness.verdict.serving import advice, compare_serving, latency_budget
from harness.verdict.validity import assess_validity


def _memory(run: RunResult, session: Session) -> tuple[Optional[float], str]:
    m = run.metrics
    assert m is not None
    if m.cuda is not None and m.cuda.total_bytes:
        return m.cuda.peak_reserved_bytes / m.cuda.total_bytes, f"{m.cuda.device_name} memory"
    total = session.machine.ram_total_bytes
    return (m.peak_rss_bytes / total if total else None), "host RAM"


def assess_run(run: RunResult, session: Session, criteria: Criteria) -> RunAssessment:
    out = RunAssessment(name=run.name, status=run.status)
    if run.status != "ok" or run.metrics is None:
        why = run.diagnosis.cause if run.diagnosis else run.reason
        out.reasons.append(f"{run.status}: {why}")
        return out
    m = run.metrics
    invalid = sample_problem(m.samples_ms) or values_problem(
        {name: getattr(m.ms_per_step, name) for name in ("p50", "p90", "p99", "max", "mean")}, "stored percentiles")
    if invalid is None and not (math.isfinite(m.frame_budget_ms) and m.frame_budget_ms > 0):
        invalid = f"frame budget {m.frame_budget_ms} ms is not a finite positive duration"
    if invalid is not None:  # garbage in: nothing is concluded from it, least of all GO
        out.reasons.append(f"invalid measurement: {invalid}")
        return out
    process_frames = [p.frames for p in m.processes]
    out.validity, out.playback, timing = _timing(m.samples_ms, m.frame_budget_ms, criteria, process_frames)
    out.memory_fraction, out.memory_of = _memory(run, session)
    memory = []
    if out.memory_fraction is not None and out.memory_fraction > 1 - criteria.memory_headroom:
        memory.append(f"uses {out.memory_fraction:.0%} of {out.memory_of} (keep {criteria.memory_headroom:.0%} "
                      "free)")
    v = out.validity
    out.reasons = timing + memory
    # Last: a run that misses the budget is not real time however long it ran.
    if not v.valid:
        out.reasons.append("measurement too short to conclude: " + "; ".join(n for n in v.notes
                                                                              if n.startswith("only")))
    elif not v.certified and not out.reasons:
        out.reasons.append(_not_certified(v))
    disturbance = frame_disturbance(m, run.config.device.value)
    if disturbance.frames:
        out.disturbed_frames = len(disturbance.frames)
        # The same judgement with the stolen time taken out of the disturbed frames: if that passes, the frames
        # that failed it are the machine's, not the configuration's (a disturbance that cannot explain the failure
        # leaves the verdict as it was).
        corrected, _, without = _timing(disturbance.corrected, m.frame_budget_ms, criteria, process_frames)
        failed_on_time = bool(timing) or (v.valid and not v.certified)
        if failed_on_time and not without and (corrected.certified or not v.valid or m.stopped_early):
            out.rerun = True
            out.reasons = [f"the machine was disturbed during {len(disturbance.frames)} frames: re-run "
                           f"({disturbance.evidence}; without the time the worker could not run, its frames meet "
                           "the budget)"] + [r for r in out.reasons if r not in timing and not r.startswith("late")]
        else:
            out.flags.append(f"the machine was disturbed during {len(disturbance.frames)} frames "
                             f"({disturbance.evidence})")
    out.realtime = not out.reasons
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
        reasons.append(f"p99 {p99:.1f} ms > {deadline:g} ms ({budget:g} ms budget less {criteria.headroom:.0%} "
                       "headroom)")
    at = simulate_at(result, buffer, samples, budget)
    if at:
        reasons.append(f"{at} underruns with a {buffer:g} ms jitter buffer")
    return v, result, reasons


def _not_certified(v: Validity) -> str:
    more = (f"{v.frames_to_certify} more frames would certify it" if v.frames_to_certify
            else "more frames cannot certify it at this late rate")
    return (f"late-frame rate not certified: P(step > {v.deadline_ms:g} ms) <= {v.late_rate_upper:.2%} at "
            f"{v.confidence:.0%} confidence for late frames in bursts of up to {v.burst_frames} frames, target "
            f"{v.target:.0%}; {more}")


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


def deployment(run: RunResult, criteria: Criteria, software_note: str = "") -> Deployment:
    cfg: RunConfig = run.config
    assert run.metrics is not None
    env = {}
    if not cfg.compile:
        env["NO_TORCH_COMPILE"] = "1"
    if not cfg.cuda_graphs:
        env["NO_CUDA_GRAPH"] = "1"
    if cfg.serving is Serving.personaplex_server:
        moshi = [f"PersonaPlex (github NVIDIA/personaplex): {SERVERS[cfg.serving.value].command}"
                 + (" --cpu-offload" if cfg.offload is Offload.auto else "")]
    else:
        moshi = [f"{SERVERS['moshi-server'].command} --device {cfg.device.value}"
                 + (" --half" if cfg.dtype is DType.float16 else "")]
    prefill = run.metrics.prefill
    if cfg.serving is Serving.moshi_server and prefill is not None:
        moshi.append(f"moshi 0.2.13's server steps no persona prompt: PersonaPlex needs its prefill added per call "
                     f"({prefill.steps} LM steps, {prefill.seconds:.2f} s measured here, as NVIDIA's server steps it)")
    if cfg.serving is Serving.model:
        moshi.append("measured as the bare core (serving: model): a server adds Opus and host copies every frame; "
                     "measure serving: moshi-server for what this command runs")
    if cfg.dtype is DType.float32:
        moshi.append("moshi.server has no float32 flag: load the LM with dtype=torch.float32")
    if cfg.quantize is Quantize.int8:
        moshi.append('int8: set "quantize": true in the model\'s config.json (moshi builds QLinear layers); never '
                     "cast the model's dtype afterwards")
    if cfg.quantize.harness_only:
        moshi.append(f"{cfg.quantize.value}: neither moshi's nor NVIDIA's server loads these weights; the harness's "
                     "layers (harness/worker/engine/quantized.py) replace each LM nn.Linear after loading")
    if cfg.offload is Offload.cpu:
        moshi.append(f"the harness's tuned offload ({cfg.offload_fraction:.0%} of the temporal layers through "
                     "accelerate) is not a server option; PersonaPlex's --cpu-offload places layers automatically "
                     "(measure it with offload: auto)")
    settings = {"device": cfg.device.value, "dtype": cfg.dtype.value, "quantize": cfg.quantize.value,
                "offload": cfg.offload.value if cfg.offload is Offload.none else f"cpu ({cfg.offload_fraction:.0%})",
                "torch.compile": "on" if cfg.compile else "off", "CUDA graphs": "on" if cfg.cuda_graphs else "off",
                "frame measured": cfg.serving.value}
    return Deployment(run=run.name, summary=cfg.describe(), settings=settings, env=env, moshi=moshi,
                      deployable_by=deployable_by(cfg), frame=cfg.serving.label, software_note=software_note,
                      p99_ms=run.metrics.ms_per_step.p99, buffer_ms=criteria.buffer_ms(run.metrics.frame_budget_ms))


def _no_go_reasons(session: Session, assessed: list[RunAssessment]) -> list[str]:
    ok = [a for a in assessed if a.status == "ok"]
    reasons = []
    if not ok:
        counts: dict[str, list[str]] = {}
        for a in assessed:
            counts.setdefault(a.reasons[0] if a.reasons else a.status, []).append(a.name)
        reasons.append("no configuration could be measured on this machine")
        reasons += [f"{len(names)} run(s) {why}" for why, names in counts.items()]
    else:
        reasons += [f"{a.name}: {a.reasons[0]}" for a in ok if a.reasons]
        broken = [a for a in assessed if a.status != "ok"]
        if broken:
            reasons.append(f"{len(broken)} other run(s) did not measure: " + ", ".join(b.name for b in broken))
    return reasons


def model_label(session: Session) -> str:
    """What ran, said plainly: a scaled preset is not PersonaPlex-7B, and synthetic weights are not the model's."""
    name = session.scenario.preset
    preset = PRESETS.get(name)
    what = {"personaplex-7b": "PersonaPlex-7B", "moshi-7b": "Moshi-7B"}.get(name, f"preset {name}")
    if preset is not None and preset.scaled:
        what += " (a scaled preset, not PersonaPlex-7B)"
    if session.weights == "synthetic":
        what += " with synthetic weights"
    return what


def _serving_findings(session: Session, criteria: Criteria) -> dict:
    latency = session.scenario.latency
    comparisons = compare_serving(session)
    budgets = [b for b in (latency_budget(r, criteria, latency) for r in session.runs) if b is not None]
    return {"latency": budgets, "serving": comparisons, "advice": advice(comparisons)}


def decide(session: Session, criteria: Criteria) -> Verdict:
    verdict = _decide(session, criteria)
    word = verdict.headline.split(":", 1)[0]
    decision = word if word in ("GO", "NO-GO", "INCONCLUSIVE", "RE-RUN") else ("GO" if verdict.go else "NO-GO")
    return verdict.model_copy(update={**_serving_findings(session, criteria), "decision": decision,
                                      "next_steps": verdict.next_steps or next_steps(session, verdict, criteria)})


def rank_by_frame(session: Session, assessed: list[RunAssessment]) -> list[Ranking]:
    """Real-time runs grouped by the frame they measured, each group by p99 then memory; groups in the order their
    servers are recommended (verdict.deploy.serving_order)."""
    by_name = {r.name: r for r in session.runs}
    groups: dict[Serving, list[RunAssessment]] = {}
    for a in assessed:
        if a.realtime:
            groups.setdefault(by_name[a.name].config.serving, []).append(a)
    out = []
    for serving in serving_order(session.scenario.preset):
        members = sorted(groups.get(serving, []), key=lambda a: (
            by_name[a.name].metrics.ms_per_step.p99, a.memory_fraction or 0.0))  # type: ignore[union-attr]
        if members:
            out.append(Ranking(serving=serving.value, runs=[a.name for a in members]))
    return out


def _choose(session: Session, rankings: list[Ranking]) -> tuple[Optional[Ranking], str]:
    """The first frame whose server runs on this GPU as shipped; failing that the first frame, with what its
    software needs. Notes on the frames passed over are written into their rankings."""
    by_name = {r.name: r for r in session.runs}
    for ranking in rankings:
        gap = software_gap(by_name[ranking.runs[0]], session)
        if gap is None:
            return ranking, ""
        ranking.note = f"not recommended: {gap}"
    if not rankings:
        return None, ""
    first = rankings[0]
    note, first.note = first.note.removeprefix("not recommended: "), ""
    return first, note


def _apart(chosen: Ranking, rankings: list[Ranking], session: Session) -> list[str]:
    """What the ranking leaves out on purpose: real-time runs of other frames, each frame said once."""
    by_name = {r.name: r for r in session.runs}
    lines = []
    for other in rankings:
        if other is chosen:
            continue
        best = by_name[other.runs[0]]
        why = other.note or ("a different frame does different work per frame, so its p99 is not ranked against "
                             f"the {Serving(chosen.serving).label}'s")
        lines.append(f"{len(other.runs)} real-time run(s) measured the {Serving(other.serving).label} (best "
                     f"{best.name}, p99 {best.metrics.ms_per_step.p99:.1f} ms): {why}")  # type: ignore[union-attr]
    return lines


def _decide(session: Session, criteria: Criteria) -> Verdict:
    assessed = [assess_run(run, session, criteria) for run in session.runs]
    by_name = {r.name: r for r in session.runs}
    rankings = rank_by_frame(session, assessed)
    chosen, software_note = _choose(session, rankings)
    machine = f"{session.machine.cpu_model}" + (f" + {session.machine.gpus[0].name}" if session.machine.gpus else "")
    what = model_label(session)
    if chosen is not None:
        best = by_name[chosen.runs[0]]
        top = next(a for a in assessed if a.name == best.name)
        dep = deployment(best, criteria, software_note)
        v = top.validity
        assert best.metrics is not None and v is not None
        budget = best.metrics.frame_budget_ms
        confirmed = confirmation(session, criteria, best.name)
        paced = session.scenario.pace is Pace.realtime
        if confirmed is not None and not confirmed.confirmed:
            word = "RE-RUN" if confirmed.reasons and confirmed.reasons[0].startswith("the machine was disturbed") \
                else "NO-GO"
            return Verdict(go=False, headline=f"{word}: {best.name} runs {what} in real time at pace: fast but not at "
                                              f"pace: realtime on this machine ({machine})",
                           reasons=[f"{best.name} at pace: realtime: {r}" for r in confirmed.reasons]
                           + _no_go_reasons(session, assessed),
                           assessments=assessed, confirmation=confirmed, rerun=[a.name for a in assessed if a.rerun])
        if paced:
            pace_line = "measured at pace: realtime (each frame when its audio has arrived)"
        elif confirmed is not None:
            pace_line = (f"confirmed at pace: realtime: p99 {confirmed.p99_ms:.1f} ms over {confirmed.frames} paced "
                         f"frames, {confirmed.underruns} underruns")
        else:
            pace_line = ("found at pace: fast and NOT confirmed at pace: realtime (confirm_frames: 0, or no "
                         "confirmation run): a call paces frames every 80 ms")
        realtime = sum(len(r.runs) for r in rankings)
        reasons = [f"p99 {dep.p99_ms:.1f} ms per {budget:g} ms frame (RTF {best.metrics.rtf:.2f}) measured with the "
                   f"{dep.frame}, zero underruns with a {dep.buffer_ms:g} ms buffer, {top.memory_fraction or 0:.0%} of "
                   f"{top.memory_of}",
                   f"late frames certified: P(step > {v.deadline_ms:g} ms) <= {v.late_rate_upper:.2%} "
                   f"at {v.confidence:.0%} confidence over {v.frames} frames, for late frames in bursts of up to "
                   f"{v.burst_frames} frames ({v.late_blocks} of {v.blocks} blocks late)",
                   pace_line,
                   f"{realtime} of {len(assessed)} configurations are real time; ranked against the same frame only "
                   f"({len(chosen.runs)} run(s))"]
        reasons += _apart(chosen, rankings, session)
        reasons += [f"{a.name}: {a.reasons[0]}" for a in assessed if a.rerun]
        if software_note:
            reasons.append(f"no frame of a server that runs on this GPU as shipped is real time: {software_note}")
        return Verdict(go=True, headline=f"GO: {best.name} runs {what} in real time on this machine ({machine}), "
                                         f"measured with the {dep.frame}",
                       reasons=reasons, recommended=dep, ranked=list(chosen.runs), rankings=rankings,
                       assessments=assessed, rerun=[a.name for a in assessed if a.rerun], confirmation=confirmed)
    rerun = [a for a in assessed if a.rerun]
    if rerun:
        frames = sum(a.disturbed_frames for a in rerun)
        names = ", ".join(a.name for a in rerun)
        return Verdict(go=False, headline=f"RE-RUN: the machine was disturbed during {frames} frames ({names}): re-run "
                                          f"on a quiet machine to judge {what} ({machine})",
                       reasons=_no_go_reasons(session, assessed), assessments=assessed, rerun=[a.name for a in rerun])
    return Verdict(go=False, headline=f"NO-GO: no configuration runs {what} in real time on this machine ({machine})",
                   reasons=_no_go_reasons(session, assessed), assessments=assessed)

"""GO / NO-GO: which measured configurations are real time here, the best of them, and why not otherwise."""

from __future__ import annotations

from typing import Optional

from harness.contract.presets import PRESETS
from harness.knowledge.deploy import SERVERS
from harness.records.config import DType, Offload, Quantize, RunConfig, Serving
from harness.records.scenario import Criteria, Pace
from harness.records.schema import RunResult, Session
from harness.records.verdict import Deployment, Ranking, RunAssessment, Verdict
from harness.verdict.assess import assess_run
from harness.verdict.confirm import confirmation
from harness.verdict.deploy import deployable_by, serving_order, software_gap
from harness.verdict.fidelity import fidelity_note
from harness.verdict.next_steps import next_steps
from harness.verdict.serving import advice, compare_serving, latency_budget
from harness.verdict.validity import burst_words


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
                      p99_ms=run.metrics.ms_per_step.p99, buffer_ms=criteria.buffer_ms(run.metrics.frame_budget_ms),
                      fidelity=fidelity_note(run))


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
        reasons += [f"{a.name}: {a.outcome}: {'; '.join(a.reasons)}" for a in ok if a.reasons]
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
    return verdict.model_copy(update={**_serving_findings(session, criteria),
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
    rerun = [a.name for a in assessed if a.rerun]
    if chosen is not None:
        return _go(session, criteria, assessed, rankings, chosen, software_note, what, machine)
    if rerun:
        frames = sum(a.disturbed_frames for a in assessed if a.rerun)
        return Verdict(go=False, decision="RE-RUN",
                       headline=f"RE-RUN: the machine was disturbed during {frames} frames ({', '.join(rerun)}): "
                                f"re-run on a quiet machine to judge {what} ({machine})",
                       reasons=_no_go_reasons(session, assessed), assessments=assessed, rerun=rerun)
    pending = sorted((a for a in assessed if a.outcome == "not enough evidence"),
                     key=lambda a: (a.frames_needed is None, _p99(by_name[a.name])))
    if pending:
        best = pending[0]
        how = (f"{best.frames_needed} frames settle it: {best.settle}" if best.frames_needed else
               "it did not finish")
        return Verdict(go=False, decision="INCONCLUSIVE",
                       headline=f"INCONCLUSIVE: no configuration is certified real time on this machine ({machine}) "
                                f"yet, and {len(pending)} may be ({what}); best candidate {best.name}: {how}",
                       reasons=_no_go_reasons(session, assessed), assessments=assessed)
    return Verdict(go=False, decision="NO-GO",
                   headline=f"NO-GO: no configuration runs {what} in real time on this machine ({machine})",
                   reasons=_no_go_reasons(session, assessed), assessments=assessed)


def _p99(run: RunResult) -> float:
    return run.metrics.ms_per_step.p99 if run.metrics is not None else float("inf")


def _go(session: Session, criteria: Criteria, assessed: list[RunAssessment], rankings: list[Ranking],
        chosen: Ranking, software_note: str, what: str, machine: str) -> Verdict:
    """GO for the best certified run of the chosen frame, unless its confirmation at real-time pace failed."""
    by_name = {r.name: r for r in session.runs}
    best = by_name[chosen.runs[0]]
    top = next(a for a in assessed if a.name == best.name)
    dep = deployment(best, criteria, software_note)
    v = top.validity
    assert best.metrics is not None and v is not None
    budget = best.metrics.frame_budget_ms
    confirmed = confirmation(session, criteria, best.name)
    rerun = [a.name for a in assessed if a.rerun]
    if confirmed is not None and not confirmed.confirmed:
        disturbed = bool(confirmed.reasons) and confirmed.reasons[0].startswith("the machine was disturbed")
        word = "RE-RUN" if disturbed else "NO-GO"
        return Verdict(go=False, decision=word,
                       headline=f"{word}: {best.name} runs {what} in real time at pace: fast but not at pace: realtime "
                                f"on this machine ({machine})",
                       reasons=[f"{best.name} at pace: realtime: {r}" for r in confirmed.reasons]
                       + _no_go_reasons(session, assessed),
                       assessments=assessed, confirmation=confirmed, rerun=rerun)
    if session.scenario.pace is Pace.realtime:
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
               f"late frames certified: P(step > {v.deadline_ms:g} ms) <= {v.late_rate_upper:.2%} at "
               f"{v.confidence:.0%} confidence over {v.frames} frames ({v.late_frames} late), assuming late frames "
               f"come in {burst_words(v.burst_frames, budget)}",
               pace_line,
               f"{realtime} of {len(assessed)} configurations are certified real time; ranked against the same frame "
               f"only ({len(chosen.runs)} run(s))"]
    reasons += _apart(chosen, rankings, session)
    reasons += [f"{a.name}: {a.reasons[0]}" for a in assessed if a.rerun]
    if software_note:
        reasons.append(f"no frame of a server that runs on this GPU as shipped is real time: {software_note}")
    return Verdict(go=True, decision="GO",
                   headline=f"GO: {best.name} runs {what} in real time on this machine ({machine}), measured with "
                            f"the {dep.frame}",
                   reasons=reasons, recommended=dep, ranked=list(chosen.runs), rankings=rankings,
                   assessments=assessed, rerun=rerun, confirmation=confirmed)

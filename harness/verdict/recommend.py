"""GO / NO-GO: which measured configurations are real time here, the best of them, and why not otherwise."""

from __future__ import annotations

from typing import Optional

from harness.records.schema import RunResult, Session
from harness.records.verdict import Deployment, Playback, RunAssessment, Verdict
from harness.scenario.model import Criteria, DType, Offload, Quantize, RunConfig
from harness.verdict.playback import playback, simulate
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
    out.validity = assess_validity(m.samples_ms, m.frame_budget_ms, criteria)
    out.playback = playback(m.samples_ms, m.frame_budget_ms)
    limit = (1 - criteria.headroom) * m.frame_budget_ms
    if m.ms_per_step.p99 > limit:
        out.reasons.append(f"p99 {m.ms_per_step.p99:.1f} ms > {limit:.0f} ms ({m.frame_budget_ms:g} ms budget "
                           f"less {criteria.headroom:.0%} headroom)")
    at = simulate_at(out.playback, criteria.jitter_buffer_ms, m.samples_ms, m.frame_budget_ms)
    if at:
        out.reasons.append(f"{at} underruns with a {criteria.jitter_buffer_ms:g} ms jitter buffer")
    out.memory_fraction, out.memory_of = _memory(run, session)
    if out.memory_fraction is not None and out.memory_fraction > 1 - criteria.memory_headroom:
        out.reasons.append(f"uses {out.memory_fraction:.0%} of {out.memory_of} (keep {criteria.memory_headroom:.0%} "
                           "free)")
    if not out.validity.valid:  # last: a run that misses the budget is not real time however long it ran
        out.reasons.append("measurement too short to conclude: " + "; ".join(
            n for n in out.validity.notes if n.startswith("only")))
    out.realtime = not out.reasons
    summary = m.telemetry_summary
    if summary is not None and summary.throttled:
        onset = f" after {summary.throttle_onset_s:.0f} s" if summary.throttle_onset_s is not None else ""
        out.flags.append(f"throttled{onset}: {', '.join(summary.throttle_reasons)}")
    if m.soak is not None:
        out.flags += m.soak.notes
    return out


def simulate_at(result: Playback, buffer_ms: float, samples: list[float], frame_ms: float) -> int:
    outcome = result.at(buffer_ms) or simulate(samples, frame_ms, buffer_ms)
    return outcome.underruns


def deployment(run: RunResult, criteria: Criteria) -> Deployment:
    cfg: RunConfig = run.config
    assert run.metrics is not None
    env = {}
    if not cfg.compile:
        env["NO_TORCH_COMPILE"] = "1"
    if not cfg.cuda_graphs:
        env["NO_CUDA_GRAPH"] = "1"
    moshi = [f"python -m moshi.server --device {cfg.device.value}" + (" --half" if cfg.dtype is DType.float16 else "")]
    if cfg.dtype is DType.float32:
        moshi.append("moshi.server has no float32 flag: load the LM with dtype=torch.float32")
    if cfg.quantize is Quantize.int8:
        moshi.append('int8: set "quantize": true in the model\'s config.json (moshi builds QLinear layers); never '
                     "cast the model's dtype afterwards")
    if cfg.offload is Offload.cpu:
        moshi.append(f"CPU offload: PersonaPlex's server --cpu-offload (accelerate); the harness offloaded "
                     f"{cfg.offload_fraction:.0%} of the temporal layers")
    settings = {"device": cfg.device.value, "dtype": cfg.dtype.value, "quantize": cfg.quantize.value,
                "offload": cfg.offload.value if cfg.offload is Offload.none else f"cpu ({cfg.offload_fraction:.0%})",
                "torch.compile": "on" if cfg.compile else "off", "CUDA graphs": "on" if cfg.cuda_graphs else "off"}
    return Deployment(run=run.name, summary=cfg.describe(), settings=settings, env=env, moshi=moshi,
                      p99_ms=run.metrics.ms_per_step.p99, buffer_ms=criteria.jitter_buffer_ms)


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
        reasons += [f"{a.name}: {a.reasons[0]}" for a in ok]
        broken = [a for a in assessed if a.status != "ok"]
        if broken:
            reasons.append(f"{len(broken)} other run(s) did not measure: " + ", ".join(b.name for b in broken))
    return reasons


def decide(session: Session, criteria: Criteria) -> Verdict:
    assessed = [assess_run(run, session, criteria) for run in session.runs]
    by_name = {r.name: r for r in session.runs}
    realtime = [a for a in assessed if a.realtime]
    ranked = sorted(realtime, key=lambda a: (by_name[a.name].metrics.ms_per_step.p99,  # type: ignore[union-attr]
                                             a.memory_fraction or 0.0))
    machine = f"{session.machine.cpu_model}" + (f" + {session.machine.gpus[0].name}" if session.machine.gpus else "")
    if ranked:
        best = by_name[ranked[0].name]
        dep = deployment(best, criteria)
        return Verdict(go=True, headline=f"GO: {best.name} runs PersonaPlex in real time on this machine ({machine})",
                       reasons=[f"p99 {dep.p99_ms:.1f} ms per 80 ms frame, zero underruns with a "
                                f"{dep.buffer_ms:g} ms buffer, {ranked[0].memory_fraction or 0:.0%} of "
                                f"{ranked[0].memory_of}", f"{len(ranked)} of {len(assessed)} configurations are "
                                "real time"],
                       recommended=dep, ranked=[a.name for a in ranked], assessments=assessed)
    return Verdict(go=False, headline=f"NO-GO: no configuration runs in real time on this machine ({machine})",
                   reasons=_no_go_reasons(session, assessed), assessments=assessed)

"""report.html (self-contained, jinja2 with autoescape) and summary.md, from a Session alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.contract.wire import QuantizationInfo
from harness.records.endpoint import EndpointResults
from harness.records.plan import RunPlan
from harness.records.scenario import Criteria
from harness.records.schema import ColdStart, FirstAudio, RunResult, Session
from harness.records.store import atomic_write_text
from harness.records.text import markdown_text
from harness.records.verdict import RunAssessment, Verdict
from harness.report.capacity import capacity_markdown, capacity_sections
from harness.report.card import build_card, card_markdown, outcome_of, short_reason
from harness.report.endpoint import endpoint_context, summary_line
from harness.report.exports import write_exports
from harness.report.fidelity import fidelity_context, fidelity_markdown
from harness.report.planner import band_text, predicted_vs_measured
from harness.report.plots import Figure, all_figures
from harness.verdict.deploy import deployable_by
from harness.verdict.next_steps import settle_command
from harness.verdict.recommend import model_label

GIB = 2**30
REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"


@dataclass
class RunRow:
    name: str
    status: str
    p50: str = "-"
    p99: str = "-"
    rtf: str = "-"
    frames: str = "-"
    late: str = "-"
    buffer: str = "-"
    memory: str = "-"
    realtime: bool = False
    why: list[str] = field(default_factory=list)
    outcome: str = ""
    memory_share: str = "-"
    settle: str = ""
    detail: Optional["RunDetail"] = None


@dataclass
class RunDetail:
    """The figures behind a row: where the time went before and during the measured frames."""

    name: str
    load_s: str
    warmup: str
    first_step_ms: str
    stages: str
    cuda_stages: str
    energy: str
    roofline: str
    validity: str
    engine: str
    prefill: str
    first_audio: str
    cold_start: str
    deployable: str


def _synthetic(flag: bool) -> str:
    return " (synthetic weights)" if flag else ""


def _first_audio(f: Optional[FirstAudio]) -> str:
    if f is None:
        return "-"
    return (f"{f.per_call_s:.2f} s = voice encode {f.voice_encode_s:.2f} + prefill {f.prefill_s:.2f} + first frame "
            f"{f.first_frame_s * 1e3:.0f} ms{_synthetic(f.synthetic)}")


def _cold_start(c: Optional[ColdStart]) -> str:
    if c is None:
        return "-"
    imports = f"imports {c.import_s:.1f} + " if c.import_s is not None else "imports not recorded + "
    return f"{c.total_s:.1f} s = {imports}load {c.load_s:.1f} + warmup {c.warmup_s:.1f}{_synthetic(c.synthetic)}"


def criteria_of(session: Session) -> Criteria:
    return session.scenario.criteria


def _gib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / GIB:.2f}"


def _memory_cell(run: RunResult) -> str:
    """Like for like: the allocator's peak against the allocator-only prediction, the device's used memory
    (context included) against the full prediction, host RSS against the host prediction."""
    m, check = run.metrics, run.plan_check
    assert m is not None
    parts = []
    if m.cuda is not None:
        predicted = f" ({_gib(check.predicted_device_bytes)})" if check and check.predicted_device_bytes else ""
        parts.append(f"{_gib(m.cuda.peak_allocated_bytes)}{predicted} GiB allocated")
        if m.cuda.device_used_bytes is not None:
            total = (f" ({_gib(check.predicted_device_total_bytes)})"
                     if check and check.predicted_device_total_bytes else "")
            parts.append(f"{_gib(m.cuda.device_used_bytes)}{total} GiB on the device")
    predicted_host = f" ({_gib(check.predicted_host_bytes)})" if check else ""
    parts.append(f"{_gib(m.peak_rss_bytes)}{predicted_host} GiB host")
    return "; ".join(parts)


def _row(run: RunResult, assessment: RunAssessment, session: Session) -> RunRow:
    row = RunRow(name=run.name, status=run.status, realtime=assessment.realtime, outcome=outcome_of(assessment),
                 why=[short_reason(r) for r in assessment.reasons] + assessment.flags,
                 settle=settle_command(session, assessment),
                 detail=_detail(run, assessment))
    m = run.metrics
    if m is None:
        kind = f" ({run.diagnosis.kind})" if run.diagnosis else ""
        row.why = [f"{run.status}{kind}: " + (run.diagnosis.cause if run.diagnosis else run.reason or "see below")]
        return row
    if assessment.memory_fraction is not None:
        row.memory_share = f"{assessment.memory_fraction:.0%} of {assessment.memory_of}"
    row.p50, row.p99, row.rtf = f"{m.ms_per_step.p50:.1f}", f"{m.ms_per_step.p99:.1f}", f"{m.rtf:.2f}"
    row.frames = str(m.frames) + (f" in {len(m.processes)} processes" if m.processes else "")
    if assessment.validity is not None:
        v = assessment.validity
        row.late = f"{v.late_frames}/{v.frames} (<= {v.late_rate_upper:.1%})"
    if assessment.playback is not None:
        clean = assessment.playback.smallest_clean_buffer_ms
        tried = assessment.playback.outcomes
        row.buffer = (f"none of {tried[0].buffer_ms:g}-{tried[-1].buffer_ms:g} ms" if clean is None
                      else f"{clean:g} ms")
    row.memory = _memory_cell(run)
    return row


def quantization_text(q: QuantizationInfo) -> str:
    """What the scheme did: the kernel path that ran, the LM's bytes, what it cost the weights in fidelity."""
    note = f" ({q.kernel_note})" if q.kernel_note else ""
    def size(n: int) -> str:
        return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 2**20:.1f} MiB"

    return (f"{q.scheme} weights via {q.kernel_path}{note}: LM {size(q.lm_bytes_before)} -> {size(q.lm_bytes_after)} "
            f"({q.linears} matmul weights), weight error {q.weight_rel_rms_error:.2%} relative RMS")


def _ms(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in values.items()) or "-"


def _detail(run: RunResult, assessment: RunAssessment) -> Optional[RunDetail]:
    m = run.metrics
    if m is None:
        return None
    t = m.telemetry_summary
    energy = (f"{t.joules_per_audio_second:.1f} J per second of audio" if t and t.joules_per_audio_second is not None
              else "not available" + (f" ({t.unavailable['gpu']})" if t and "gpu" in t.unavailable else ""))
    check = run.plan_check
    roofline = (f"{check.roofline_fraction:.2f} of the memory-bandwidth roofline (floor {check.step_floor_ms:.1f} ms)"
                if check and check.roofline_fraction is not None and check.step_floor_ms is not None else "-")
    v = assessment.validity
    validity = "-"
    if v is not None:
        more = ("certified" if v.certified else f"{v.frames_to_certify} more frames would certify"
                if v.frames_to_certify else "cannot be certified at this late rate")
        validity = (f"{v.late_frames} late (> {v.deadline_ms:g} ms) of {v.frames}; P(late) <= {v.late_rate_upper:.2%} "
                    f"at {v.confidence:.0%} (target {v.target:.0%}): {more}; CV {v.cv:.0%}"
                    + ("" if v.stable else " (unstable)"))
    engine = "-"
    if run.engine is not None:
        e = run.engine
        engine = (f"torch {e.torch_version}, moshi {e.moshi_version}, {e.device_name}; compiled frames "
                  f"{e.compiled_frames}, CUDA graphs captured {e.cuda_graphs_captured}")
        if e.quantization is not None:
            engine += "; " + quantization_text(e.quantization)
    p = m.prefill
    prefill = "none"
    if p is not None:
        estimated = " (text tokens estimated)" if p.text_tokens_estimated else ""
        prefill = (f"{p.steps} steps = {p.voice_steps} voice + {p.silence_steps} silence + {p.text_steps} text{estimated}; "
                   f"{p.seconds:.2f} s ({p.wait_s:.2f} s of server waits); step p50 {p.step_p50_ms:.1f} / p99 "
                   f"{p.step_p99_ms:.1f} ms; context used {p.context_frames} of {p.context_capacity} frames")
    first_audio, cold_start = _first_audio(m.first_audio), _cold_start(m.cold_start)
    cfg = run.config
    return RunDetail(prefill=prefill, first_audio=first_audio, cold_start=cold_start,
                     deployable=deployable_by(cfg),
                     name=run.name, load_s=f"{m.load_s:.1f}", warmup=f"{m.warmup_frames} frames, {m.warmup_s:.1f} s",
                     first_step_ms=f"{m.first_step_s * 1e3:.0f}", stages=_ms(m.stage_p50_ms),
                     cuda_stages=_ms(m.cuda.stage_p50_ms) if m.cuda else "not on a GPU",
                     energy=energy, roofline=roofline, validity=validity, engine=engine)


def _plan_row(plan: RunPlan) -> dict:
    step = band_text(plan.predicted_step_ms) + (f" ({plan.predicted_realtime})" if plan.predicted_realtime else "")
    floor = "-" if plan.step_floor_ms is None else f"{plan.step_floor_ms:.1f}"
    notes = plan.reasons + [i.what for i in plan.issues if i.severity == "warning"]
    gpu = f"{_gib(plan.device_peak_bytes)} ({_gib(plan.device_capacity_bytes)})" if plan.device_peak_bytes else "-"
    return {"run": plan.run, "feasible": plan.feasible, "gpu": gpu,
            "host": f"{_gib(plan.host_peak_bytes)} ({_gib(plan.host_capacity_bytes)})", "floor": floor,
            "notes": notes, "step": step}


def _target_summary(plans: list[RunPlan]) -> str:
    if not plans:
        return ""
    works = [p for p in plans if p.feasible]
    if not works:
        return f"the planner predicts none of the {len(plans)} runs works there (see the planner's table)."
    floors = [p.step_floor_ms for p in works if p.step_floor_ms is not None]
    span = f"; step-time floor {min(floors):.1f} to {max(floors):.1f} ms" if floors else ""
    return (f"the planner predicts {len(works)} of {len(plans)} runs work there{span}. Run the scenario on that "
            "machine for a measured GO / NO-GO.")


def _machine_rows(session: Session) -> list[tuple[str, str]]:
    m = session.machine
    gpus = ", ".join(f"{g.name} ({(g.memory_total_bytes or 0) / GIB:.0f} GiB, cc {g.compute_capability})"
                     for g in m.gpus) or f"none usable ({m.cuda_unavailable_reason or 'no CUDA'})"
    packages = ", ".join(f"{k} {v}" for k, v in m.packages.items() if v)
    return [("host", m.hostname), ("CPU", f"{m.cpu_model}, {m.cpu_cores_logical} logical cores"),
            ("RAM", f"{m.ram_total_bytes / GIB:.1f} GiB"), ("OS", f"{m.os} {m.os_release}"),
            ("Python", m.python), ("hardware key", m.hardware_key), ("GPUs", gpus),
            ("torch CUDA build", m.torch_cuda_build or "CPU-only"),
            ("packages", packages), ("fingerprint", m.fingerprint)]


def _weights_note(session: Session) -> str:
    if session.weights == "synthetic":
        return ("synthetic (the real architecture with seeded values). Synthetic weights measure speed and memory, "
                "not speech quality.")
    return f"loaded from {session.weights}."


def build_context(session: Session, verdict: Verdict, figures: list[Figure]) -> dict:
    by_name = {a.name: a for a in verdict.assessments}
    rows = [_row(run, by_name[run.name], session) for run in session.runs]
    problems: dict[tuple, dict] = {}
    for r in session.runs:
        if r.status == "ok":
            continue
        key = (r.status, r.reason, r.diagnosis.kind if r.diagnosis else "", r.stderr_tail)
        group = problems.setdefault(key, {"names": [], "status": r.status, "reason": r.reason,
                                          "diagnosis": r.diagnosis, "stderr": r.stderr_tail})
        group["names"].append(r.name)
    target = session.scenario.target
    target_label = session.target_plans[0].target if session.target_plans else None
    machine = session.machine
    scenario = session.scenario
    return {
        "session": session, "scenario": scenario, "verdict": verdict, "rows": rows, "figures": figures,
        "card": build_card(session, verdict, criteria_of(session)), "model_label": model_label(session),
        "problems": list(problems.values()), "target_summary": _target_summary(session.target_plans),
        "target_plans": [_plan_row(p) for p in session.target_plans],
        "target_label": target_label if target else None,
        "machine_label": f"{machine.cpu_model}" + (f", {machine.gpus[0].name}" if machine.gpus else ", no GPU"),
        "machine_rows": _machine_rows(session), "weights_note": _weights_note(session),
        "budget": f"{scenario.frame_budget_ms:g}",
        "frames_note": _frames_note(session),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "capacity": capacity_sections(session),
        "fidelity": fidelity_context(session, verdict),
        "predicted_rows": predicted_vs_measured(session.runs),
        "load_note": (f"load average {session.machine.load_average:.1f} on {session.machine.cpu_cores_logical} logical "
                      "cores when probed" if session.machine.load_average is not None else ""),
    }


def _frames_note(session: Session) -> str:
    """What ran, from the results (the criteria's minimums, --frames and soaks change the YAML's count)."""
    measured = sorted({r.metrics.frames for r in session.runs if r.metrics is not None})
    warmup = sorted({r.metrics.warmup_frames for r in session.runs if r.metrics is not None})
    if measured:
        frames = "/".join(str(f) for f in measured)
        warm = "/".join(str(w) for w in warmup)
    else:
        frames, warm = str(session.frames or session.scenario.frames), str(
            session.warmup_frames or session.scenario.warmup_frames)
    repeat = session.scenario.repeat
    processes = f" over {repeat} processes per run" if repeat > 1 else ""
    return f"{frames} measured frames{processes} after {warm} warmup, pace {session.scenario.pace.value}"


_ENV = Environment(loader=PackageLoader("harness.report", "templates"),
                   autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True))


def render_html(context: dict) -> str:
    return _ENV.get_template("report.html.j2").render(**context)


def summary_markdown(session: Session, verdict: Verdict) -> str:
    """Every text that came from a file (names, reasons, causes) is escaped: a name cannot add a heading."""
    md = markdown_text
    lines = card_markdown(build_card(session, verdict, criteria_of(session)), session.scenario.name)
    if verdict.reasons:
        lines += ["", "<details><summary>Why</summary>", ""] + [f"- {md(reason)}" for reason in verdict.reasons]
        lines += ["", "</details>"]
    lines += ["", "| run | frame | status | outcome | p50 ms | p99 ms | RTF | note |",
              "|---|---|---|---|---:|---:|---:|---|"]
    by_name = {a.name: a for a in verdict.assessments}
    for run in session.runs:
        m = run.metrics
        assessed = by_name.get(run.name)
        outcome = outcome_of(assessed) if assessed else run.status
        note = run.diagnosis.cause if run.diagnosis else (
            run.reason or ("; ".join(short_reason(r) for r in assessed.reasons[:1]) if assessed else ""))
        figures = f"{m.ms_per_step.p50:.1f} | {m.ms_per_step.p99:.1f} | {m.rtf:.2f}" if m is not None else "- | - | -"
        lines.append(f"| {md(run.name)} | {run.config.serving.value} | {run.status} | {outcome} | {figures} | "
                     f"{md(note)} |")
    lines += capacity_markdown(session)
    lines += fidelity_markdown(session, verdict)
    predicted = predicted_vs_measured(session.runs)
    if predicted:
        lines += ["", "Planner, predicted beside measured on this machine:", "",
                  "| run | predicted p50 ms (band) | measured p50 ms | error | in band |", "|---|---:|---:|---:|---|"]
        lines += [f"| {r['run']} | {r['predicted']} | {r['measured']} | {r['error']} | {r['in_band']} |"
                  for r in predicted]
        if session.machine.load_average is not None:
            lines += ["", f"(load average {session.machine.load_average:.1f} on {session.machine.cpu_cores_logical} "
                          "logical cores when probed: a busy host measures slower than predicted)"]
    budget = session.scenario.frame_budget_ms
    lines += ["", f"Model: {md(model_label(session))}. RTF = step time / {budget:g} ms (below 1 is faster than real "
              "time). " + ("Synthetic weights: speed, not speech quality." if session.weights == "synthetic" else "")]
    return "\n".join(lines) + "\n"


def write_report(session: Session, verdict: Verdict, out_dir: Path,
                 extra_plots: Optional[list] = None, endpoint: Optional[EndpointResults] = None) -> tuple[Path, Path]:
    """Render a decided verdict (the session, or `harness report`, decides it); `endpoint`: the scenario's
    `endpoint:` block as measured (its section beside the runs; the verdict already holds its finding)."""
    figures = all_figures(session, extra_plots)
    context = build_context(session, verdict, figures)
    card = context["card"]
    context["endpoint"] = endpoint_context(endpoint) if endpoint is not None else None
    html = render_html(context)
    atomic_write_text(out_dir / REPORT_HTML, html)
    summary = summary_markdown(session, verdict)
    if endpoint is not None:
        summary = summary.rstrip("\n") + "\n\n" + summary_line(endpoint) + "\n"
    atomic_write_text(out_dir / SUMMARY_MD, summary)
    write_exports(session, verdict, card, out_dir, endpoint)  # junit.xml, metrics.prom, the CI step summary
    return out_dir / REPORT_HTML, out_dir / SUMMARY_MD

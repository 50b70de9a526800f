"""Files CI systems and dashboards read without glue, beside results.json (or endpoint.json):

- junit.xml: a testsuite per scenario, a testcase per configuration: real time passes, not real time (and an invalid
  measurement) is a failure whose message states the rule, a run that failed to measure is an error, a skipped run
  is skipped with its reason, and a run the evidence cannot settle yet (not enough evidence, re-run) is skipped with
  the command that settles it. The figures go in system-out; properties only on the suite (strict consumers and
  xunit2 refuse them inside a testcase).
- metrics.prom: OpenMetrics text made by prometheus_client (step p50/p99, RTF, memory, the late-frame bound,
  sessions, cost), labelled by scenario, run and hardware key; replaced atomically (a temporary file renamed), as
  node_exporter's textfile collector needs.
- On GitHub Actions ($GITHUB_STEP_SUMMARY set) the decision card appended to the step summary.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.openmetrics.exposition import generate_latest

from harness.contract.atomic import atomic_write_text
from harness.records.endpoint import EndpointResults
from harness.records.schema import RunResult, Session
from harness.records.verdict import RunAssessment, Verdict
from harness.report.card import Card, card_markdown, outcome_of, rule_text
from harness.verdict.next_steps import settle_command

JUNIT_XML = "junit.xml"
METRICS_PROM = "metrics.prom"
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
LABELS = ("scenario", "run", "hardware")


def _figures(run: RunResult, a: Optional[RunAssessment]) -> str:
    m = run.metrics
    if m is None:
        return f"{run.status}: " + (run.diagnosis.cause if run.diagnosis else run.reason)
    lines = [f"outcome: {outcome_of(a) if a else run.status}",
             f"step ms: p50 {m.ms_per_step.p50:.2f}, p99 {m.ms_per_step.p99:.2f}, max {m.ms_per_step.max:.2f}",
             f"RTF: {m.rtf:.3f} (step / {m.frame_budget_ms:g} ms; below 1 is faster than real time)",
             f"frames: {m.frames} measured after {m.warmup_frames} warmup",
             f"peak host RSS: {m.peak_rss_bytes / 2**30:.2f} GiB"]
    if m.cuda is not None:
        lines.append(f"peak GPU reserved: {m.cuda.peak_reserved_bytes / 2**30:.2f} GiB of "
                     f"{m.cuda.total_bytes / 2**30:.1f} ({m.cuda.device_name})")
    if a is not None and a.validity is not None:
        v = a.validity
        lines.append(f"late frames: {v.late_frames}/{v.frames} past {v.deadline_ms:g} ms; bound "
                     f"{v.late_rate_upper:.4f} at {v.confidence:.0%} (target {v.target:g})")
    if a is not None:
        lines += a.reasons + a.flags
        if a.settle:
            lines.append(f"settle: {a.settle}")
    return "\n".join(lines)


def _testcase(suite: ET.Element, session: Session, run: RunResult, a: Optional[RunAssessment], rule: str) -> str:
    case = ET.SubElement(suite, "testcase", name=run.name, classname=f"{session.scenario.name}.{run.config.serving.value}",
                         time=f"{run.wall_s or 0.0:.3f}")
    outcome = outcome_of(a) if a is not None else run.status
    reasons = "; ".join(a.reasons) if a is not None else ""
    if outcome in ("not real time", "not faithful", "invalid"):
        ET.SubElement(case, "failure", type=outcome, message=f"{outcome}: {reasons}. {rule}")
    elif outcome == "failed":
        kind = run.diagnosis.kind if run.diagnosis else "failed"
        error = ET.SubElement(case, "error", type=kind, message=run.diagnosis.cause if run.diagnosis else run.reason)
        error.text = run.stderr_tail or None
    elif outcome == "skipped":
        ET.SubElement(case, "skipped", message=run.reason or "skipped")
    elif outcome in ("not enough evidence", "re-run"):
        command = settle_command(session, a) if a is not None else ""
        settle = f"; settle it: {command}" if command else ""
        ET.SubElement(case, "skipped", message=f"{outcome}: {reasons}{settle}")
    ET.SubElement(case, "system-out").text = _figures(run, a)
    return outcome


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    suite.set("time", f"{sum(float(c.get('time', '0')) for c in cases):.3f}")


def junit_xml(session: Session, verdict: Verdict, endpoint: Optional[EndpointResults] = None) -> str:
    root = ET.Element("testsuites", name=f"harness {session.scenario.name}")
    suite = ET.SubElement(root, "testsuite", name=session.scenario.name, hostname=session.machine.hostname,
                          timestamp=session.created_at.isoformat(timespec="seconds"))
    props = ET.SubElement(suite, "properties")
    for name, value in (("decision", verdict.decision), ("headline", verdict.headline),
                        ("hardware", session.machine.hardware_key), ("preset", session.scenario.preset),
                        ("weights", session.weights)):
        ET.SubElement(props, "property", name=name, value=value)
    by_name = {a.name: a for a in verdict.assessments}
    rule = rule_text(session, session.scenario.criteria)
    for run in session.runs:
        _testcase(suite, session, run, by_name.get(run.name), rule)
    ET.SubElement(suite, "system-out").text = "\n".join([verdict.headline, *verdict.reasons, *verdict.next_steps])
    _count(suite)
    if endpoint is not None:
        _endpoint_suite(root, endpoint, f"{session.scenario.name}.endpoint")
    return _text(root)


def _endpoint_suite(root: ET.Element, results: EndpointResults, name: str) -> None:
    """A served endpoint: a testcase per load it ran (the SLO is the rule)."""
    from harness.report.endpoint import run_title, summary_line

    suite = ET.SubElement(root, "testsuite", name=name, timestamp=results.created.isoformat(timespec="seconds"),
                          hostname=results.host or "")
    if results.failure:
        case = ET.SubElement(suite, "testcase", name="endpoint", classname=name, time="0")
        ET.SubElement(case, "error", type="not measured", message=results.failure)
    for i, run in enumerate(results.runs, 1):
        case = ET.SubElement(suite, "testcase", name=f"{run.kind}-{run.sessions}x{run.servers}", classname=name,
                             time=f"{run.call_seconds:.3f}")
        if not run.passed:
            failures = sorted({f for c in run.callers for f in c.slo_failures}) or [f"{run.failed} caller(s) failed"]
            ET.SubElement(case, "failure", type="SLO", message="; ".join(failures))
        ET.SubElement(case, "system-out").text = f"load {i}: {run_title(run)}"
    ET.SubElement(suite, "system-out").text = summary_line(results)
    _count(suite)


def endpoint_junit_xml(results: EndpointResults) -> str:
    root = ET.Element("testsuites", name="harness endpoint")
    _endpoint_suite(root, results, "endpoint")
    return _text(root)


def _text(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def metrics_text(session: Session, verdict: Verdict) -> str:
    """OpenMetrics text; each figure a gauge labelled by scenario, run and hardware key (absent figures absent)."""
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, doc: str, unit: str = "") -> Gauge:
        return Gauge(name, doc, LABELS, unit=unit, registry=registry)

    p50 = gauge("harness_step_p50", "median step time of one 80 ms frame (Mimi encode, LM step, Mimi decode)",
                "seconds")
    p99 = gauge("harness_step_p99", "99th percentile step time", "seconds")
    rtf = gauge("harness_rtf", "real-time factor: p50 step / frame budget (below 1 is faster than real time)")
    deadline = gauge("harness_deadline", "the deadline a frame must meet: the budget less the headroom", "seconds")
    rss = gauge("harness_host_rss_peak", "peak host RSS of the worker", "bytes")
    gpu = gauge("harness_gpu_reserved_peak", "peak GPU memory reserved by torch", "bytes")
    share = gauge("harness_memory_used_ratio", "peak memory over the device's (or host's) total")
    late = gauge("harness_late_frame_bound_ratio", "upper confidence bound of the share of frames past the deadline")
    realtime = gauge("harness_realtime", "1: the run is certified real time; 0: it is not")
    sessions = gauge("harness_lockstep_sessions", "sessions in lockstep that stay real time (batching server)")
    processes = gauge("harness_server_processes", "one-call server processes per machine that stay real time")
    cost = gauge("harness_cost_per_conversation_hour_usd", "GPU-hour price over the sessions it holds")
    decision = Gauge("harness_decision", "the verdict: 1 on the decision taken", ["scenario", "hardware", "decision"],
                     registry=registry)
    scenario, hardware = session.scenario.name, session.machine.hardware_key
    for word in ("GO", "NO-GO", "INCONCLUSIVE", "RE-RUN"):
        decision.labels(scenario, hardware, word).set(1 if verdict.decision == word else 0)
    by_name = {a.name: a for a in verdict.assessments}
    for run in session.runs:
        m, a = run.metrics, by_name.get(run.name)
        labels = (scenario, run.name, hardware)
        realtime.labels(*labels).set(1 if a is not None and a.realtime else 0)
        if m is None:
            continue
        p50.labels(*labels).set(m.ms_per_step.p50 / 1e3)
        p99.labels(*labels).set(m.ms_per_step.p99 / 1e3)
        rtf.labels(*labels).set(m.rtf)
        deadline.labels(*labels).set(session.scenario.criteria.deadline_ms(m.frame_budget_ms) / 1e3)
        rss.labels(*labels).set(m.peak_rss_bytes)
        if m.cuda is not None:
            gpu.labels(*labels).set(m.cuda.peak_reserved_bytes)
        if a is not None and a.memory_fraction is not None:
            share.labels(*labels).set(a.memory_fraction)
        if a is not None and a.validity is not None:
            late.labels(*labels).set(a.validity.late_rate_upper)
        c = m.capacity
        if c is not None:
            sessions.labels(*labels).set(c.max_realtime_sessions)
            if c.processes is not None:
                processes.labels(*labels).set(c.processes.max_realtime_processes)
            line = (c.processes.cost if c.processes is not None and c.processes.cost is not None else c.cost)
            if line is not None and line.per_conversation_hour_usd is not None:
                cost.labels(*labels).set(line.per_conversation_hour_usd)
    return generate_latest(registry).decode()


def endpoint_metrics_text(results: EndpointResults, scenario: str = "endpoint") -> str:
    """A served endpoint's figures per load: worst caller's first audio, handshake and p99 packet gap."""
    registry = CollectorRegistry(auto_describe=True)
    labels = ("scenario", "load", "hardware")
    hardware = results.machine.hardware_key if results.machine is not None else ""
    gauges = {attr: Gauge(f"harness_endpoint_{name}", doc, labels, unit="seconds", registry=registry)
              for attr, name, doc in (("first_audio_ms", "first_audio_worst", "worst caller's first audio"),
                                      ("handshake_ms", "handshake_worst", "worst caller's handshake"),
                                      ("interval_p99_ms", "packet_gap_p99_worst", "worst caller's p99 packet gap"))}
    passed = Gauge("harness_endpoint_passed", "1: every caller met the SLO", labels, registry=registry)
    callers = Gauge("harness_endpoint_callers_ok", "callers that completed", labels, registry=registry)
    for run in results.runs:
        key = (scenario, f"{run.kind}-{run.sessions}x{run.servers}", hardware)
        passed.labels(*key).set(1 if run.passed else 0)
        callers.labels(*key).set(run.ok)
        for attr, g in gauges.items():
            values = [getattr(c, attr) for c in run.callers if getattr(c, attr) is not None]
            if values:
                g.labels(*key).set(max(values) / 1e3)
    return generate_latest(registry).decode()


def append_step_summary(markdown: str) -> Optional[Path]:
    """On GitHub Actions: the card appended to the job's step summary (several runs in one job add up)."""
    target = os.environ.get(STEP_SUMMARY)
    if not target:
        return None
    path = Path(target)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")
    except OSError:
        return None  # a summary CI cannot take is not a reason to lose the results
    return path


def write_exports(session: Session, verdict: Verdict, card: Card, out_dir: Path,
                  endpoint: Optional[EndpointResults] = None) -> list[Path]:
    atomic_write_text(out_dir / JUNIT_XML, junit_xml(session, verdict, endpoint))
    metrics = metrics_text(session, verdict)
    if endpoint is not None:  # one exposition: the endpoint's families before the single # EOF
        metrics = metrics.removesuffix("# EOF\n") + endpoint_metrics_text(endpoint, session.scenario.name)
    atomic_write_text(out_dir / METRICS_PROM, metrics)
    append_step_summary("\n".join(card_markdown(card, session.scenario.name)))
    return [out_dir / JUNIT_XML, out_dir / METRICS_PROM]


def write_endpoint_exports(results: EndpointResults, out_dir: Path, summary: str) -> list[Path]:
    atomic_write_text(out_dir / JUNIT_XML, endpoint_junit_xml(results))
    atomic_write_text(out_dir / METRICS_PROM, endpoint_metrics_text(results))
    append_step_summary(summary)
    return [out_dir / JUNIT_XML, out_dir / METRICS_PROM]

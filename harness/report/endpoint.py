"""The served endpoint's report: report.html (jinja2, autoescape, matplotlib figures embedded) and a summary line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from harness.records.endpoint import CallerResult, EndpointResults, LoadRun  # noqa: E402
from harness.report.plots import Figure, _encode  # noqa: E402


@dataclass
class _Row:
    index: int
    status: str
    reason: str
    connect: str
    handshake: str
    lock: str
    prefill: str
    first_audio: str
    gaps: str
    frames: str
    deficit: str
    drift: str
    underrun: str
    late: str
    end: str
    slo: str


def _f(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _lock(c: CallerResult, value: Optional[float]) -> str:
    """Lock wait and prefill where the split is known; 'unknown' where it is not (harness.endpoint.assess)."""
    return "unknown" if value is None and c.lock_split.startswith("unknown") else _f(value)


def _row(c: CallerResult) -> _Row:
    gaps = ("-" if c.interval_p50_ms is None
            else f"{c.interval_p50_ms:.0f} / {c.interval_p99_ms:.0f} / {c.interval_max_ms:.0f}")
    return _Row(index=c.index, status=c.status, reason=c.reason or "", connect=_f(c.connect_ms, 1),
                handshake=_f(c.handshake_ms), lock=_lock(c, c.lock_wait_ms), prefill=_lock(c, c.prefill_ms),
                first_audio=_f(c.first_audio_ms), gaps=gaps, frames=f"{c.sent_frames} / {c.received_frames:.1f}",
                deficit=_f(c.deficit_frames, 1), drift=_f(c.drift_ms_per_s, 2), underrun=_f(c.underrun_s, 2),
                late=_f(c.send_late_max_ms, 1), end=c.close_reason, slo="; ".join(c.slo_failures) or "met")


def run_title(run: LoadRun) -> str:
    shape = (f"open loop, {run.arrival_rate_per_s:g} calls/s (Poisson)" if run.kind == "open"
             else "closed loop, one shared start")
    outcome = ("FAIL, LIMITED BY THE LOAD GENERATOR" if run.limited_by_client else "PASS" if run.passed
               else "FAIL")
    client = ""
    if run.client is not None and run.client.loop_lag_p99_ms is not None:
        client = (f" (load generator: {run.client.processes} process(es), event-loop lag p99 "
                  f"{run.client.loop_lag_p99_ms:.0f} ms)")
    return (f"{run.sessions} call(s) x {run.call_seconds:g} s, {shape}, {run.servers} server process(es): "
            f"{run.ok} ok, {run.failed} failed, {outcome}{client}")


def _callers(results: EndpointResults) -> list[tuple[str, CallerResult]]:
    many = len(results.runs) > 1
    return [(f"{r.sessions}{'s' if r.servers > 1 else ''}:{c.index}" if many else str(c.index), c)
            for r in results.runs for c in r.callers]


def _received_vs_sent(results: EndpointResults) -> Optional[Figure]:
    callers = [(label, c) for label, c in _callers(results) if c.raw.audio_s and c.raw.send_s]
    if not callers:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for label, c in callers[:16]:
        sent = np.arange(1, len(c.raw.send_s) + 1) * 0.08
        heard = np.cumsum(c.raw.audio_samples) / results.sample_rate
        line, = ax.step(c.raw.send_s, sent, where="post", alpha=0.5, linestyle="--")
        ax.step(c.raw.audio_s, heard, where="post", color=line.get_color(), label=f"caller {label}")
    ax.set_xlabel("caller clock (s from the shared start)")
    ax.set_ylabel("audio (s)")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    return Figure("received-vs-sent", "Audio received against sent, per caller",
                  "dashed: audio the caller sent; solid: audio it received (the vertical gap is the deficit)",
                  _encode(fig))


def _intervals(results: EndpointResults) -> Optional[Figure]:
    gaps = [np.diff(c.raw.audio_s) * 1000 for _, c in _callers(results) if len(c.raw.audio_s) > 1]
    if not gaps:
        return None
    values = np.concatenate(gaps)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.hist(values, bins=min(60, max(10, values.size // 5)), color="#4C78A8")
    ax.axvline(80, color="#D62728", linestyle="--", label="80 ms frame")
    ax.axvline(results.slo.interval_p99_ms, color="#B54708", linestyle=":", label="SLO p99")
    ax.set_xlabel("gap between audio packets (ms)")
    ax.set_ylabel("packets")
    ax.legend(fontsize=8)
    return Figure("intervals", "Inter-packet intervals", f"{values.size} gaps over every caller", _encode(fig))


def _bars(results: EndpointResults, key: str, title: str, unit: str, attr: str, limit: float) -> Optional[Figure]:
    pairs = [(label, getattr(c, attr)) for label, c in _callers(results) if getattr(c, attr) is not None]
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=(9, 2.8))
    ax.bar([p[0] for p in pairs], [p[1] for p in pairs], color="#F58518")
    ax.axhline(limit, color="#D62728", linestyle="--", label="SLO")
    ax.set_ylabel(unit)
    ax.set_xlabel("caller")
    ax.legend(fontsize=8)
    return Figure(key, title, f"per caller, against the SLO ({limit:g} {unit})", _encode(fig))


def endpoint_figures(results: EndpointResults) -> list[Figure]:
    figures = [_received_vs_sent(results), _intervals(results),
               _bars(results, "first-audio", "First audio after the stream started", "ms", "first_audio_ms",
                     results.slo.first_audio_ms),
               _bars(results, "deficit", "Deficit at the end of the stream", "frames", "deficit_frames",
                     results.slo.deficit_frames)]
    return [f for f in figures if f is not None]


def endpoint_context(results: EndpointResults) -> dict:
    """What endpoint_section.html.j2 renders (the stored SLO verdict: decided before rendering)."""
    runs = [{"title": run_title(r), "note": r.note, "rows": [_row(c) for c in r.callers]} for r in results.runs]
    verdict = results.verdict
    return {"results": results, "runs": runs, "search": results.search, "figures": endpoint_figures(results),
            "word": verdict.word if verdict else "INTERRUPTED" if results.interrupted else "NO-GO",
            "reasons": (verdict.reasons if verdict else ["no verdict"]) or ["every caller met the SLO"]}


def render_endpoint_html(results: EndpointResults) -> str:
    env = Environment(loader=PackageLoader("harness.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    context = endpoint_context(results)
    return env.get_template("endpoint.html.j2").render(
        results=results, runs=context["runs"], search=results.search, figures=context["figures"],
        verdict_word=context["word"], reasons=context["reasons"],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def summary_line(results: EndpointResults) -> str:
    """One markdown line for summary.md / a CI step summary."""
    word = results.verdict.word if results.verdict else "INTERRUPTED" if results.interrupted else "NO-GO"
    callers = [c for r in results.runs for c in r.callers]
    ok = [c for c in callers if c.status == "ok"]

    def worst(attr: str) -> str:
        values = [getattr(c, attr) for c in ok if getattr(c, attr) is not None]
        return f"{max(values):.0f}" if values else "-"

    if results.failure:
        return f"**endpoint {word}**: not measured: {results.failure}"
    parts = [f"**endpoint {word}** `{results.url.split('?')[0]}`: {len(ok)}/{len(callers)} callers ok",
             f"worst handshake {worst('handshake_ms')} ms", f"first audio {worst('first_audio_ms')} ms",
             f"gap p99 {worst('interval_p99_ms')} ms", f"deficit {worst('deficit_frames')} frames"]
    if results.search is not None:
        parts.append(f"largest {results.search.what} meeting the SLO: {results.search.largest_passing}")
    if any(r.one_call_at_a_time for r in results.runs):
        parts.append("one call at a time")
    if any(r.limited_by_client for r in results.runs):
        parts.append("limited by the load generator")
    if results.interrupted:
        parts.append(f"{results.interrupted}: {len(results.runs)} finished run(s) kept, no verdict")
    return "; ".join(parts)

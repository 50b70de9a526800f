"""The report's fidelity section: each configuration's output against the bf16 eager reference, per stream (KL,
top-1 agreement, drift over the frames) and free-run greedy agreement; kept apart from the decision card so that
the two can change separately (rendered from templates/fidelity.html.j2 and `fidelity_markdown`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from harness.contract.wire import FidelityReading
from harness.records.schema import Session
from harness.records.verdict import Verdict
from harness.verdict.fidelity import SYNTHETIC_LABEL, fidelity_problem


@dataclass
class StreamRow:
    stream: str
    codebooks: int
    top1: str
    kl_mean: str
    kl_p99: str
    kl_max: str
    drift: str
    greedy: str


@dataclass
class FidelityRow:
    run: str
    verdict: str  # faithful / NOT FAITHFUL ... / self-test / not measured: why
    bad: bool
    frames: int
    greedy: str
    first_divergence: str
    method: str
    streams: list[StreamRow] = field(default_factory=list)


def drift(kl_by_frame: list[float]) -> str:
    """Mean KL of the last third of the frames against the first third: does the error grow as the call goes on?"""
    third = len(kl_by_frame) // 3
    if third < 1:
        return "-"
    first, last = kl_by_frame[:third], kl_by_frame[-third:]
    return f"{sum(first) / third:.2g} → {sum(last) / third:.2g}"


def _stream_rows(f: FidelityReading) -> list[StreamRow]:
    return [StreamRow(stream=s.stream, codebooks=s.codebooks, top1=f"{s.top1_agreement:.1%}",
                      kl_mean=f"{s.kl_mean:.3g}", kl_p99=f"{s.kl_p99:.3g}", kl_max=f"{s.kl_max:.3g}",
                      drift=drift(s.kl_by_frame), greedy=f"{s.greedy_agreement:.1%}") for s in f.streams]


def fidelity_rows(session: Session) -> list[FidelityRow]:
    rows = []
    for run in session.runs:
        f = run.metrics.fidelity if run.metrics is not None else None
        if f is None:
            continue
        if f.skipped:
            rows.append(FidelityRow(run=run.name, verdict=f.skipped, bad=False, frames=0, greedy="-",
                                    first_divergence="-", method=""))
            continue
        problem = fidelity_problem(run, session.scenario.fidelity)
        word = ("self-test (the reference's own configuration)" if f.self_test else "faithful") if problem is None \
            else problem
        rows.append(FidelityRow(
            run=run.name, verdict=word, bad=problem is not None, frames=f.frames, greedy=f"{f.greedy_agreement:.1%}",
            first_divergence="never" if f.greedy_first_divergence is None else f"frame {f.greedy_first_divergence}",
            method=f.method, streams=_stream_rows(f)))
    return rows


def fidelity_context(session: Session, verdict: Verdict) -> Optional[dict]:
    rows = fidelity_rows(session)
    if not rows:
        return None
    measured = [r.metrics.fidelity for r in session.runs if r.metrics is not None and r.metrics.fidelity is not None]
    c = session.scenario.fidelity
    greedy = f", free-run greedy token agreement ≥ {c.min_greedy_agreement:.0%}" if c.min_greedy_agreement else ""
    return {
        "rows": rows,
        "criteria": f"every stream: mean KL ≤ {c.max_kl_mean:g} nats and top-1 agreement ≥ {c.min_top1_agreement:.0%}"
                    f"{greedy} (scenario `fidelity:`; defaults from llama.cpp's KL practice and NVIDIA's TensorRT gate)",
        "synthetic": SYNTHETIC_LABEL if any(f.synthetic for f in measured) else "",
        "input": measured[0].input if measured else "",
        "reference": next((f.reference for f in measured if f.reference), ""),
        "recommended": verdict.recommended.fidelity if verdict.recommended is not None else "",
    }


def fidelity_markdown(session: Session, verdict: Verdict) -> list[str]:
    rows = fidelity_rows(session)
    if not rows:
        return []
    synthetic = any(r.metrics.fidelity.synthetic for r in session.runs
                    if r.metrics is not None and r.metrics.fidelity is not None)
    lines = ["", "Output fidelity against the bf16 eager reference (teacher-forced" +
             (f"; {SYNTHETIC_LABEL}" if synthetic else "") + "):", "",
             "| run | stream | top-1 | mean KL | p99 KL | max KL | drift | greedy | verdict |",
             "|---|---|---:|---:|---:|---:|---|---:|---|"]
    for row in rows:
        if not row.streams:
            lines.append(f"| {row.run} | - | - | - | - | - | - | - | {row.verdict} |")
        for i, s in enumerate(row.streams):
            lines.append(f"| {row.run if i == 0 else ''} | {s.stream} | {s.top1} | {s.kl_mean} | {s.kl_p99} | "
                         f"{s.kl_max} | {s.drift} | {s.greedy} | {row.verdict if i == 0 else ''} |")
    if verdict.recommended is not None and verdict.recommended.fidelity:
        lines += ["", f"Recommended deployment's output: {verdict.recommended.fidelity}"]
    return lines

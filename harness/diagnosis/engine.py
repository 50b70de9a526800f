"""The diagnosis engine: find every known failure in a log and decide which one killed the process.

Rules, in order:
1. Errors outrank warnings: a warning (a line marked as one, or a message that is a warning by
   nature) never outranks the error that killed the process.
2. Among errors, the final exception wins (the one nearest the end of the log), then earlier ones;
   on one line, the table's order decides.
3. A root cause explains its symptoms: a torch build without the GPU's architecture, announced by
   torch's "sm_86 is not compatible" warning, turns a later "CUDA error: out of memory" into an
   architecture problem (every kernel launch fails there, whatever it says).
4. Nothing matched: `unknown`, with the lines that were looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from harness.diagnosis.context import Context, Found, gpu_from_log, os_from_log
from harness.diagnosis.signatures import SIGNATURES, UNKNOWN, Signature
from harness.diagnosis.text import LogView


@dataclass(frozen=True)
class Hit:
    signature: Signature
    found: Found
    order: int  # position of the row in the table

    @property
    def kind(self) -> str:
        return self.signature.kind


@dataclass
class Finding:
    kind: str
    cause: str
    remedy: str
    lines: list[tuple[int, str]] = field(default_factory=list)  # (1-based line number, text) it rests on
    also: list[str] = field(default_factory=list)  # other failures seen in the same log
    gpu: Optional[str] = None  # the GPU the remedy was chosen for, and where that came from

    @property
    def known(self) -> bool:
        return self.kind != UNKNOWN


def find_all(view: LogView) -> list[Hit]:
    hits: list[Hit] = []
    for order, signature in enumerate(SIGNATURES):
        for pattern in signature.patterns:
            for match in pattern.finditer(view.squashed):
                first, last = view.line_at(match.start()), view.line_at(max(match.end() - 1, match.start()))
                warning = signature.role == "warning" or view.is_warning(first)
                hits.append(Hit(signature, Found(match, view, first, last, warning), order))
    return hits


def _rank(hit: Hit) -> tuple[int, int, int]:
    return (0 if hit.found.warning else 1, hit.found.first_line, -hit.order)


def choose(hits: list[Hit]) -> tuple[Optional[Hit], Optional[Hit]]:
    """(the failure to report, the symptom it explains if a root cause took over)."""
    if not hits:
        return None, None
    best = max(hits, key=_rank)
    roots = [h for h in hits if best.kind in h.signature.explains and h.found.first_line <= best.found.first_line
             and h is not best]
    if roots:
        root = max(roots, key=lambda h: h.found.last_line)
        return root, best
    return best, None


def diagnose_text(text: str, ctx: Optional[Context] = None) -> Finding:
    view = LogView(text)
    ctx = ctx or Context()
    if not ctx.os:
        ctx.os = os_from_log(text)
    if not ctx.gpu.compute_capability:  # no GPU given or probed: the one the log names, if any
        logged = gpu_from_log(text)
        if logged.compute_capability or logged.name:
            ctx.gpu = replace(logged, arch_list=ctx.gpu.arch_list)
    hits = find_all(view)
    chosen, symptom = choose(hits)
    if chosen is None:
        return Finding(UNKNOWN, _unknown_cause(view), "not a known failure: read the lines above; if it is a "
                       "deployment problem worth recognising, add a row to harness/diagnosis/signatures.py",
                       lines=_looked_at(view))
    if symptom is not None and symptom.kind != chosen.kind:
        ctx.symptom = symptom.found.quote[:120]
    found = chosen.found
    lines = [(n + 1, view.lines[n]) for n in range(found.first_line, found.last_line + 1)]
    if symptom is not None:
        lines += [(n + 1, view.lines[n]) for n in range(symptom.found.first_line, symptom.found.last_line + 1)]
    also = sorted({h.kind for h in hits} - {chosen.kind})
    gpu = None
    if ctx.gpu.name or ctx.gpu.compute_capability:
        gpu = f"{ctx.gpu.name or 'GPU'} (cc {ctx.gpu.compute_capability or '?'}, {ctx.gpu.source})"
    return Finding(chosen.kind, chosen.signature.cause(found, ctx), chosen.signature.remedy(found, ctx),
                   lines=lines, also=also, gpu=gpu)


def _unknown_cause(view: LogView) -> str:
    final = view.final_exception_line()
    if final is not None:
        return view.lines[final].strip()[:500]
    tail = view.tail(1)
    return tail[0][1].strip()[:500] if tail else "empty log"


def _looked_at(view: LogView, count: int = 12) -> list[tuple[int, str]]:
    final = view.final_exception_line()
    lines = view.tail(count)
    if final is not None and all(n != final for n, _ in lines):
        lines = [(final, view.lines[final])] + lines
    return [(n + 1, text) for n, text in lines]

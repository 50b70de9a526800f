"""The decision card: what a person reads in a minute at the top of report.html, summary.md and a CI step summary.

The decision; the recommended configuration with its p99 against the deadline and the margin; the exact command that
deploys it; capacity and cost where measured; for anything but GO the next steps (Verdict.next_steps). The rule that
judges every run is stated once here, not per row.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Optional

from harness.records.capacity import CapacityResult
from harness.records.scenario import Criteria
from harness.records.schema import RunResult, Session
from harness.records.text import markdown_text
from harness.records.verdict import Deployment, RunAssessment, Verdict

# The CSS class of each decision's colour (report.html.j2).
TONE = {"GO": "go", "NO-GO": "nogo", "INCONCLUSIVE": "inconclusive", "RE-RUN": "rerun"}
OUTCOME_ORDER = ("real time", "not enough evidence", "re-run", "not real time", "not faithful", "invalid", "failed",
                 "skipped")
_COMMAND = re.compile(r"^(.*?): (harness (?:run|plan|report|endpoint|serve) [^()]+)$")
# The p99 rule as a run's reason states it (older files spelled the headroom out): the card states the rule once.
_P99_RULE = re.compile(r"^p99 ([0-9.]+) ms > [0-9.]+ ms(?: deadline| \([^)]*headroom\))$")


@dataclass
class DeployCommand:
    server: str  # who runs it: PyPI moshi's server, NVIDIA's PersonaPlex server, or the harness's own loop
    command: str  # one copyable shell line, environment first
    notes: list[str] = field(default_factory=list)


@dataclass
class Capacity:
    run: str
    text: str


@dataclass
class Card:
    decision: str
    tone: str
    headline: str
    rule: str
    outcomes: list[tuple[str, int]]
    recommended: Optional[Deployment] = None
    deadline_ms: Optional[float] = None
    margin_ms: Optional[float] = None
    deploy: Optional[DeployCommand] = None
    capacity: list[Capacity] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    endpoint: str = ""

    @property
    def steps(self) -> list[tuple[str, str]]:
        """Each next step as (text, command): a trailing `: harness ...` command is shown as code."""
        out = []
        for step in self.next_steps:
            m = _COMMAND.match(step)
            out.append((m.group(1), m.group(2)) if m else (step, ""))
        return out

    @property
    def headline_text(self) -> str:
        """The headline without its leading decision word (the card shows the word on its own)."""
        word, sep, rest = self.headline.partition(": ")
        return rest if sep and word == self.decision else self.headline


def outcome_of(a: RunAssessment) -> str:
    """The record's outcome; for verdicts decided before outcomes were filled, read from what was recorded."""
    if a.outcome:
        return a.outcome
    if a.status in ("failed", "skipped"):
        return a.status
    if a.rerun:
        return "re-run"
    if a.realtime:
        return "real time"
    if any(r.startswith("invalid measurement") for r in a.reasons):
        return "invalid"
    v = a.validity
    timing_miss = any(_P99_RULE.match(r) or "underruns" in r or r.startswith("uses ") for r in a.reasons)
    if v is not None and not timing_miss and (not v.valid or v.frames_to_certify):
        return "not enough evidence"
    return "not real time"


def short_reason(reason: str) -> str:
    """A per-run reason without the rule the card states once."""
    m = _P99_RULE.match(reason)
    return f"p99 {m.group(1)} ms over the deadline" if m else reason


def rule_text(session: Session, criteria: Criteria) -> str:
    budget = session.scenario.frame_budget_ms
    deadline = criteria.deadline_ms(budget)
    return (f"Rule: a frame is late past {deadline:g} ms ({budget:g} ms of audio less {criteria.headroom:.0%} "
            f"headroom). Real time needs p99 under {deadline:g} ms, no underrun with a "
            f"{criteria.buffer_ms(budget):g} ms jitter buffer, {criteria.memory_headroom:.0%} of memory free, and the "
            f"late share certified under {criteria.late_frame_target:.0%} at {criteria.confidence:.0%} confidence.")


def deploy_command(rec: Deployment, preset: str) -> DeployCommand:
    """Deployment.moshi's first line is the server's command (NVIDIA's prefixed with where it comes from); the
    environment goes in front so the block runs as pasted; the other lines are notes."""
    first, *notes = rec.moshi or [""]
    server, _, command = first.partition(": ") if first.startswith("PersonaPlex") else ("", "", first)
    server = server or ("PyPI moshi 0.2.13's server" if command.startswith("python -m moshi.server") else "")
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in rec.env.items())
    line = f"{env} {command}".strip()
    if rec.settings.get("frame measured") == "model":
        notes = notes + [f"the harness's own loop serves it as measured: harness serve --preset {preset}"]
    return DeployCommand(server=server or rec.deployable_by, command=line, notes=notes)


def _capacity(run: RunResult, capacity: CapacityResult) -> Capacity:
    parts = []
    if capacity.processes is not None:
        p = capacity.processes
        parts.append(f"{p.max_realtime_processes} server process(es) per machine ({p.how})")
        if p.cost is not None and p.cost.per_conversation_hour_usd is not None:
            parts.append(f"${p.cost.per_conversation_hour_usd:.2f} per conversation-hour at "
                         f"${p.cost.gpu_hour_usd:.2f}/h")
    parts.append(f"{capacity.max_realtime_sessions} session(s) in lockstep (needs a batching server)")
    if capacity.cost is not None and capacity.cost.per_conversation_hour_usd is not None:
        parts.append(f"${capacity.cost.per_conversation_hour_usd:.2f} per conversation-hour in lockstep")
    return Capacity(run=run.name, text="; ".join(parts))


def build_card(session: Session, verdict: Verdict, criteria: Criteria) -> Card:
    decision = verdict.decision if verdict.decision in TONE else ("GO" if verdict.go else "NO-GO")
    counts: dict[str, int] = {}
    for a in verdict.assessments:
        counts[outcome_of(a)] = counts.get(outcome_of(a), 0) + 1
    card = Card(decision=decision, tone=TONE[decision], headline=verdict.headline, rule=rule_text(session, criteria),
                outcomes=[(o, counts[o]) for o in OUTCOME_ORDER if counts.get(o)], next_steps=list(verdict.next_steps))
    rec = verdict.recommended
    if rec is not None:
        run = next((r for r in session.runs if r.name == rec.run), None)
        budget = run.metrics.frame_budget_ms if run is not None and run.metrics is not None else \
            session.scenario.frame_budget_ms
        card.recommended = rec
        card.deadline_ms = criteria.deadline_ms(budget)
        card.margin_ms = card.deadline_ms - rec.p99_ms
        card.deploy = deploy_command(rec, session.scenario.preset)
    for run in session.runs:
        if run.metrics is not None and run.metrics.capacity is not None:
            card.capacity.append(_capacity(run, run.metrics.capacity))
    if verdict.endpoint is not None:
        card.endpoint = ("GO" if verdict.endpoint.go else "NO-GO") + ": " + verdict.endpoint.summary
    return card


def card_markdown(card: Card, title: str) -> list[str]:
    """The card as Markdown (summary.md and $GITHUB_STEP_SUMMARY): one `##` heading, text from files escaped."""
    md = markdown_text
    lines = [f"## {md(title)}: {card.decision}", "", f"**{md(card.headline)}**", ""]
    if card.outcomes:
        lines += [" · ".join(f"{n} {o}" for o, n in card.outcomes), ""]
    rec = card.recommended
    if rec is not None and card.deadline_ms is not None and card.margin_ms is not None:
        lines += [f"Recommended: **{md(rec.run)}** ({md(rec.summary)}): p99 {rec.p99_ms:.1f} ms against the "
                  f"{card.deadline_ms:g} ms deadline, margin {card.margin_ms:.1f} ms "
                  f"({card.margin_ms / card.deadline_ms:.0%}); served by {md(rec.deployable_by)}"
                  + (f"; on this GPU: {md(rec.software_note)}" if rec.software_note else ""), ""]
    if card.deploy is not None:
        lines += [f"Deploy ({md(card.deploy.server)}):", "", "```sh", card.deploy.command.replace("```", "'''"), "```",
                  ""]
        lines += [f"- {md(note)}" for note in card.deploy.notes]
        lines += [""] if card.deploy.notes else []
    lines += [f"Capacity ({md(c.run)}): {md(c.text)}" for c in card.capacity]
    lines += [""] if card.capacity else []
    if card.endpoint:
        lines += [f"Served endpoint: {md(card.endpoint)}", ""]
    if card.next_steps:
        lines += ["**Next steps** (cheapest first):", ""]
        lines += [f"{i}. {md(step)}" for i, step in enumerate(card.next_steps, 1)]
        lines += [""]
    lines += [md(card.rule)]
    return lines

"""The served endpoint's verdict: its SLO (every caller of every load met it), and how it joins the in-process one.

The rule, one place: the in-process verdict (`Verdict.go`: does a configuration run in real time inside one worker)
is not changed by the endpoint; the endpoint's SLO finding is kept beside it (`Verdict.endpoint`), the headline
names both, and `harness run --fail-on-nogo` fails when either is NO-GO (harness.cli.run). An endpoint that could
not be measured (the server did not start, no caller reached it) is NO-GO with the reason: a served model that no
caller could reach does not serve.
"""

from __future__ import annotations

from typing import Optional

from harness.records.endpoint import EndpointResults, LoadRun, SearchResult
from harness.records.endpoint import Verdict as SloVerdict
from harness.records.exits import Exit
from harness.records.verdict import EndpointFinding, Verdict


def slo_verdict(runs: list[LoadRun], found: Optional[SearchResult]) -> SloVerdict:
    if found is not None:
        if found.largest_passing >= 1:
            return SloVerdict(word="GO", reasons=[f"{found.largest_passing} {found.what} met the SLO "
                                                  f"({found.limited_by})"])
        return SloVerdict(word="NO-GO", reasons=[f"not even one {found.what[:-1]} met the SLO: {found.limited_by}"])
    reasons = [f"caller {c.index}: {f}" for r in runs for c in r.callers for f in c.slo_failures]
    if reasons and any(r.limited_by_client for r in runs):
        # the callers' figures include the load generator's own lateness: the server is not shown to fail
        limited = [r.note for r in runs if r.limited_by_client]
        return SloVerdict(word="INCONCLUSIVE", reasons=(limited + reasons)[:20])
    return SloVerdict(word="GO" if runs and not reasons else "NO-GO", reasons=reasons[:20])


def failed_verdict(failure: str) -> SloVerdict:
    return SloVerdict(word="NO-GO", reasons=[f"not measured: {failure}"])


def endpoint_finding(results: EndpointResults) -> EndpointFinding:
    """What the endpoint's SLO found, in one line (the verdict stored in the file, or decided again from its runs)."""
    if results.failure:
        decided = failed_verdict(results.failure)
    else:
        decided = slo_verdict(results.runs, results.search)
    callers = [c for r in results.runs for c in r.callers]
    failed = sum(c.status == "failed" for c in callers)
    what = (f"{results.search.largest_passing} {results.search.what} met the SLO" if results.search is not None
            else f"{len(callers) - failed}/{len(callers)} caller(s) ok" if callers else "nothing measured")
    reason = decided.reasons[0] if decided.reasons and decided.word != "GO" else ""
    summary = f"endpoint {decided.word}: {what}" + (f" ({reason})" if reason else "")
    if results.failure:
        summary = f"endpoint NO-GO: not measured ({results.failure})"
    return EndpointFinding(go=decided.word == "GO", summary=summary, reasons=decided.reasons)


def with_endpoint(verdict: Verdict, results: Optional[EndpointResults]) -> Verdict:
    """The session's verdict with the endpoint's finding beside the in-process one (see the module's rule)."""
    if results is None:
        return verdict
    finding = endpoint_finding(results)
    headline = f"{verdict.headline} | {finding.summary}"
    return verdict.model_copy(update={"endpoint": finding, "headline": headline})


def fails_gate(verdict: Verdict) -> bool:
    """`--fail-on-nogo` fails the job: the verdict is not GO (NO-GO, INCONCLUSIVE or RE-RUN), or the endpoint's
    SLO is NO-GO."""
    return gate_exit(verdict) != Exit.OK


def gate_exit(verdict: Verdict) -> Exit:
    """`--fail-on-nogo`'s exit status: 3 (NOGO) when the evidence says no (the in-process verdict is NO-GO, or the
    endpoint's SLO is), 8 (UNDECIDED) when nothing is decided yet (INCONCLUSIVE: more frames settle it; RE-RUN: the
    machine was disturbed), 0 for GO. A CI job can tell "slower than real time" from "measure longer"."""
    if verdict.decision == "NO-GO" or (verdict.endpoint is not None and not verdict.endpoint.go):
        return Exit.NOGO
    if verdict.decision in ("INCONCLUSIVE", "RE-RUN"):
        return Exit.UNDECIDED
    return Exit.OK

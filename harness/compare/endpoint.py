"""`harness compare` on endpoint results (endpoint.json): what callers got, judged like run results.

Comparable only like against like: the identity is `harness.records.identity.EndpointMeasurement` (the one table,
shared with `--resume`); a difference the user did not allow refuses the pair (exit 5), another load generator's
hardware too unless `--allow-other-machine`. Load runs are paired by their shape (closed/open, callers, server
processes). Per pair, each metric is a row of the same `Comparison` the run compare prints, judged with the same
thresholds (`p50:10%`) and the same decision on interval bounds (harness.compare.regression.judge):
- packet interval: the gaps of each caller form an autocorrelated series; with >= 3 callers a side each caller's
  statistic is one observation (Welch t on logs, the run compare's per-process method), else a circular block
  bootstrap that never crosses a caller (every threshold: p50 ... max, as frames);
- first audio, time to handshake: one value per caller, Welch t on logs with >= 3 callers a side (the centre:
  p50 / mean thresholds); fewer callers: not judged, said so;
- deficit, drift, underrun: near zero on a healthy server, where a ratio means nothing: the change is the
  difference of the caller means as a share of the SLO's allowance for it (`p50:10%` = a tenth of 3 frames of
  deficit), Welch t on the raw values, >= 3 callers a side;
- failed callers: a caller that failed stays in the denominator; failures now where the baseline had none is
  `failed` (exit 1, like a run that measured before and fails now); more failures than before, a one-sided
  Fisher exact test at alpha.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from harness.compare.methods import (
    BOOTSTRAP_MIN_FRAMES,
    MIN_PROCESSES,
    Change,
    bootstrap_change,
    process_change,
    values_change,
)
from harness.compare.regression import Comparison, Outcome, RunComparison, StatisticChange, Threshold, ThresholdError, judge
from harness.records.endpoint import CallerResult, EndpointResults, LoadRun
from harness.records.identity import endpoint_measurement_of
from harness.stats.endpoint import FRAME_S, more_failures_p
from harness.stats.welch import welch_difference

CENTRE = {"p50", "mean"}  # the thresholds a per-caller metric is judged by (one value per caller)


def _run_key(run: LoadRun) -> str:
    shape = (f"open {run.arrival_rate_per_s:g}/s" if run.kind == "open" else "closed")
    servers = f" on {run.servers} servers" if run.servers > 1 else ""
    return f"endpoint {shape} x{run.sessions}{servers}"


def _ok(run: LoadRun) -> list[CallerResult]:
    return [c for c in run.callers if c.status == "ok"]


def _values(run: LoadRun, attr: str) -> list[float]:
    return [float(v) for c in _ok(run) if (v := getattr(c, attr)) is not None and np.isfinite(v)]


def _gaps(run: LoadRun) -> list[list[float]]:
    return [list(np.diff(np.asarray(c.raw.audio_s, dtype=float)) * 1000.0) for c in _ok(run)
            if len(c.raw.audio_s) > 2]


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    array = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)),
            "mean": float(array.mean()), "max": float(array.max())}


def _outcome(judged: list[StatisticChange], thresholds: list[Threshold]) -> Outcome:
    verdicts = {s.verdict for s, t in zip(judged, thresholds) if t.required or s.verdict != "not judged"}
    if not verdicts:
        verdicts = {"not judged"}
    return ("regression" if "slower" in verdicts else "inconclusive" if "unclear" in verdicts
            else "not judged" if "not judged" in verdicts else "improvement" if "faster" in verdicts
            else "unchanged")


def _row(name: str, base: Sequence[float], cur: Sequence[float], thresholds: list[Threshold],
         estimate: Callable[[Threshold], Change]) -> RunComparison:
    judged: list[StatisticChange] = []
    used: list[Threshold] = []
    for t in thresholds:
        try:
            change = estimate(t)
        except ValueError as exc:
            judged.append(StatisticChange(threshold=str(t), verdict="not judged", note=f"{t} not judged: {exc}"))
        else:
            judged.append(judge(change, t))
            if change.note:
                judged[-1].note = "; ".join(n for n in (judged[-1].note, change.note) if n)
        used.append(t)
    bs, cs = _summary(base), _summary(cur)
    return RunComparison(name=name, outcome=_outcome(judged, used), baseline=bs, current=cs,
                         change={k: cs[k] / bs[k] - 1 for k in bs if k in cs and bs[k] > 0}, statistics=judged,
                         processes=(len(base), len(cur)),
                         note="; ".join(dict.fromkeys(s.note for s in judged if s.note)))


def _callers(change: Change) -> Change:
    return Change(estimate=change.estimate, low=change.low, high=change.high, spread=change.spread,
                  method=change.method.replace("calleres", "callers"), note=change.note)


def _intervals_row(name: str, base: LoadRun, cur: LoadRun, thresholds: list[Threshold],
                   confidence: float) -> RunComparison:
    sb, sc = _gaps(base), _gaps(cur)

    def estimate(t: Threshold) -> Change:
        if not sb or not sc:
            raise ValueError("no caller received 3 packets (2 gaps) on " + (
                "either side" if not sb and not sc else "the baseline" if not sb else "the current side"))
        need = BOOTSTRAP_MIN_FRAMES.get(t.statistic) or 0
        if len(sb) >= MIN_PROCESSES and len(sc) >= MIN_PROCESSES and min(map(len, sb + sc)) >= max(need, 1):
            return _callers(process_change(sb, sc, t.statistic, confidence, unit="caller"))
        gaps = min(sum(map(len, sb)), sum(map(len, sc)))
        if not need or gaps < need:
            raise ValueError(f"{gaps} packet gaps for a bootstrap of {t.statistic} (needs "
                             + (f"{need})" if need else f"{MIN_PROCESSES} callers a side: it cannot be resampled)"))
        change = bootstrap_change(sb, sc, t.statistic, confidence, max(need, 1))
        return Change(estimate=change.estimate, low=change.low, high=change.high,
                      method=change.method.replace("frames", "packet gaps").replace("processes", "callers"),
                      note="few callers: the noise between calls is not measured" if change.note else "")

    return _row(f"{name}: packet interval ms", [g for s in sb for g in s], [g for s in sc for g in s], thresholds,
                estimate)


def _per_caller_row(name: str, label: str, base: list[float], cur: list[float], thresholds: list[Threshold],
                    confidence: float, budget: Optional[float]) -> RunComparison:
    """`budget` None: a ratio (Welch t on logs); else the difference of means as a share of `budget`."""
    centre = [t for t in thresholds if t.statistic in CENTRE]

    def estimate(t: Threshold) -> Change:
        if len(base) < MIN_PROCESSES or len(cur) < MIN_PROCESSES:
            raise ValueError(f"{len(base)} vs {len(cur)} callers with a value (needs {MIN_PROCESSES} a side: one "
                             "value per caller)")
        if budget is None:
            return _callers(values_change(base, cur, t.statistic, confidence, unit="caller"))
        d = welch_difference(base, cur, confidence)
        return Change(estimate=d.estimate / budget, low=d.low / budget, high=d.high / budget,
                      method=f"caller means, Welch t, as a share of the SLO's {budget:g} ({len(base)} vs "
                             f"{len(cur)} callers)")

    row = _row(f"{name}: {label}", base, cur, centre, estimate)
    if budget is not None:  # a ratio of near-zero values is noise: show the change against the allowance
        row.change = {k: (row.current[k] - row.baseline[k]) / budget for k in row.baseline if k in row.current}
    return row


def _failures_row(name: str, base: LoadRun, cur: LoadRun, alpha: float) -> RunComparison:
    fb, nb, fc, nc = base.failed, len(base.callers), cur.failed, len(cur.callers)
    show = f"{fc}/{nc} callers failed now, {fb}/{nb} in the baseline"
    reasons = sorted({c.reason or "" for c in cur.callers if c.status == "failed"} - {""})
    note = show + (f" ({'; '.join(reasons[:3])})" if reasons else "")
    outcome: Outcome
    if nc == 0 or nb == 0:
        outcome, note = "not judged", f"{show}: no callers to count"
    elif fc / nc <= fb / nb:
        outcome = "improvement" if fc / nc < fb / nb else "unchanged"
    elif fb == 0:
        outcome = "failed"  # callers that got through before fail now
    else:
        p = more_failures_p(fb, nb, fc, nc)
        outcome = "regression" if p < alpha else "inconclusive"
        note += f"; one-sided Fisher exact p = {p:.3g}"
    return RunComparison(name=f"{name}: failed callers", outcome=outcome, baseline={"mean": fb / nb if nb else 0.0},
                         current={"mean": fc / nc if nc else 0.0}, processes=(nb, nc), note=note)


def compare_load(name: str, base: LoadRun, cur: LoadRun, thresholds: list[Threshold], alpha: float,
                 base_slo_deficit: float, underrun_s: float) -> list[RunComparison]:
    confidence = 1.0 - 2.0 * alpha
    drift_budget = base_slo_deficit * FRAME_S * 1000.0 / max(cur.call_seconds, FRAME_S)
    rows = [_failures_row(name, base, cur, alpha), _intervals_row(name, base, cur, thresholds, confidence)]
    for label, attr, budget in (("first audio ms", "first_audio_ms", None),
                                ("time to handshake ms", "handshake_ms", None),
                                ("deficit frames", "deficit_frames", base_slo_deficit or None),
                                ("drift ms/s", "drift_ms_per_s", drift_budget or None),
                                ("underrun s", "underrun_s", underrun_s or None)):
        if budget is None and attr in ("deficit_frames", "drift_ms_per_s", "underrun_s"):
            continue  # an SLO allowance of 0: no scale to judge a change on
        rows.append(_per_caller_row(name, label, _values(base, attr), _values(cur, attr), thresholds, confidence,
                                    budget))
    return rows


def _search_row(base: EndpointResults, cur: EndpointResults) -> Optional[RunComparison]:
    b, c = base.search, cur.search
    if b is None or c is None:
        return None
    outcome: Outcome = ("regression" if c.largest_passing < b.largest_passing else "improvement"
                        if c.largest_passing > b.largest_passing else "unchanged")
    return RunComparison(name=f"endpoint search: largest {c.what} meeting the SLO", outcome=outcome,
                         baseline={"max": float(b.largest_passing)}, current={"max": float(c.largest_passing)},
                         note=f"{b.largest_passing} -> {c.largest_passing} ({c.limited_by})")


def compare_endpoints(baseline: EndpointResults, current: EndpointResults, thresholds: list[Threshold],
                      alpha: float, baseline_label: str, current_label: str, allow_other_machine: bool = False,
                      allow_differences: Optional[set[str]] = None) -> Comparison:
    if not 0.0 < alpha < 0.5:
        raise ThresholdError(f"alpha must be within (0, 0.5), got {alpha}")
    allowed = frozenset(allow_differences or set())
    mb, mc = endpoint_measurement_of(baseline), endpoint_measurement_of(current)
    comparison = Comparison(baseline_label=baseline_label, current_label=current_label,
                            thresholds=[str(t) for t in thresholds], alpha=alpha, confidence=1.0 - 2.0 * alpha,
                            baseline_hardware=mb.hardware or "unknown", current_hardware=mc.hardware or "unknown",
                            same_hardware=mb.hardware == mc.hardware)
    if mb.hardware is None or mc.hardware is None:
        comparison.warnings.append("the load generator's hardware is not recorded on one side (an older "
                                   "endpoint.json): not judged")
    hardware = mb.differences(mc, allowed | ({"hardware"} if allow_other_machine else frozenset()))
    if any(d.startswith("hardware ") for d in hardware):
        comparison.refused = ("different hardware of the load generator: the callers' figures of other machines "
                              "differ for reasons no code change explains (--allow-other-machine compares them anyway)")
        return comparison
    if mb.hardware != mc.hardware and mb.hardware and mc.hardware:
        comparison.warnings.append("different hardware: differences may be the machine, not the code")
    for field in sorted(allowed):
        comparison.warnings.append(f"{field} may differ (--allow-difference): the change includes its effect")
    if [f for f in (baseline.failure, current.failure) if f]:
        rows = []
        if current.failure:
            outcome: Outcome = "no baseline" if baseline.failure else "failed"
            rows.append(RunComparison(name="endpoint", outcome=outcome, note=f"not measured now: {current.failure}"))
        else:
            rows.append(RunComparison(name="endpoint", outcome="no baseline",
                                      note=f"not measured in the baseline: {baseline.failure}"))
        comparison.runs = rows
        return comparison
    differences = mb.differences(mc, allowed | {"hardware"})
    if differences:
        comparison.runs = [RunComparison(name="endpoint", outcome="not comparable", differences=differences,
                                         note="measurement settings differ: " + "; ".join(differences))]
        return comparison
    base_runs = {_run_key(r): r for r in baseline.runs}
    cur_runs = {_run_key(r): r for r in current.runs}
    rows: list[RunComparison] = []
    for key in list(base_runs) + [k for k in cur_runs if k not in base_runs]:
        b, c = base_runs.get(key), cur_runs.get(key)
        if c is None:
            rows.append(RunComparison(name=key, outcome="missing", note="in the baseline, not in the current results"))
        elif b is None:
            rows.append(RunComparison(name=key, outcome="no baseline", note="not in the baseline: nothing to compare "
                                                                            "with"))
        else:
            rows += compare_load(key, b, c, thresholds, alpha, current.slo.deficit_frames, current.slo.underrun_s)
    search = _search_row(baseline, current)
    if search is not None:
        rows.append(search)
    comparison.runs = rows
    return comparison


def merge(runs: Comparison, endpoint: Comparison) -> Comparison:
    """A scenario folder with both results: one comparison, the endpoint's rows after the runs'."""
    merged = runs.model_copy(deep=True)
    merged.warnings += [f"endpoint: {w}" for w in endpoint.warnings]
    if endpoint.refused:
        merged.runs.append(RunComparison(name="endpoint", outcome="not comparable", note=endpoint.refused))
    merged.runs += endpoint.runs
    return merged

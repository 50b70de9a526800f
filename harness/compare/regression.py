"""Regression between two sessions: Mann-Whitney U on the raw samples plus an effect-size threshold.

A run regresses when its current samples are significantly slower (one-sided Mann-Whitney U,
p < alpha) *and* some thresholded statistic grew by more than its threshold (`p50:5%`, as
pytest-benchmark writes them). Both are needed: with thousands of frames a 0.5% shift is
significant but irrelevant, and with a few frames a 20% swing can be noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import mannwhitneyu

from harness.records.schema import RunResult, Session

DEFAULT_THRESHOLDS = ("p50:10%", "p99:20%")
STATISTICS = ("p50", "p90", "p99", "mean", "max")
# A tail percentile of few frames is just their largest value: judge it only with enough frames.
MIN_FRAMES = {"p50": 1, "mean": 1, "max": 1, "p90": 20, "p99": 100}
_THRESHOLD = re.compile(r"^(p50|p90|p99|mean|max):(\d+(?:\.\d+)?)%$")


class ThresholdError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    statistic: str
    fraction: float

    def __str__(self) -> str:
        return f"{self.statistic}:{self.fraction * 100:g}%"


def parse_threshold(text: str) -> Threshold:
    match = _THRESHOLD.match(text.strip())
    if not match:
        raise ThresholdError(f"bad threshold {text!r}: write STATISTIC:PERCENT% with STATISTIC one of "
                             f"{', '.join(STATISTICS)} (e.g. p50:5%)")
    return Threshold(match.group(1), float(match.group(2)) / 100)


class RunComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    outcome: Literal["regression", "improvement", "unchanged", "failed", "missing", "new", "not comparable"]
    baseline: dict[str, float] = Field(default_factory=dict)
    current: dict[str, float] = Field(default_factory=dict)
    change: dict[str, float] = Field(default_factory=dict)
    p_slower: Optional[float] = None
    p_faster: Optional[float] = None
    exceeded: list[str] = Field(default_factory=list)
    note: str = ""


class Comparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline_label: str
    current_label: str
    thresholds: list[str]
    alpha: float
    same_machine: bool
    warnings: list[str]
    runs: list[RunComparison]

    @property
    def regressed(self) -> bool:
        return any(r.outcome in {"regression", "failed"} for r in self.runs)


def _stats(run: RunResult) -> dict[str, float]:
    m = run.metrics
    assert m is not None
    return {name: getattr(m.ms_per_step, name) for name in STATISTICS}


def compare_run(name: str, base: Optional[RunResult], cur: Optional[RunResult], thresholds: list[Threshold],
                alpha: float) -> RunComparison:
    if cur is None:
        return RunComparison(name=name, outcome="missing", note="in the baseline, not in the current results")
    if base is None:
        return RunComparison(name=name, outcome="new", note="not in the baseline")
    if base.metrics is None:
        return RunComparison(name=name, outcome="not comparable", note=f"baseline run was {base.status}")
    if cur.metrics is None:
        return RunComparison(name=name, outcome="failed", note=f"ok in the baseline, {cur.status} now: {cur.reason}")
    b, c = base.metrics.samples_ms, cur.metrics.samples_ms
    slower = float(mannwhitneyu(c, b, alternative="greater").pvalue)
    faster = float(mannwhitneyu(c, b, alternative="less").pvalue)
    bs, cs = _stats(base), _stats(cur)
    change = {k: cs[k] / bs[k] - 1 for k in bs if bs[k] > 0}
    frames = min(len(b), len(c))
    judged = [t for t in thresholds if frames >= MIN_FRAMES[t.statistic]]
    skipped = [f"{t} not judged: {frames} frames (needs {MIN_FRAMES[t.statistic]})" for t in thresholds
               if t not in judged]
    exceeded = [str(t) for t in judged if change.get(t.statistic, 0.0) > t.fraction]
    improved = [str(t) for t in judged if change.get(t.statistic, 0.0) < -t.fraction]
    outcome: str = "unchanged"
    if slower < alpha and exceeded:
        outcome = "regression"
    elif faster < alpha and improved:
        outcome = "improvement"
    return RunComparison(name=name, outcome=outcome, baseline=bs, current=cs, change=change,  # type: ignore[arg-type]
                         p_slower=slower, p_faster=faster, exceeded=exceeded if outcome == "regression" else [],
                         note="; ".join(skipped))


def compare_sessions(baseline: Session, current: Session, thresholds: list[Threshold], alpha: float,
                     baseline_label: str, current_label: str) -> Comparison:
    warnings = []
    same = baseline.machine.fingerprint == current.machine.fingerprint
    if not same:
        b, c = baseline.machine, current.machine
        warnings.append(f"different machines (fingerprint {b.fingerprint} vs {c.fingerprint}: {b.cpu_model}"
                        f"{', ' + b.gpus[0].name if b.gpus else ''} vs {c.cpu_model}"
                        f"{', ' + c.gpus[0].name if c.gpus else ''}): differences may be the hardware, not the code")
    if baseline.scenario.get("name") != current.scenario.get("name"):
        warnings.append(f"different scenarios: {baseline.scenario.get('name')} vs {current.scenario.get('name')}")
    if baseline.weights != current.weights:
        warnings.append(f"different weights: {baseline.weights} vs {current.weights}")
    base_runs = {r.name: r for r in baseline.runs}
    cur_runs = {r.name: r for r in current.runs}
    names = list(base_runs) + [n for n in cur_runs if n not in base_runs]
    runs = [compare_run(n, base_runs.get(n), cur_runs.get(n), thresholds, alpha) for n in names]
    return Comparison(baseline_label=baseline_label, current_label=current_label,
                      thresholds=[str(t) for t in thresholds], alpha=alpha, same_machine=same, warnings=warnings,
                      runs=runs)


def markdown(comparison: Comparison) -> str:
    head = "REGRESSION" if comparison.regressed else "no regression"
    lines = [f"## Performance: {head}", "",
             f"`{comparison.baseline_label}` -> `{comparison.current_label}`; thresholds "
             f"{', '.join(comparison.thresholds)}; one-sided Mann-Whitney U, alpha {comparison.alpha:g}", ""]
    lines += [f"> warning: {w}" for w in comparison.warnings]
    lines += ["", "| run | outcome | p50 ms | change | p99 ms | change | p(slower) |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in comparison.runs:
        if r.current and r.baseline:
            lines.append(f"| {r.name} | **{r.outcome}** | {r.baseline['p50']:.1f} -> {r.current['p50']:.1f} | "
                         f"{r.change['p50']:+.1%} | {r.baseline['p99']:.1f} -> {r.current['p99']:.1f} | "
                         f"{r.change['p99']:+.1%} | {r.p_slower:.3g} |")
        else:
            lines.append(f"| {r.name} | **{r.outcome}** | - | - | - | - | {r.note} |")
    return "\n".join(lines) + "\n"

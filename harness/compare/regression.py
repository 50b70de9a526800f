"""Regression verdicts between two sessions, run by run, with the noise judged before the threshold.

For each thresholded statistic (`p50:10%`, written as pytest-benchmark does) the relative change
gets a two-sided interval at confidence 1 - 2 alpha (harness.compare.methods), so that each bound
alone holds at 1 - alpha. The decision uses the bounds, not a p-value beside a point estimate:
- regression when the LOWER bound of the slowdown exceeds the threshold: the run is slower by more
  than the threshold with confidence 1 - alpha. ("significant AND point estimate > threshold"
  flags about half of all true changes that sit exactly at the threshold, and every shift that a
  too-narrow interval calls significant; the lower bound keeps false alarms at alpha or below);
- improvement when the upper bound is below minus the threshold;
- inconclusive when the interval still reaches past the threshold and its half-width (or the
  spread between processes) is larger than the threshold: this machine's noise is above the
  threshold, and the outcome says so instead of guessing;
- unchanged otherwise (the slowdown is shown to be below the threshold, or small against it);
- not judged when a thresholded statistic could not be estimated at all (too few frames for a tail, samples that
  are NaN, infinite, negative or empty): never counted as unchanged; exit 7 unless something worse applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, computed_field

from harness.compare.hardware import hardware_differences, hardware_key, software_changes
from harness.compare.methods import QUANTILES, Change, estimate_change
from harness.records.exits import Exit
from harness.records.identity import override_hint
from harness.records.schema import RunResult, Session
from harness.stats.disturbance import Interference, interference
from harness.stats.samples import sample_problem, values_problem
from harness.verdict.disturbed import frame_disturbance

DEFAULT_THRESHOLDS = ("p50:10%", "p99:20%")
STATISTICS = ("p50", "p90", "p99", "mean", "max")
# A tail percentile of few frames is just their largest value: judge it only with enough frames.
MIN_FRAMES = {"p50": 1, "mean": 1, "max": 1, "p90": 20, "p99": 100}
_THRESHOLD = re.compile(r"^(p50|p90|p99|mean|max):(\d+(?:\.\d+)?)%$")

# Exit codes of `harness compare`, from the one table (harness.records.exits).
EXIT_REGRESSION = Exit.FAILED
EXIT_NO_BASELINE = Exit.NO_BASELINE
EXIT_NOT_COMPARABLE = Exit.NOT_COMPARABLE
EXIT_INCONCLUSIVE = Exit.INCONCLUSIVE
EXIT_NOT_JUDGED = Exit.NOT_JUDGED

Outcome = Literal["regression", "failed", "improvement", "unchanged", "inconclusive", "no baseline",
                  "missing", "not comparable", "skipped", "not measured", "not judged"]
# The exit code an outcome asks for; the comparison exits with the first that any run asks for.
_EXIT_ORDER: list[tuple[int, set[str]]] = [
    (EXIT_REGRESSION, {"regression", "failed"}),
    (EXIT_NOT_COMPARABLE, {"not comparable", "missing"}),
    (EXIT_NO_BASELINE, {"no baseline"}),
    (EXIT_INCONCLUSIVE, {"inconclusive"}),
    (EXIT_NOT_JUDGED, {"not judged"}),
]


class ThresholdError(ValueError):
    pass


@dataclass(frozen=True)
class Threshold:
    statistic: str
    fraction: float
    # True: the user asked for it, so a statistic that cannot be judged is the outcome "not judged" (exit 7).
    # The defaults are judged where the frames allow (p99 needs 1000 frames by bootstrap), noted where not.
    required: bool = True

    def __str__(self) -> str:
        return f"{self.statistic}:{self.fraction * 100:g}%"


def parse_threshold(text: str, required: bool = True) -> Threshold:
    match = _THRESHOLD.match(text.strip())
    if not match:
        raise ThresholdError(f"bad threshold {text!r}: write STATISTIC:PERCENT% with STATISTIC one of "
                             f"{', '.join(STATISTICS)} (e.g. p50:5%)")
    fraction = float(match.group(2)) / 100
    if not 0 < fraction < 100:
        raise ThresholdError(f"bad threshold {text!r}: the percentage must be above 0 and below 10000")
    return Threshold(match.group(1), fraction, required)


def default_thresholds() -> list[Threshold]:
    """The thresholds when none is given: judged where the frames allow, noted (not failed) where not."""
    return [parse_threshold(t, required=False) for t in DEFAULT_THRESHOLDS]


class StatisticChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: str
    verdict: Literal["slower", "faster", "same", "unclear", "not judged"]
    change: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    noise: Optional[float] = Field(default=None, description="interval half-width or between-process spread")
    spread: Optional[float] = Field(default=None, description="between-process spread (process method)")
    method: str = ""
    note: str = ""


class RunComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    outcome: Outcome
    baseline: dict[str, float] = Field(default_factory=dict)
    current: dict[str, float] = Field(default_factory=dict)
    change: dict[str, float] = Field(default_factory=dict)
    statistics: list[StatisticChange] = Field(default_factory=list)
    differences: list[str] = Field(default_factory=list, description="measurement settings that differ")
    sample_differences: list[str] = Field(default_factory=list, description="settings that change only the sample "
                                                                            "(frames, seed): judged, with a warning")
    processes: tuple[int, int] = (0, 0)
    note: str = ""


class Comparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline_label: str
    current_label: str
    thresholds: list[str]
    alpha: float
    confidence: float
    baseline_hardware: str
    current_hardware: str
    same_hardware: bool
    software_changes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    refused: str = Field(default="", description="why nothing was compared (other hardware)")
    runs: list[RunComparison] = Field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(r.outcome in {"regression", "failed"} for r in self.runs)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def exit_code(self) -> int:
        if self.refused:
            return EXIT_NOT_COMPARABLE
        outcomes = {r.outcome for r in self.runs}
        return next((code for code, kinds in _EXIT_ORDER if outcomes & kinds), 0)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def headline(self) -> str:
        return {0: "no regression", EXIT_REGRESSION: "REGRESSION", EXIT_NOT_COMPARABLE: "NOT COMPARABLE",
                EXIT_NO_BASELINE: "NO BASELINE", EXIT_INCONCLUSIVE: "INCONCLUSIVE",
                EXIT_NOT_JUDGED: "NOT JUDGED"}[self.exit_code]


def _stats(run: RunResult) -> dict[str, float]:
    m = run.metrics
    assert m is not None
    return {name: getattr(m.ms_per_step, name) for name in STATISTICS}


def judge(change: Change, threshold: Threshold) -> StatisticChange:
    theta = threshold.fraction
    verdict: str
    note = ""
    if change.low > theta:
        verdict = "slower"
    elif change.high < -theta:
        verdict = "faster"
    elif change.high > theta and change.noise > theta:
        verdict = "unclear"
        note = f"{threshold.statistic} inconclusive: noise {change.noise:.1%} > threshold {theta:.0%}"
    else:
        verdict = "same"
        if change.high > theta:
            note = (f"{threshold.statistic} {change.estimate:+.1%} (interval {change.low:+.1%} to "
                    f"{change.high:+.1%}) is not shown to exceed {theta:.0%}")
    return StatisticChange(threshold=str(threshold), verdict=verdict, change=change.estimate,  # type: ignore[arg-type]
                           low=change.low, high=change.high, noise=change.noise, spread=change.spread,
                           method=change.method, note=note)


# Without per-frame evidence (files written before the worker recorded its CPU time), host CPU utilisation
# (telemetry) this many points above what the run's own threads account for means other processes shared the
# machine: at `pace: fast` the worker keeps its threads busy whatever its speed, so its own share is
# threads / cores, and a code change does not raise the host's utilisation.
OTHER_LOAD_POINTS = 25.0
BUSIER_POINTS = 20.0


def _host_cpu(run: RunResult) -> Optional[float]:
    summary = run.metrics.telemetry_summary if run.metrics is not None else None
    return summary.cpu_percent_mean if summary is not None else None


def contention(base: RunResult, cur: RunResult, pace: object, cores: int) -> str:
    """Why a slowdown may be other processes' load, not the code ("" when the telemetry shows none): the fallback
    for runs without per-frame evidence, which cannot say how much of the slowdown the load explains.

    Only load during the *current* run can fake a slowdown: load on the baseline made the baseline slower, which
    can only hide one."""
    if str(pace or "fast") != "fast":
        return ""
    host = _host_cpu(cur)
    threads = cur.engine.torch_threads if cur.engine is not None else None
    if host is not None and threads and cores > 0:
        own = 100.0 * min(threads, cores) / cores
        if host - own >= OTHER_LOAD_POINTS:
            return (f"other processes loaded the machine during the current run (host CPU {host:.0f}% where its "
                    f"{threads} thread(s) account for {own:.0f}%): a slowdown may be their load, not the code")
    b, c = _host_cpu(base), _host_cpu(cur)
    if b is not None and c is not None and c - b >= BUSIER_POINTS:
        return (f"the machine was busier during the current run (host CPU {c:.0f}% vs {b:.0f}%): a slowdown may "
                "be other processes' load, not the code")
    return ""


def _interference(run: RunResult, statistic: str) -> Optional[Interference]:
    """What the time the worker could not run adds to `statistic` of this run; None without per-frame evidence."""
    m = run.metrics
    if m is None or m.frame_cpu is None or not m.frame_cpu.cpu_ms:
        return None
    stolen = frame_disturbance(m, run.config.device.value).stolen_ms
    return interference(m.samples_ms, stolen, QUANTILES.get(statistic))


def interference_doubts(base: RunResult, cur: RunResult, judged: list[StatisticChange],
                        thresholds: list[Threshold]) -> tuple[bool, list[str]]:
    """In proportion: a slowdown is doubted only when the interference measured during the current run can explain
    it, i.e. its lower bound, less what the stolen time adds to that statistic, no longer exceeds the threshold.
    Returns (every slowdown explained, notes); (False, []) when the current run has no per-frame evidence."""
    explained, notes, slower = [], [], 0
    for change, t in zip(judged, thresholds):
        if change.verdict != "slower" or change.low is None:
            continue
        slower += 1
        found = _interference(cur, t.statistic)
        if found is None:
            return False, []
        left = (1.0 + change.low) / (1.0 + found.inflation) - 1.0
        if left <= t.fraction:
            explained.append(t.statistic)
            notes.append(f"{t.statistic}: the current run was disturbed during {found.disturbed} frames, which adds "
                         f"{found.inflation:+.1%} to it: enough to explain a slowdown of at least {change.low:+.1%}")
        else:
            notes.append(f"{t.statistic}: slower by at least {change.low:+.1%}, more than the interference measured "
                         f"during the current run explains ({found.inflation:+.1%}, {found.disturbed} disturbed "
                         "frames)" if found.disturbed else "")
    for t in thresholds[:1]:
        seen = _interference(base, t.statistic)
        if seen is not None and seen.disturbed:
            notes.append(f"the baseline was disturbed during {seen.disturbed} frames: that can only hide a slowdown")
    return slower > 0 and len(explained) == slower, [n for n in notes if n]


def _measured_pair(name: str, base: RunResult, cur: RunResult, thresholds: list[Threshold],
                   confidence: float, pace: object = "fast", allowed: frozenset[str] = frozenset(),
                   cores: int = 0) -> RunComparison:
    assert base.metrics is not None and cur.metrics is not None
    bs, cs = _stats(base), _stats(cur)
    garbage = [f"{label}: {problem}" for label, m, stats in (("baseline", base.metrics, bs), ("current", cur.metrics, cs))
               if (problem := sample_problem(m.samples_ms) or values_problem(stats))]
    if garbage:  # nothing can be estimated from it: said so, never "unchanged"
        note = "; ".join(garbage)
        return RunComparison(name=name, outcome="not judged", note=note, statistics=[
            StatisticChange(threshold=str(t), verdict="not judged", note=f"{t} not judged: {note}")
            for t in thresholds])
    frames = min(base.metrics.frames, cur.metrics.frames, len(base.metrics.samples_ms),
                 len(cur.metrics.samples_ms))
    judged, caveats = [], []
    for t in thresholds:
        need = MIN_FRAMES[t.statistic]
        if frames < need:
            judged.append(StatisticChange(threshold=str(t), verdict="not judged",
                                          note=f"{t} not judged: {frames} frames (needs {need})"))
            continue
        try:
            change = estimate_change(base.metrics, cur.metrics, t.statistic, confidence, need)
        except ValueError as exc:  # too few frames for a tail by bootstrap, or a zero step time
            judged.append(StatisticChange(threshold=str(t), verdict="not judged", note=f"{t} not judged: {exc}"))
            continue
        judged.append(judge(change, t))
        caveats.append(change.note)
    verdicts = {s.verdict for s, t in zip(judged, thresholds) if t.required or s.verdict != "not judged"}
    if not verdicts:  # not one statistic could be judged, asked for or not
        verdicts = {"not judged"}
    outcome: Outcome = ("regression" if "slower" in verdicts else "inconclusive" if "unclear" in verdicts
                        else "not judged" if "not judged" in verdicts
                        else "improvement" if "faster" in verdicts else "unchanged")
    if _interference(cur, "p50") is not None:
        explained, doubts = interference_doubts(base, cur, judged, thresholds)
        caveats[:0] = doubts
        if explained and outcome == "regression":
            outcome = "inconclusive"  # the measured interference can explain every slowdown found
    else:
        busier = contention(base, cur, pace, cores) if "torch_threads" not in allowed else ""
        if busier:
            caveats.insert(0, busier)
            if outcome == "regression":
                outcome = "inconclusive"  # the gate cannot tell this slowdown from the load that came with it
    return RunComparison(name=name, outcome=outcome, baseline=bs, current=cs,
                         change={k: cs[k] / bs[k] - 1 for k in bs if bs[k] > 0}, statistics=judged,
                         processes=(max(1, len(base.metrics.processes)), max(1, len(cur.metrics.processes))),
                         note="; ".join(n for n in dict.fromkeys([*(s.note for s in judged), *caveats]) if n))


def compare_run(name: str, base: Optional[RunResult], cur: Optional[RunResult], thresholds: list[Threshold],
                confidence: float, allowed: set[str], differences: list[str],
                pace: object = "fast", cores: int = 0, sample: Optional[list[str]] = None) -> RunComparison:
    """`differences`: the measurement identity's differing fields that change the quantity measured
    (harness.records.identity), allowed ones left out: the pair is refused, naming the flag that compares it anyway.
    `sample`: fields that change only the sample (frames, seed): judged, with them shown as a warning."""
    found = _compare_run(name, base, cur, thresholds, confidence, allowed, differences, pace, cores)
    if sample and found.outcome != "not comparable":
        warning = (f"another sample ({'; '.join(sample)}): the same quantity estimated from other frames, "
                   "its interval says how well")
        found = found.model_copy(update={"sample_differences": list(sample),
                                         "note": "; ".join(n for n in (warning, found.note) if n)})
    return found


def _compare_run(name: str, base: Optional[RunResult], cur: Optional[RunResult], thresholds: list[Threshold],
                 confidence: float, allowed: set[str], differences: list[str],
                 pace: object = "fast", cores: int = 0) -> RunComparison:
    if cur is None:
        return RunComparison(name=name, outcome="missing", note="in the baseline, not in the current results")
    if base is None:
        return RunComparison(name=name, outcome="no baseline", note="not in the baseline: nothing to compare with")
    if differences:
        return RunComparison(name=name, outcome="not comparable", differences=differences,
                             note="measurement settings differ: " + "; ".join(differences)
                                  + f" ({override_hint(differences)} compares them anyway)")
    claimed = [f"{label}: status ok but no metrics (a damaged file)" for label, r in (("baseline", base),
                                                                                      ("current", cur))
               if r.status == "ok" and r.metrics is None]
    if claimed:
        return RunComparison(name=name, outcome="not judged", note="; ".join(claimed))
    if base.metrics is None and cur.metrics is None:
        kind = "skipped" if base.status == cur.status == "skipped" else "not measured"
        return RunComparison(name=name, outcome=kind, note=f"{base.status} in the baseline, {cur.status} now: "
                                                           f"{cur.reason}")
    if base.metrics is None:
        return RunComparison(name=name, outcome="no baseline",
                             note=f"{base.status} in the baseline ({base.reason}): nothing to compare with")
    if cur.metrics is None and cur.status == "interrupted":  # stopped by the user, kept but not judged: no failure
        return RunComparison(name=name, outcome="not measured", note=f"interrupted now: {cur.reason}")
    if cur.metrics is None:
        return RunComparison(name=name, outcome="failed", note=f"ok in the baseline, {cur.status} now: {cur.reason}")
    return _measured_pair(name, base, cur, thresholds, confidence, pace, frozenset(allowed), cores)


def compare_sessions(baseline: Session, current: Session, thresholds: list[Threshold], alpha: float,
                     baseline_label: str, current_label: str, allow_other_machine: bool = False,
                     allow_differences: Optional[set[str]] = None) -> Comparison:
    if not 0.0 < alpha < 0.5:
        raise ThresholdError(f"alpha must be within (0, 0.5), got {alpha}")
    allowed = allow_differences or set()
    confidence = 1.0 - 2.0 * alpha
    hw_base, hw_cur = hardware_key(baseline.machine), hardware_key(current.machine)
    comparison = Comparison(baseline_label=baseline_label, current_label=current_label,
                            thresholds=[str(t) for t in thresholds], alpha=alpha, confidence=confidence,
                            baseline_hardware=hw_base, current_hardware=hw_cur, same_hardware=hw_base == hw_cur,
                            software_changes=software_changes(baseline, current))
    if hw_base != hw_cur:
        what = "; ".join(hardware_differences(baseline.machine, current.machine))
        if not allow_other_machine:
            comparison.refused = (f"different hardware ({what}): timings of other machines differ for reasons "
                                  "no code change explains (--allow-other-machine compares them anyway)")
            return comparison
        comparison.warnings.append(f"different hardware ({what}): differences may be the machine, not the code")
    if baseline.scenario.name != current.scenario.name:
        comparison.warnings.append(f"different scenarios: {baseline.scenario.name} vs "
                                   f"{current.scenario.name}")
    for field in sorted(allowed):
        comparison.warnings.append(f"{field} may differ (--allow-difference): the change includes its effect")
    base_runs = {r.name: r for r in baseline.runs}
    cur_runs = {r.name: r for r in current.runs}
    names = list(base_runs) + [n for n in cur_runs if n not in base_runs]
    pace = current.scenario.pace.value
    cores = current.machine.cpu_cores_logical

    def differences(name: str, sample: bool) -> list[str]:
        base, cur = base_runs.get(name), cur_runs.get(name)
        if base is None or cur is None:
            return []
        before, after = baseline.measurement(base), current.measurement(cur)
        if sample:
            return [d for d in before.sample_differences(after) if d.split(" ", 1)[0] not in allowed]
        return before.differences(after, frozenset(allowed), sample=False)

    comparison.runs = [compare_run(n, base_runs.get(n), cur_runs.get(n), thresholds, confidence, allowed,
                                   differences(n, False), pace, cores, differences(n, True)) for n in names]
    return comparison

"""The comparison as markdown: the CI step summary and the console text of `harness compare`."""

from __future__ import annotations

from harness.compare.regression import (
    EXIT_INCONCLUSIVE,
    EXIT_NO_BASELINE,
    EXIT_NOT_COMPARABLE,
    EXIT_REGRESSION,
    Comparison,
    RunComparison,
)
from harness.records.exits import MEANING, Exit
from harness.records.text import markdown_text

EXIT_MEANING = {code: MEANING[code].removeprefix("compare: ") for code in
                (Exit.OK, EXIT_REGRESSION, EXIT_NO_BASELINE, EXIT_NOT_COMPARABLE, EXIT_INCONCLUSIVE, Exit.NOT_JUDGED)}
EXIT_MEANING[Exit.OK] = "no regression"
EXIT_MEANING[EXIT_REGRESSION] = "a run is slower past its threshold, or failed where it used to measure"


def _cell(text: str) -> str:
    return markdown_text(text)


def _interval(run: RunComparison, statistic: str) -> str:
    for s in run.statistics:
        if s.threshold.startswith(statistic + ":") and s.change is not None:
            return f"{s.change:+.1%} [{s.low:+.1%}, {s.high:+.1%}]"
    if statistic in run.change:
        return f"{run.change[statistic]:+.1%}"
    return "-"


def _pair(run: RunComparison, statistic: str) -> str:
    """baseline -> current of a statistic; "-" where a row has none (an endpoint's failed-caller share)."""
    if statistic not in run.baseline or statistic not in run.current:
        return "-"
    return f"{run.baseline[statistic]:.1f} -> {run.current[statistic]:.1f}"


def markdown(comparison: Comparison) -> str:
    c = comparison
    lines = [f"## Performance: {c.headline}", "",
             f"`{_cell(c.baseline_label)}` -> `{_cell(c.current_label)}`; thresholds {', '.join(c.thresholds)}; "
             f"a run regresses when the lower bound of its slowdown ({1 - c.alpha:.0%} one-sided) exceeds the "
             f"threshold. Exit {c.exit_code}: {EXIT_MEANING[c.exit_code]}.", "",
             f"hardware {c.current_hardware}" + ("" if c.same_hardware else f" (baseline {c.baseline_hardware})")]
    lines += [f"software changed: {_cell(change)}" for change in c.software_changes]
    lines += [""] + [f"> warning: {_cell(w)}" for w in c.warnings]
    if c.refused:
        lines += ["", f"**not comparable**: {_cell(c.refused)}"]
        return "\n".join(lines) + "\n"
    lines += ["", "| run | outcome | p50 ms | p50 change [interval] | p99 ms | p99 change [interval] | noise | note |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in c.runs:
        noise = max((s.noise for s in r.statistics if s.noise is not None), default=None)
        noise_text = "-" if noise is None else f"±{noise:.1%}"
        if r.current and r.baseline:
            lines.append(f"| {_cell(r.name)} | **{r.outcome}** | {_pair(r, 'p50')} | "
                         f"{_interval(r, 'p50')} | {_pair(r, 'p99')} | "
                         f"{_interval(r, 'p99')} | {noise_text} | {_cell(r.note)} |")
        else:
            lines.append(f"| {_cell(r.name)} | **{r.outcome}** | - | - | - | - | - | {_cell(r.note)} |")
    methods = list(dict.fromkeys(s.method for r in c.runs for s in r.statistics if s.method))
    if methods:
        lines += ["", "method: " + "; ".join(methods)]
    return "\n".join(lines) + "\n"

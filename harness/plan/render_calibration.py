"""`harness plan --calibration`: the published figures, what the model predicts for each, its error and band."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from harness.plan.calibrate import BAND_CLAIM, GOAL_MEDIAN, Calibration
from harness.stats.coverage import at_most_probability


def calibration_tables(cal: Calibration) -> list[Any]:
    p = cal.params
    header = Text(f"fitted: eta {p.eta:.3f} of the memory bandwidth ({cal.fitted['eta']}); per-kernel minimum "
                  f"{p.kernel_us:.2f} us ({cal.fitted['kernel_us']}); host cost {p.host_op_us:.2f} us per op "
                  f"({cal.fitted['host_op_us']}); the band widens by x{cal.structure:.2f} for the model's own "
                  f"accounting ({cal.fitted['structure']})")
    table = Table(title="published figures: predicted against published", title_justify="left")
    for column in ("figure", "split", "framework", "measures", "shares a fit figure's source", "published",
                   "predicted", "band", "error", "in band", "source"):
        table.add_column(column, overflow="fold")
    for c in cal.checks:
        unit = c.figure.unit
        shares = "-" if c.figure.split == "fit" else ("yes: not independent" if c.shares_source else "no: independent")
        table.add_row(c.figure.name, c.figure.split, c.figure.framework, c.figure.measures, shares,
                      f"{c.figure.value:g} {unit}",
                      f"{c.predicted:.1f}", f"{c.low:.1f}-{c.high:.1f}", f"{c.error:+.0%}",
                      "yes" if c.inside else "[red]no[/]", c.figure.source)
    inside, n = cal.coverage
    mae = cal.median_abs_error
    chance = at_most_probability(inside, n, BAND_CLAIM)
    every = cal.median_abs_error_all
    comparable = [c for c in cal.independent() if c.figure.comparable]
    summary = Text(f"independent figures (validation, no source shared with a fit figure): median absolute error "
                   f"{mae:.0%} (goal: 25% or less, each in its band: "
                   f"{'met' if mae <= GOAL_MEDIAN and inside == n else 'NOT met'}; {len(comparable)} of them ran "
                   f"moshi's own PyTorch frame); all validation figures: {every:.0%}; the band held the truth {inside} "
                   f"of {n} "
                   f"times (it claims about {BAND_CLAIM:.0%}: {inside} or fewer of {n} happens with probability "
                   f"{chance:.2f} when the claim is true, so {n} figures "
                   f"{'contradict it' if chance < 0.05 else 'do not refute it, nor prove it'})"
                   if mae is not None else "no validation figures")
    return [header, table, summary]


def calibration_json(cal: Calibration) -> str:
    inside, n = cal.coverage
    return json.dumps({
        "params": {"eta": cal.params.eta, "kernel_us": cal.params.kernel_us, "host_op_us": cal.params.host_op_us,
                   "kernel_ref_mhz": cal.params.kernel_ref_mhz},
        "fitted_on": cal.fitted,
        "figures": [{"name": c.figure.name, "split": c.figure.split, "published": c.figure.value,
                     "unit": c.figure.unit, "predicted": c.predicted, "low": c.low, "high": c.high,
                     "error": c.error, "in_band": c.inside, "source": c.figure.source,
                     "framework": c.figure.framework, "measures": c.figure.measures, "quote": c.figure.quote,
                     "shares_fit_source": c.shares_source} for c in cal.checks],
        "independent_median_abs_error": cal.median_abs_error,
        "validation_median_abs_error": cal.median_abs_error_all,
        "validation_coverage": {"inside": inside, "of": n, "claimed": BAND_CLAIM,
                                "p_at_most": at_most_probability(inside, n, BAND_CLAIM)},
    }, indent=2)

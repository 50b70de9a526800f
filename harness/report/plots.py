"""The report's figures, drawn with matplotlib and embedded as base64 PNG (no external requests)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Callable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness.records.schema import RunResult, Session  # noqa: E402
from harness.records.text import NO_MATHTEXT, plot_text  # noqa: E402
from harness.stats.samples import sample_problem  # noqa: E402

GIB = 2**30
STAGE_COLOURS = {"encode": "#4C78A8", "lm_step": "#F58518", "decode": "#54A24B"}
BUDGET_COLOUR = "#D62728"


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    caption: str
    png_base64: str


def _encode(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _ok(session: Session) -> list[RunResult]:
    # a run whose samples are garbage (NaN, negative, none) is reported invalid in the tables, never drawn
    return [r for r in session.runs if r.metrics is not None and sample_problem(r.metrics.samples_ms) is None]


def _budget(session: Session) -> float:
    return session.scenario.frame_budget_ms


def _headroom(session: Session) -> float:
    return session.scenario.criteria.headroom


def _height(n: int) -> float:
    return max(2.2, 0.45 * n + 1.2)


def step_times(session: Session) -> Optional[Figure]:
    runs = _ok(session)
    if not runs:
        return None
    budget = _budget(session)
    names = [plot_text(r.name) for r in runs]
    p50 = np.array([r.metrics.ms_per_step.p50 for r in runs])  # type: ignore[union-attr]
    p99 = np.array([r.metrics.ms_per_step.p99 for r in runs])  # type: ignore[union-attr]
    fig, ax = plt.subplots(figsize=(8, _height(len(runs))))
    y = np.arange(len(runs))
    ax.barh(y, p50, color=["#54A24B" if v <= budget else "#E45756" for v in p99], alpha=0.85, label="p50")
    ax.scatter(p99, y, color="black", marker="|", s=250, zorder=3, label="p99")
    ax.axvline(budget, color=BUDGET_COLOUR, linestyle="--", label=f"{budget:g} ms budget")
    ax.axvline(budget * (1 - _headroom(session)), color=BUDGET_COLOUR, linestyle=":", alpha=0.6,
               label="budget less headroom")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("ms per step (one 80 ms frame)")
    if max(p99.max(), budget) / max(min(p50.min(), budget), 1e-3) > 30:
        ax.set_xscale("log")
    ax.legend(loc="lower right", fontsize=8)
    return Figure("step_times", "ms per step against the budget",
                  "Bars: median step; ticks: p99. Green when p99 is within the budget.", _encode(fig))


def timeline(session: Session) -> Optional[Figure]:
    runs = _ok(session)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for run in runs:
        ax.plot(run.metrics.samples_ms, linewidth=1, label=plot_text(run.name))  # type: ignore[union-attr]
    ax.axhline(_budget(session), color=BUDGET_COLOUR, linestyle="--", label="budget")
    ax.set_xlabel("measured frame")
    ax.set_ylabel("ms per step")
    values = [v for r in runs for v in r.metrics.samples_ms]  # type: ignore[union-attr]
    if max(values) / max(min(values), 1e-3) > 20:
        ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    return Figure("timeline", "per-frame timeline", "Every measured frame in order (warmup excluded).", _encode(fig))


def distribution(session: Session) -> Optional[Figure]:
    runs = _ok(session)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for run in runs:
        samples = np.sort(np.asarray(run.metrics.samples_ms))  # type: ignore[union-attr]
        ax.step(samples, np.arange(1, samples.size + 1) / samples.size, where="post", label=plot_text(run.name))
    ax.axvline(_budget(session), color=BUDGET_COLOUR, linestyle="--", label="budget")
    ax.set_xscale("log")
    ax.set_xlabel("ms per step")
    ax.set_ylabel("share of frames at or below")
    ax.legend(fontsize=7, ncol=2)
    return Figure("distribution", "latency distribution",
                  "Cumulative distribution of step times: a curve left of the budget line at 1.0 never misses.",
                  _encode(fig))


def stages(session: Session) -> Optional[Figure]:
    runs = _ok(session)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(8, _height(len(runs))))
    y = np.arange(len(runs))
    left = np.zeros(len(runs))
    for stage, colour in STAGE_COLOURS.items():
        values = np.array([r.metrics.stage_p50_ms.get(stage, 0.0) for r in runs])  # type: ignore[union-attr]
        ax.barh(y, values, left=left, color=colour, label={"lm_step": "LMGen.step"}.get(stage, f"Mimi {stage}"))
        left += values
    ax.axvline(_budget(session), color=BUDGET_COLOUR, linestyle="--", label="budget")
    ax.set_yticks(y, [plot_text(r.name) for r in runs])
    ax.invert_yaxis()
    ax.set_xlabel("median ms per stage")
    ax.legend(fontsize=8, loc="lower right")
    return Figure("stages", "per-stage breakdown", "Median time of Mimi encode, LMGen.step and Mimi decode.",
                  _encode(fig))


def memory(session: Session) -> Optional[Figure]:
    rows = []  # (label, measured, predicted, capacity, kind)
    for run in session.runs:
        m = run.metrics
        if m is not None and m.cuda is not None:
            rows.append((plot_text(run.name), m.cuda.peak_reserved_bytes, run.plan.device_peak_bytes if run.plan else None,
                         m.cuda.total_bytes, "GPU"))
        elif m is not None:
            rows.append((plot_text(run.name), m.peak_rss_bytes, run.plan.host_peak_bytes if run.plan else None,
                         session.machine.ram_total_bytes, "host"))
    for plan in session.target_plans:
        if plan.device_peak_bytes is not None:
            rows.append((f"{plan.run} (target, predicted)", None, plan.device_peak_bytes,
                         plan.device_capacity_bytes, "GPU"))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, _height(len(rows))))
    y = np.arange(len(rows))
    measured = [r[1] / GIB if r[1] else 0.0 for r in rows]
    predicted = [r[2] / GIB if r[2] else 0.0 for r in rows]
    ax.barh(y - 0.18, measured, height=0.36, color="#4C78A8", label="measured peak")
    ax.barh(y + 0.18, predicted, height=0.36, color="#BAB0AC", label="planner's prediction")
    largest = max(max(measured), max(predicted), 1e-3)
    right = largest * 1.35
    capacities = [r[3] / GIB if r[3] else None for r in rows]
    if any(c is not None and c <= right for c in capacities):
        right = max(right, max(c for c in capacities if c is not None) * 1.05)
    for i, capacity in enumerate(capacities):
        if capacity is None:
            continue
        if capacity <= right:
            ax.plot([capacity] * 2, [i - 0.45, i + 0.45], color=BUDGET_COLOUR, linewidth=2,
                    label="capacity" if i == 0 else None)
        else:  # far off to the right: say it rather than squash the bars
            ax.annotate(f"capacity {capacity:.0f} GiB →", (right, i), ha="right", va="center", fontsize=8,
                        color=BUDGET_COLOUR)
    ax.set_xlim(0, right)
    ax.set_yticks(y, [f"{r[0]} [{r[4]}]" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("GiB")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return Figure("memory", "memory against capacity",
                  "Peak host RSS (CPU runs) or GPU memory reserved (CUDA runs), the planner's prediction, and the "
                  "capacity of the machine (red).", _encode(fig))


def telemetry(session: Session) -> Optional[Figure]:
    runs = [r for r in _ok(session) if r.metrics.telemetry is not None and r.metrics.telemetry.t_s]  # type: ignore[union-attr]
    if not runs:
        return None
    panels = [("cpu_percent", "host CPU %", 1.0), ("rss_bytes", "worker RSS (MiB)", 2**-20),
              ("cpu_mhz", "CPU MHz", 1.0), ("gpu_temp_c", "GPU °C", 1.0), ("gpu_power_w", "GPU W", 1.0),
              ("sm_clock_mhz", "SM clock MHz", 1.0)]
    shown = [p for p in panels if any(v is not None for r in runs
                                      for v in getattr(r.metrics.telemetry, p[0]))]  # type: ignore[union-attr]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 1.7 * len(shown) + 0.6), sharex=True, squeeze=False)
    for ax, (field, label, scale) in zip(axes[:, 0], shown):
        for run in runs:
            series = run.metrics.telemetry  # type: ignore[union-attr]
            start = run.metrics.frame_start_s[0] if run.metrics.frame_start_s else 0.0  # type: ignore[union-attr]
            points = [(t - start, v * scale) for t, v in zip(series.t_s, getattr(series, field)) if v is not None]
            if points:
                ax.plot(*zip(*points), linewidth=1, label=plot_text(run.name))
        ax.set_ylabel(label, fontsize=8)
    axes[0, 0].legend(fontsize=7, ncol=2)
    axes[-1, 0].set_xlabel("seconds from the first measured frame (negative: warmup)")
    missing = sorted({f"{k}: {v.removeprefix('unavailable: ')}" for r in runs
                      for k, v in r.metrics.telemetry.sources.items() if v != "available"})  # type: ignore[union-attr]
    caption = "Sampled in the worker while frames ran." + (" Not available here: " + "; ".join(missing) if missing else "")
    return Figure("telemetry", "telemetry over time", caption, _encode(fig))


PLOTS: list[Callable[[Session], Optional[Figure]]] = [step_times, timeline, distribution, stages, memory, telemetry]


def all_figures(session: Session, extra: list[Callable[[Session], Optional[Figure]]] | None = None) -> list[Figure]:
    figures = []
    with plt.rc_context(NO_MATHTEXT):  # names and labels from results are text, never mathtext
        for plot in PLOTS + (extra or []):
            figure = plot(session)
            if figure is not None:
                figures.append(figure)
    return figures

"""scripts/gpu-table: the benchmarks/gpu table from what gpu-check brought back (its --out folder) or left (its work
folder), read with harness's own loader (schema versions migrated); and the merge of gpu-check's one-run results
folders into one session, with harness's own verdict and report.

Imports harness, hence pydantic: on the lent machine it runs after the wheels step put them on PYTHONPATH.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.records.schema import RunResult, Session
from harness.records.store import load_session, write_session
from harness.report.render import criteria_of, write_report
from harness.verdict.recommend import decide

GIB = 2**30
MIB = 2**20
# Step times quoted in issue 20 for a PersonaPlex port on an H100 (bf16), the reference the H200 figures are read
# against; the H200 has the H100's compute and 1.4x its memory bandwidth.
PUBLISHED_H100_MS = {"bf16-eager": 77.5, "bf16-graphs": 30.2}
PLANNER_GOAL = 0.10  # the planner's device-memory prediction should be within 10% of the measurement


@dataclass
class Sources:
    """Where gpu-check's results are: its --out folder (flat) or its work folder (runs/<step>/)."""

    step_log: Optional[dict]
    runs: list[Path]  # results.json files of single-configuration runs
    capacity: list[Path]  # results.json files of capacity searches


def find_sources(folder: Path) -> Sources:
    log_file = folder / "gpu-check.json"
    step_log = json.loads(log_file.read_text(encoding="utf-8")) if log_file.exists() else None
    runs_dir = folder / "runs"
    if runs_dir.is_dir():  # the work folder: results folders in the order the steps ran
        order = [s.get("results_dir") for s in (step_log or {}).get("steps", []) if s.get("results_dir")]
        found = sorted(runs_dir.glob("*/results.json"),
                       key=lambda f: (order.index(f"runs/{f.parent.name}") if f"runs/{f.parent.name}" in order
                                      else len(order), f.parent.name))
        return Sources(step_log, [f for f in found if f.parent.name != "capacity"],
                       [f for f in found if f.parent.name == "capacity"])
    single = [folder / "results.json"] if (folder / "results.json").exists() else []
    capacity = [folder / "capacity-results.json"] if (folder / "capacity-results.json").exists() else []
    return Sources(step_log, single, capacity)


def merge(files: list[Path], into: Path) -> Optional[Session]:
    """One session of every run of the same scenario (gpu-check runs each in its own `harness run`), its verdict
    decided again over all of them, written as results.json, results.csv, report.html and summary.md."""
    sessions = [load_session(f) for f in files]
    if not sessions:
        return None
    merged = sessions[0].model_copy(deep=True)
    for other in sessions[1:]:
        if other.scenario.name != merged.scenario.name:
            continue  # another scenario: its own folder stays in the bundle
        merged.runs.extend(other.runs)
        merged.updated_at = max(merged.updated_at, other.updated_at)
    merged.state = "complete" if all(s.state == "complete" for s in sessions) else "interrupted"
    merged.verdict = decide(merged, criteria_of(merged))
    into.mkdir(parents=True, exist_ok=True)
    write_session(merged, into)
    write_report(merged, merged.verdict, into)
    return merged


# --- cells -------------------------------------------------------------------------------------------------------

def _f(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _memory(run: RunResult) -> str:
    """Peak device memory (the allocator's, against the planner's allocator prediction); on a CPU, host RSS."""
    check, m = run.plan_check, run.metrics
    if m is None:
        return "-"
    if m.cuda is not None:
        planned = check.predicted_device_bytes if check else None
        return (f"{m.cuda.peak_allocated_bytes / GIB:.2f} / {_f(planned / GIB if planned else None, 2)} GiB"
                f" ({_pct(check.device_error if check else None)})")
    planned = check.predicted_host_bytes if check else None
    return (f"host {m.peak_rss_bytes / GIB:.2f} / {_f(planned / GIB if planned else None, 2)} GiB"
            f" ({_pct(check.host_error if check else None)})")


def _device_total(run: RunResult) -> str:
    check = run.plan_check
    if check is None or check.measured_device_total_bytes is None:
        return "-"
    return (f"{check.measured_device_total_bytes / GIB:.2f} / "
            f"{_f((check.predicted_device_total_bytes or 0) / GIB or None, 2)} GiB")


def _capacity_cell(run: RunResult, capacity: dict[str, RunResult]) -> str:
    for cap_run in capacity.values():
        c = cap_run.metrics.capacity if cap_run.metrics else None
        same = (cap_run.config.dtype, cap_run.config.quantize, cap_run.config.cuda_graphs, cap_run.config.compile) == (
            run.config.dtype, run.config.quantize, run.config.cuda_graphs, run.config.compile)
        if c is not None and same and run.config.serving.value == "model":
            return f"{c.max_realtime_sessions} ({c.limited_by})"
    return "-"


def runs_table(runs: list[RunResult], capacity: dict[str, RunResult]) -> list[str]:
    lines = ["| configuration | frame | status | p50 ms | p99 ms | RTF | peak memory: measured / planned (error) | "
             "device total: measured / planned | roofline fraction | load s | warmup + compile s | prefill s | "
             "capacity (sessions) |",
             "|---|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for run in runs:
        m = run.metrics
        frame = "server" if run.config.serving.value == "personaplex-server" else "core"
        if m is None:
            lines.append(f"| {run.name} | {frame} | {run.status}: {run.reason[:80]} | - | - | - | - | - | - | - | - | - "
                         f"| - |")
            continue
        roof = run.plan_check.roofline_fraction if run.plan_check else None
        lines.append(f"| {run.name} | {frame} | {run.status} | {m.ms_per_step.p50:.1f} | {m.ms_per_step.p99:.1f} | "
                     f"{m.rtf:.2f} | {_memory(run)} | {_device_total(run)} | {_f(roof, 2)} | {m.load_s:.1f} | "
                     f"{m.warmup_s:.1f} | {_f(m.prefill.seconds if m.prefill else None)} | "
                     f"{_capacity_cell(run, capacity)} |")
    return lines


def capacity_table(capacity: dict[str, RunResult]) -> list[str]:
    lines = ["| configuration | sessions in real time | limited by | tick p50 / p99 ms | memory per session: "
             "measured / planned MiB | cost per conversation-hour | sizes tried |", "|---|---:|---|---|---|---|---|"]
    for name, run in capacity.items():
        c = run.metrics.capacity if run.metrics else None
        if c is None:
            lines.append(f"| {name} | - | {run.status}: {run.reason[:80]} | - | - | - | - |")
            continue
        per = f"{_f(c.memory_per_session_bytes / MIB if c.memory_per_session_bytes else None, 0)} / " \
              f"{_f(c.predicted_memory_per_session_bytes / MIB if c.predicted_memory_per_session_bytes else None, 0)}"
        cost = (f"${c.cost.per_conversation_hour_usd:.3f} ({c.cost.price_source})"
                if c.cost and c.cost.per_conversation_hour_usd else "-")
        tried = ", ".join(f"{p.sessions}: {p.verdict}" for p in c.probes)
        lines.append(f"| {name} | {c.max_realtime_sessions} | {c.limited_by} | {_f(c.tick_p50_ms)} / "
                     f"{_f(c.tick_p99_ms)} | {per} | {cost} | {tried} |")
    return lines


def published_lines(runs: list[RunResult]) -> list[str]:
    lines = []
    for run in runs:
        ref = PUBLISHED_H100_MS.get(run.name)
        if ref is None or run.metrics is None or run.metrics.cuda is None:
            continue
        p50 = run.metrics.ms_per_step.p50
        lines.append(f"- {run.name}: p50 {p50:.1f} ms on {run.metrics.cuda.device_name} against {ref} ms published for "
                     f"a PersonaPlex port on an H100 ({p50 / ref - 1:+.0%})")
    return lines


def planner_lines(runs: list[RunResult]) -> list[str]:
    lines = []
    for run in runs:
        check = run.plan_check
        if check is None or check.device_error is None:
            continue
        verdict = "within" if abs(check.device_error) <= PLANNER_GOAL else "outside"
        lines.append(f"- {run.name}: planner's device-memory error {check.device_error:+.1%} ({verdict} the "
                     f"{PLANNER_GOAL:.0%} goal)")
    return lines


def step_table(step_log: dict) -> list[str]:
    lines = [f"gpu-check `{step_log.get('preset')}`{' (int8)' if (step_log.get('facts') or {}).get('int8') else ''}: "
             f"{step_log.get('elapsed_s')} s of a {step_log.get('budget_s')} s budget; fastest core configuration: "
             f"{step_log.get('fastest') or '-'}", "",
             "| step | budget s | took s | status | reason or notes |", "|---|---:|---:|---|---|"]
    for s in step_log.get("steps", []):
        said = "; ".join([s.get("reason") or ""] + list(s.get("notes") or [])).strip("; ").replace("|", "/")
        lines.append(f"| {s.get('name')} | {s.get('budget_s'):.0f} | {_f(s.get('seconds'), 0)} | {s.get('status')} | "
                     f"{said[:300]} |")
    return lines


def summary(sources: Sources, merged: Optional[Session] = None) -> str:
    sessions = [merged] if merged is not None else [load_session(f) for f in sources.runs]
    runs = [r for s in sessions for r in s.runs]
    capacity = {r.name: r for f in sources.capacity for r in load_session(f).runs}
    out = ["# gpu-check", ""]
    if sessions:
        machine = sessions[0].machine
        gpus = ", ".join(f"{g.name} ({(g.memory_total_bytes or 0) / GIB:.0f} GiB)" for g in machine.gpus) or "no GPU"
        out += [f"Machine: {gpus}; {machine.cpu_model}, {machine.cpu_cores_logical} logical cores. "
                f"Preset {sessions[0].scenario.preset}, weights {sessions[0].weights}. "
                "RTF = p50 step / 80 ms budget (below 1 is faster than real time); peak memory is the allocator's "
                "peak against the planner's prediction (host RSS on a CPU); roofline fraction = the planner's "
                "bandwidth floor / measured p50.", ""]
        out += runs_table(runs, capacity) + [""]
        if sessions[0].verdict is not None:
            out += [f"Verdict: {sessions[0].verdict.headline}", ""]
    if capacity:
        out += ["Capacity (sessions in lockstep; each probe a few ticks, not certified):", ""]
        out += capacity_table(capacity) + [""]
    extra = published_lines(runs) + planner_lines(runs)
    if extra:
        out += extra + [""]
    if sources.step_log:
        out += step_table(sources.step_log) + [""]
    return "\n".join(out)

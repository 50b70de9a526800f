"""Plans for people (rich tables) and programs (JSON)."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from rich import box
from rich.table import Table
from rich.text import Text

from harness.knowledge.platforms import target_hazards
from harness.plan.memory import GIB
from harness.plan.scenario_plan import ScenarioPlan
from harness.plan.walltime import WallTime
from harness.records.plan import RunPlan


def _gib(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


def _fits(plan: RunPlan) -> str:
    return "[green]yes[/]" if plan.feasible else "[red]no[/]"


def _floor(plan: RunPlan, budget_ms: float = 80.0) -> str:
    if plan.step_floor_ms is None:
        return "-"
    style = "green" if plan.step_floor_ms <= budget_ms else "red"
    return f"[{style}]{plan.step_floor_ms:.1f}[/]"


def _memory(plan: RunPlan) -> str:
    return "[green]fits[/]" if plan.fits_memory else "[red]too big[/]"


def _notes(plan: RunPlan) -> str:
    blockers = [i.short or i.what for i in plan.issues if i.severity == "blocker"]
    warnings = [i.short or i.what for i in plan.issues if i.severity == "warning"]
    return "; ".join([f"[red]{b}[/]" for b in blockers] + [f"[yellow]{w}[/]" for w in warnings])


def _compact(title: str, plans: list[RunPlan]) -> Table:
    """Tables that read in 100 columns: light borders, no outer padding; a run's name is never cut."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", no_wrap=True, min_width=max([len(p.run) for p in plans] + [3]))
    return table


def _of(used: Optional[int], capacity: Optional[int]) -> str:
    return "-" if used is None else f"{_gib(used)}/{_gib(capacity)}" if capacity else _gib(used)


def _table(title: str, plans: list[RunPlan]) -> Table:
    table = _compact(title, plans)
    for column in ("runs?", "GPU GiB/of", "host GiB/of", "floor ms"):
        table.add_column(column, justify="left" if column == "runs?" else "right", no_wrap=True)
    table.add_column("blockers; warnings", overflow="fold")
    for plan in plans:
        runs = _fits(plan) + ("" if plan.fits_memory else " [red](memory)[/]")
        table.add_row(plan.run, runs, _of(plan.device_peak_bytes, plan.device_capacity_bytes),
                      _of(plan.host_peak_bytes, plan.host_capacity_bytes), _floor(plan), _notes(plan))
    return table


def _band(plan: RunPlan) -> str:
    band = plan.predicted_step_ms
    if band is None:
        return "-"
    style = {"yes": "green", "no": "red"}.get(plan.predicted_realtime or "", "yellow")
    return f"[{style}]{band.p50:.1f}[/] ({band.low:.0f}-{band.high:.0f})"


def _usd(value: Optional[float]) -> str:
    return "-" if value is None else f"${value:.2f}"


def step_table(title: str, plans: list[RunPlan]) -> Table:
    """Predicted step time per run, with sessions, processes and cost (the parts: `parts_table`, --wide)."""
    table = _compact(title, plans)
    for column in ("p50 (band)", "real time?", "procs", "lockstep", "$/conv-h"):
        table.add_column(column, justify="right", no_wrap=True)
    for plan in plans:
        serving = plan.serving
        if plan.step_parts is None:
            table.add_row(plan.run, "-", "not predicted", "", "", "")
            continue
        realtime = (plan.predicted_realtime or "-") + ("" if plan.feasible else " (blocked)")
        table.add_row(plan.run, _band(plan), realtime,
                      f"{serving.server_processes}" if serving else "-",
                      str(serving.lockstep_sessions) if serving else "-",
                      f"{_usd(serving.usd_per_conversation_hour_processes)} | "
                      f"{_usd(serving.usd_per_conversation_hour_lockstep)}" if serving else "-")
    return table


def parts_table(title: str, plans: list[RunPlan]) -> Table:
    """Where each predicted step goes: the device's parts, the host's dispatch, kernels and ops (--wide)."""
    table = _compact(title, plans)
    for column in ("mode", "GPU ms (parts)", "host ms", "kernels", "host ops", "procs (mem, time)"):
        table.add_column(column, justify="left" if column in {"mode", "GPU ms (parts)"} else "right",
                         overflow="fold")
    for plan in plans:
        parts, serving = plan.step_parts, plan.serving
        if parts is None:
            table.add_row(plan.run, "-", "not predicted: the target lacks what the model needs", "", "", "", "")
            continue
        named = (("bw", parts.bandwidth_ms), ("flops", parts.compute_ms), ("link", parts.link_ms),
                 ("kernels", parts.kernel_ms))
        gpu = f"{parts.gpu_ms:.1f}: " + " + ".join(f"{v:.1f} {k}" for k, v in named if v > 0.05)
        if parts.mode != "cpu" and parts.measured_ms:
            gpu += f"; then {parts.measured_ms:.1f} server tail (Opus, PCM copy)"
        table.add_row(plan.run, parts.mode, gpu, f"{parts.host_ms:.1f}", str(parts.kernels), str(parts.host_ops),
                      f"{serving.server_processes} ({serving.processes_by_memory}, {serving.processes_by_time})"
                      if serving else "-")
    return table


def _step_notes(result: ScenarioPlan) -> list[Any]:
    first = next((p.step_parts for p in result.plans if p.step_parts is not None), None)
    if first is None:
        return []
    if first.mode == "cpu":
        text = (f"step model (CPU): {first.combine}; {first.host_source}; the LM's bytes over this host's memory "
                "bandwidth and its FLOPs over its matmul rate added (harness/plan/cpu_step.py).")
    else:
        text = (f"step model: {first.combine}; eta {first.eta:.2f} of the bandwidth, {first.kernel_us:.2f} us per "
                f"kernel, host {first.host_source}. Kernels and ops are counted on the real moshi frame "
                "(harness/knowledge/kernel_counts.py) and scaled by depth; `harness plan --calibration` shows the "
                "published figures behind the parameters and the validation error.")
    notes: list[Any] = [Text(text)]
    target = result.target
    busy = target.load_average is not None and target.load_average > 0.5 * (os.cpu_count() or 1)
    if first.mode == "cpu" and busy:
        notes.append(Text(f"this machine was busy while its frame was timed (load average {target.load_average:.1f} "
                          f"on {os.cpu_count()} CPUs): the CPU predictions are slower than a quiet machine's; plan "
                          "again when it is quiet", style="yellow"))
    prices = {p.serving.price_source for p in result.plans if p.serving and p.serving.price_source}
    if prices:
        notes.append(Text("price: " + "; ".join(sorted(prices))))
    return notes


def _breakdown(plan: RunPlan) -> Table:
    table = Table(title=f"where the memory of {plan.run} goes", title_justify="left")
    table.add_column("item")
    table.add_column("where")
    table.add_column("GiB", justify="right")
    for item in plan.items:
        table.add_row(item.name, item.where, f"{item.bytes / GIB:.2f}")
    return table


def _verdict(result: ScenarioPlan) -> str:
    """"Predicted to work" = fits (memory, software) AND real time by the one rule (predicted p99, the band's high
    end, within the deadline); runs that fit but may or may not be real time are named apart."""
    working = [p for p in result.plans if p.feasible and p.predicted_realtime in ("yes", None)]
    maybe = [p for p in result.plans if p.feasible and p.predicted_realtime == "uncertain"]
    slow = [p for p in result.plans if p.feasible and p.predicted_realtime == "no"]
    if working or maybe or slow:
        lines = []
        if working:
            lines.append(f"[bold green]runs predicted to work[/] (fit, and real time by the rule): "
                         f"{', '.join(p.run for p in working)}")
        if maybe:
            lines.append(f"[bold yellow]fit, real time uncertain[/] (the band straddles the {result.deadline_ms:g} ms "
                         f"deadline: measure them): {', '.join(p.run for p in maybe)}")
        if slow:
            lines.append(f"[bold red]fit but predicted not real time[/]: {', '.join(p.run for p in slow)}")
        return "\n".join(lines)
    fitting = [p for p in result.alternatives if p.fits_memory]
    if not fitting:
        return "[bold red]no configuration of this preset fits in memory on this target[/]"
    best = fitting[0]
    size = _gib(best.device_peak_bytes if best.device_peak_bytes is not None else best.host_peak_bytes)
    floor = f", floor {best.step_floor_ms:.0f} ms/step" if best.step_floor_ms else ""
    blockers = [i.short or i.what for i in best.issues if i.severity == "blocker"]
    rest = f"; still blocked by: {'; '.join(blockers)}" if blockers else ""
    realtime = "" if not best.step_floor_ms or best.step_floor_ms <= 80 else " (not real time)"
    return (f"[bold red]no run of this scenario works here[/]; the best configuration that fits in memory is "
            f"[bold]{best.run}[/] ({size} GiB{floor}{realtime}){rest}")


def _target_notes(result: ScenarioPlan) -> list[Any]:
    """Where the GPU's figures come from, and what unified memory means for the two memory columns."""
    target = result.target
    notes: list[Any] = []
    if target.has_gpu and target.bandwidth_gbs:
        how = "measured here" if target.bandwidth_measured else (target.source or "the scenario's target")
        notes.append(Text(f"GPU: {target.vram_bytes / 2**20 if target.vram_bytes else 0:.0f} MiB "
                          f"({target.vram_bytes / GIB if target.vram_bytes else 0:.1f} GiB), "
                          f"{target.bandwidth_gbs:g} GB/s memory bandwidth, host link {target.host_link_gbs:g} GB/s "
                          f"(source: {how})"))
    for hazard in target_hazards(os=target.os, memory_kind=target.memory_kind, cc=target.compute_capability,
                                 wsl_version=target.wsl_release):
        notes.append(Text(f"hazard ({hazard.key}): {hazard.what}\n  -> {hazard.fix}\n  source: {hazard.source}",
                          style="yellow"))
    if target.unified and target.vram_bytes:
        over = [p.run for p in result.plans
                if (p.device_peak_bytes or 0) + p.host_peak_bytes > target.vram_bytes]
        text = (f"unified memory: the GPU and host columns share one {target.vram_bytes / GIB:.0f} GiB pool, so "
                "their sum must fit")
        notes.append(Text(text + (f"; over the pool: {', '.join(over)}" if over else "; every run's sum fits"),
                          style="yellow" if over else ""))
    return notes


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def wall_table(wall: WallTime) -> list[Any]:
    """The predicted wall time of `harness run SCENARIO` to a verdict, stage by stage, and what it assumes."""
    table = Table(title=f"predicted wall time to a verdict: {_minutes(wall.total_s)}", title_justify="left")
    for column in ("stage", "runs", "time"):
        table.add_column(column, justify="right" if column == "time" else "left", overflow="fold")
    for stage in wall.stages:
        table.add_row(stage.what, ", ".join(stage.runs) or "-", _minutes(stage.seconds))
    return [table, *(Text(note) for note in wall.notes)]


def plan_tables(result: ScenarioPlan, wide: bool = False) -> list[Any]:
    """The plan for a terminal: every table fits 100 columns; `wide` adds the memory breakdown and where each
    predicted step goes."""
    arch = result.architecture
    header = Text.from_markup(
        f"[bold]{result.scenario}[/]: preset {result.preset} ({arch.lm_parameters / 1e9:.2f}e9 LM parameters, "
        f"Mimi {arch.mimi_parameters / 1e6:.1f}e6) on [bold]{result.target.label}[/]\n"
        "floor = bytes read per step / memory bandwidth (the roofline). Real time (one rule, as the verdict's): "
        f"p99 within the deadline, {result.deadline_ms:g} ms (the frame budget less the criteria's headroom); a "
        "prediction's p99 is its band's high end")
    out: list[Any] = [header, *_target_notes(result), _table("scenario runs", result.plans)]
    first = next((p for p in result.plans if p.feasible), result.plans[0] if result.plans else None)
    if first is not None and wide:
        out.append(_breakdown(first))
    blockers = {(i.what, i.remedy) for p in result.plans for i in p.issues if i.severity == "blocker"}
    if blockers:
        out.append(Text("blockers and their remedies:\n" + "\n".join(f"  - {what}\n    -> {remedy}"
                                                                     for what, remedy in sorted(blockers))))
    out.append(step_table(f"predicted step time (ms per {result.frame_budget_ms:g} ms frame; band: low-high) and "
                          "capacity", result.plans))
    out.append(Text("procs: one-call server processes per GPU; lockstep: sessions one batching process holds; "
                    "$/conv-h: per conversation-hour with processes | in lockstep", style="dim"))
    if wide:
        out.append(parts_table("where each predicted step goes", result.plans))
    out += _step_notes(result)
    if not wide:
        out.append(Text("--wide: the memory breakdown and where each predicted step goes (mode, parts, kernels)",
                        style="dim"))
    out.append(Text.from_markup(_verdict(result)))
    if result.wall is not None:
        out += wall_table(result.wall)
    out.append(_table("other configurations on this target", result.alternatives))
    return out


def plan_json(result: ScenarioPlan) -> str:
    return json.dumps({
        "scenario": result.scenario,
        "preset": result.preset,
        "target": result.target.label,
        "target_source": result.target.source,
        "bandwidth_gbs": result.target.bandwidth_gbs,
        "memory_kind": result.target.memory_kind,
        "frame_budget_ms": result.frame_budget_ms,
        "deadline_ms": result.deadline_ms,
        "plans": [p.model_dump() for p in result.plans],
        "alternatives": [p.model_dump() for p in result.alternatives],
        "wall_time": None if result.wall is None else {
            "total_s": result.wall.total_s, "notes": result.wall.notes,
            "stages": [{"what": s.what, "runs": s.runs, "seconds": s.seconds, "frames": s.frames}
                       for s in result.wall.stages]},
    }, indent=2)

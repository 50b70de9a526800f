"""Probe results for people (a rich table) and for programs (JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.table import Table

from harness.probe.machine import ProbeResult

_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "n/a": "dim"}


def probe_table(result: ProbeResult) -> Table:
    m = result.machine
    title = (f"{m.hostname}: {m.cpu_model}, {m.cpu_cores_logical} cores, {m.ram_total_bytes / 2**30:.1f} GiB RAM, "
             f"{m.os}; worst: {result.worst}")
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("finding", overflow="fold")
    table.add_column("remedy", overflow="fold")
    for check in result.checks:
        style = _STYLE[check.status]
        table.add_row(check.name, f"[{style}]{check.status}[/]", check.finding, check.remedy)
    return table


def probe_json(result: ProbeResult) -> str:
    return json.dumps({
        "worst": result.worst,
        "checks": [asdict(check) for check in result.checks],
        "machine": result.machine.model_dump(mode="json"),
    }, indent=2)

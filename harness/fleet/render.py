"""fleet.html: machines side by side in the buyer's order, each machine's own report linked (relative links).

Self-contained (inline CSS, no external requests); jinja2 with autoescape, like report.html.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.records.fleet import Fleet, FleetMachine
from harness.records.store import atomic_write_text

FLEET_HTML = "fleet.html"

_ENV = Environment(loader=PackageLoader("harness.fleet", "templates"),
                   autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def _num(value: Optional[float], fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _groups(fleet: Fleet) -> list[tuple[str, list[FleetMachine]]]:
    """One table per scenario, machines already in the buyer's order (fleet.json keeps that order)."""
    return [(name, [m for m in fleet.machines if m.scenario == name]) for name in fleet.scenarios]


def render_fleet_html(fleet: Fleet) -> str:
    template = _ENV.get_template("fleet.html.j2")
    go = sum(1 for m in fleet.machines if m.verdict == "GO")
    failed = sum(1 for m in fleet.machines if m.status == "failed")
    return template.render(fleet=fleet, groups=_groups(fleet), num=_num, go=go, failed=failed)


def write_fleet_html(fleet: Fleet, out_dir: Path) -> Path:
    path = out_dir / FLEET_HTML
    atomic_write_text(path, render_fleet_html(fleet))
    return path

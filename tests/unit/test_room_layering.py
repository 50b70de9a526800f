"""The rooms depend one way (../shared/DESIGN.md), checked on the source: every `harness.<room>` import of every
module against the table below. A new dependency that runs upward fails here with the module and line.

    cli -> session -> launcher | probe | plan | report | compare | fleet -> verdict -> stats | diagnosis
        -> knowledge -> scenario -> records

Same-level exceptions, each with its reason, are spelled out in ALLOWED. The worker is the other side of a process
boundary: it may import only itself and the standard-library-only modules listed in WORKER_SHARED, and that is
proven by importing every worker module with pydantic made unimportable.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harness"

_BELOW_VERDICT = {"stats", "diagnosis", "knowledge", "scenario", "records"}
_MIDDLE = {"verdict", *_BELOW_VERDICT}

# room -> rooms it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "cli": {"session", "launcher", "probe", "plan", "report", "compare", "fleet", *_MIDDLE},
    "session": {"launcher", "probe", "plan", "report", "compare", *_MIDDLE, "worker"},  # worker: stdlib env rules
    "launcher": {"records", "worker"},  # worker: the progress-pipe and environment constants (stdlib)
    "probe": {"launcher", *_MIDDLE, "worker"},  # launcher: the probe is a worker process; worker: hostinfo
    "plan": {"probe", *_MIDDLE},  # probe: `harness plan --here` plans for the machine it probes
    "report": {*_MIDDLE},
    "compare": {*_MIDDLE},
    "fleet": {"report", "compare", *_MIDDLE},
    "verdict": set(_BELOW_VERDICT),
    "stats": set(),  # pure functions over numbers
    "diagnosis": {"knowledge", "scenario", "records"},
    "knowledge": {"scenario", "records"},
    "scenario": {"records"},
    "records": set(),  # the bottom: schema and files
    "worker": {"records", "knowledge", "scenario"},  # only the modules in WORKER_SHARED
}
# Standard-library-only modules outside the worker package that the worker imports.
WORKER_SHARED = {"harness.records.wire", "harness.records.atomic", "harness.knowledge.offload",
                 "harness.scenario.presets"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("harness.")]


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "(package)"


def test_every_room_is_in_the_table() -> None:
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms <= set(ALLOWED), f"rooms without layering rules: {sorted(rooms - set(ALLOWED))}"


def test_rooms_import_only_downward() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        if room == "(package)":
            continue
        for line, module in _imports(path):
            target = module.split(".")[1]
            if target == room or target in ALLOWED[room]:
                if room == "worker" and target != "worker" and module not in WORKER_SHARED:
                    violations.append(f"{path.relative_to(PACKAGE.parent)}:{line}: worker imports {module}, "
                                      f"which is not one of its stdlib-only shared modules {sorted(WORKER_SHARED)}")
                continue
            violations.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {room} imports {module} "
                              f"({room} may import {sorted(ALLOWED[room]) or 'no other room'})")
    table = "\n".join(f"  {room:<10} -> {', '.join(sorted(allowed)) or '(nothing)'}" for room, allowed in ALLOWED.items())
    assert not violations, "rooms must depend one way:\n" + "\n".join(violations) + "\nthe table:\n" + table


@pytest.mark.parametrize("module", sorted(WORKER_SHARED))
def test_worker_shared_modules_use_only_the_standard_library(module: str) -> None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    third_party = [name for _, name in _imports(path) if name not in WORKER_SHARED]
    assert not third_party, f"{module} must import no other harness module: {third_party}"


def test_worker_runs_without_pydantic() -> None:
    """The worker side imports in an interpreter where pydantic cannot be imported (a user's PersonaPlex venv)."""
    modules = sorted(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
                     for p in (PACKAGE / "worker").rglob("*.py") if p.name != "__init__.py")
    code = ("import sys; sys.modules['pydantic'] = None; sys.modules['pandas'] = None; sys.modules['rich'] = None\n"
            + "\n".join(f"import {m}" for m in modules) + "\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]

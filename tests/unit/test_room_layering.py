"""The rooms depend one way (../shared/DESIGN.md), checked on the source: every `harness.<room>` import of every
module against the table below. A new dependency that runs upward fails here with the module and line.

    cli -> session -> launcher | probe | plan | report | compare | fleet | endpoint -> verdict -> stats | diagnosis
        -> knowledge -> scenario -> records -> contract

Same-level exceptions, each with its reason, are spelled out in ALLOWED. The worker is the other side of a process
boundary: it may import only itself and `harness.contract` (standard library only), and that is proven by importing
every worker module with pydantic made unimportable. No parent room imports `harness.worker`.

Inside a room the modules form no circle either (test_no_import_cycle): every import counts, a function-level one
too, so a circle is broken by moving the shared definition down, not by hiding an import inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "harness"

_BELOW_VERDICT = {"stats", "diagnosis", "knowledge", "scenario", "records", "contract"}
_MIDDLE = {"verdict", *_BELOW_VERDICT}

# room -> rooms it may import (besides itself). Every arrow here exists in the code (test_every_arrow_is_used).
ALLOWED: dict[str, set[str]] = {
    "cli": {"session", "launcher", "probe", "plan", "report", "compare", "fleet", "endpoint", *_MIDDLE},
    "session": {"launcher", "probe", "plan", "report", "compare", "endpoint", *_MIDDLE},  # endpoint: a scenario's
    # `endpoint:` block is measured after the in-process runs
    "launcher": {"records", "contract"},
    "probe": {"launcher", *_MIDDLE},  # launcher: the probe is a worker process
    "plan": {"probe", *_MIDDLE},  # probe: `harness plan --here` plans for the machine it probes
    "report": {*_MIDDLE},
    "compare": {*_MIDDLE},
    "fleet": {"report", "compare", *_MIDDLE},
    # the served view: callers of a running server; launcher starts the servers it measures (harness serve, K processes)
    "endpoint": {"launcher", "verdict", "stats", "records", "contract"},
    "verdict": set(_BELOW_VERDICT),
    "stats": set(),  # pure functions over numbers
    "diagnosis": {"knowledge", "records"},
    "knowledge": set(),  # facts: standard library only, imports no other room
    "scenario": {"records"},  # the scenario room reads YAML into the typed records
    "records": {"contract"},
    "contract": set(),  # the bottom: standard library only, loaded by both processes
    "worker": {"contract"},  # the other side of the process boundary
}


# Import circles tolerated for now, each with who removes it. An entry whose circle is gone fails
# test_allowed_cycles_still_exist, so the list never outlives the fix: delete the entry when the fix lands.
# (verdict's confirm <-> recommend was the last one: assess_run moved down to verdict/assess.py.)
ALLOWED_CYCLES: set[frozenset[str]] = set()


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
                continue
            violations.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {room} imports {module} "
                              f"({room} may import {sorted(ALLOWED[room]) or 'no other room'})")
    table = "\n".join(f"  {room:<10} -> {', '.join(sorted(allowed)) or '(nothing)'}" for room, allowed in ALLOWED.items())
    assert not violations, "rooms must depend one way:\n" + "\n".join(violations) + "\nthe table:\n" + table


def test_every_arrow_is_used() -> None:
    """The table says what the code does: an arrow no module uses is dropped, so the table never overstates."""
    used: dict[str, set[str]] = {room: set() for room in ALLOWED}
    for path in PACKAGE.rglob("*.py"):
        room = _room(path)
        if room in used:
            used[room] |= {module.split(".")[1] for _, module in _imports(path)} - {room}
    unused = {room: sorted(ALLOWED[room] - used[room]) for room in ALLOWED if ALLOWED[room] - used[room]}
    # _MIDDLE is a convenience for the upper rooms; the rooms below verdict must be exact.
    exact = {"launcher", "stats", "diagnosis", "knowledge", "scenario", "records", "contract", "worker"}
    stale = {room: arrows for room, arrows in unused.items() if room in exact}
    assert not stale, f"arrows in the table that no module uses: {stale}"


def test_contract_uses_only_the_standard_library() -> None:
    for path in sorted((PACKAGE / "contract").glob("*.py")):
        outside = [name for _, name in _imports(path) if not name.startswith("harness.contract")]
        assert not outside, f"{path.name} must import no other harness room: {outside}"
    code = ("import sys\nfor name in ('pydantic', 'pandas', 'rich', 'yaml', 'numpy', 'torch'): sys.modules[name] = None\n"
            + "\n".join(f"import harness.contract.{p.stem}" for p in sorted((PACKAGE / "contract").glob("*.py")))
            + "\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PACKAGE.parent)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_no_parent_room_imports_the_worker() -> None:
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
                 for path in sorted(PACKAGE.rglob("*.py")) if _room(path) not in ("worker", "(package)")
                 for line, module in _imports(path) if module.startswith("harness.worker")]
    assert not offenders, "the parent must not import the worker package:\n" + "\n".join(offenders)


def test_worker_runs_without_pydantic() -> None:
    """The worker side imports in an interpreter where pydantic cannot be imported (a user's PersonaPlex venv)."""
    modules = sorted(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
                     for p in (PACKAGE / "worker").rglob("*.py") if p.name != "__init__.py")
    code = ("import sys; sys.modules['pydantic'] = None; sys.modules['pandas'] = None; sys.modules['rich'] = None\n"
            + "\n".join(f"import {m}" for m in modules) + "\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(source: str, package: str) -> set[str]:
    """Every module name an import in `source` may bind (anywhere in it: top level, functions, TYPE_CHECKING
    blocks): `from harness.a import b` gives harness.a and harness.a.b (b may be a module); relative imports resolve
    against `package`, the importing module's package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def _module_graph() -> dict[str, set[str]]:
    """module -> the harness modules it imports. Importing a submodule also runs its package's __init__, an edge
    left out here: Python finishes a package's __init__ before a submodule of it needs it, except through a circle
    that this graph already shows."""
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        names = _imported_names(path.read_text(encoding="utf-8"), package)
        graph[name] = {target for target in names if target in paths and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_cycle_finder_finds_a_circle_and_no_false_one() -> None:
    """The detector itself, both ways: a three-module circle is found whole, a diamond (no circle) is not one."""
    circle = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x", "a.w"}, "a.w": set()}
    assert _cycles(circle) == [frozenset({"a.x", "a.y", "a.z"})]
    diamond = {"a.top": {"a.left", "a.right"}, "a.left": {"a.bottom"}, "a.right": {"a.bottom"}, "a.bottom": set()}
    assert _cycles(diamond) == []


def test_imports_inside_functions_and_relative_ones_count() -> None:
    """A circle hidden by importing inside a function is still a circle; a relative import resolves."""
    source = "def later():\n    from harness.verdict.recommend import assess_run\nfrom . import wire\n"
    names = _imported_names(source, "harness.contract")
    assert {"harness.verdict.recommend", "harness.contract.wire"} <= names
    assert "harness.records.schema" in _module_graph()["harness.records.store"]


def test_no_import_cycle() -> None:
    cycles = [cycle for cycle in _cycles(_module_graph()) if cycle not in ALLOWED_CYCLES]
    graph = _module_graph()
    lines = [f"  {' <-> '.join(sorted(cycle))}\n" + "\n".join(
        f"    {module} imports {', '.join(sorted(graph[module] & cycle))}" for module in sorted(cycle))
        for cycle in cycles]
    assert not cycles, ("import circles (break each by moving the shared definition into a module below both):\n"
                        + "\n".join(lines))


def test_allowed_cycles_still_exist() -> None:
    present = set(_cycles(_module_graph()))
    gone = [sorted(cycle) for cycle in ALLOWED_CYCLES if cycle not in present]
    assert not gone, f"these circles are gone: delete their ALLOWED_CYCLES entries: {gone}"

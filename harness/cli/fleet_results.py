"""`harness compare` and `harness history add` on fleet folders: machine by machine, through the same commands.

A fleet folder (fleet.json) holds one results folder per (machine, scenario). Compare matches a current machine
with the baseline machine of the same hostname and scenario (or, with --history, with its own hardware's
history); the worst outcome is the exit status, in compare's order: regression, not comparable, no baseline,
inconclusive, unchanged.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.markup import escape

from harness.records.fleet import FleetMachine, is_fleet, machine_results

Command = Callable[[argparse.Namespace, Console], int]
# compare's exit statuses, most serious first (2: invalid input is returned at once)
SEVERITY = (1, 5, 4, 6, 7, 0)


def _worst(codes: list[int]) -> int:
    return min(codes, key=lambda c: SEVERITY.index(c) if c in SEVERITY else -1) if codes else 0


def _key(machine: FleetMachine) -> tuple[str, str]:
    return machine.hostname, machine.scenario


def compare_fleet(args: argparse.Namespace, console: Console, compare: Command) -> int:
    current = machine_results(Path(args.paths[-1]))
    baseline: dict[tuple[str, str], Path] = {}
    if not args.history:
        baseline = {_key(m): folder for m, folder in machine_results(Path(args.paths[0]))}
    codes = []
    for machine, folder in current:
        label = f"{machine.hostname} / {machine.scenario}"
        console.print(f"[bold]{escape(label)}[/]", highlight=False)
        one = copy.copy(args)
        if args.history:
            one.paths = [str(folder)]
        else:
            match = baseline.get(_key(machine))
            # a machine missing from the baseline fleet is compare's own loud "no baseline"
            one.paths = [str(match) if match else str(Path(args.paths[0]) / "missing" / machine.hostname), str(folder)]
        one.markdown = None
        codes.append(compare(one, console))
    if not current:
        console.print("no machine of the current fleet has results to compare")
        return 4
    return _worst(codes)


def history_add_fleet(results: Path, add: Callable[[Path], Path]) -> list[Path]:
    return [add(folder) for _, folder in machine_results(results)]


__all__ = ["compare_fleet", "history_add_fleet", "is_fleet"]

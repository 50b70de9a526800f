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

from harness.records.exits import Exit, UserError
from harness.records.fleet import FleetMachine, is_fleet, machine_results
from harness.records.text import console_text

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
        if len(args.paths) != 2:
            raise UserError("give BASELINE and CURRENT (fleet folders or fleet.json files)")
        if not Path(args.paths[0]).exists():  # compare's own loud outcome for a missing baseline, not an error
            console.print(f"NO BASELINE: baseline {args.paths[0]} does not exist (exit 4; nothing was compared)",
                          markup=False, highlight=False)
            return int(Exit.NO_BASELINE)
        baseline = {_key(m): folder for m, folder in machine_results(Path(args.paths[0]))}
    codes = []
    for machine, folder in current:
        label = f"{machine.hostname} / {machine.scenario}"
        console.print(f"[bold]{console_text(label)}[/]", highlight=False)
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

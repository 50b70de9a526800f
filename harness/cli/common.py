"""Shared pieces of the command line: exit codes (from the one table in harness.records.exits) and the console."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from harness.contract.atomic import atomic_write_text
from harness.records.exits import Exit, UserError
from harness.scenario.load import LoadedScenario, load_scenario

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_NOGO, EXIT_INTERRUPTED = (Exit.OK, Exit.FAILED, Exit.USAGE, Exit.NOGO,
                                                                    Exit.INTERRUPTED)


# The headline's colour in a terminal: GO green, NO-GO red, INCONCLUSIVE and RE-RUN (measure again) yellow.
DECISION_STYLE = {"GO": "bold green", "NO-GO": "bold red", "INCONCLUSIVE": "bold yellow", "RE-RUN": "bold yellow"}


def load_or_explain(path: str) -> LoadedScenario:
    """The scenario; an invalid one raises ScenarioError (a UserError: every problem with its file, line, field)."""
    return load_scenario(path)


def write_output(path: Path, text: str) -> None:
    """An output file an option named (--markdown FILE): replaced atomically; an unwritable place is bad input."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def positive_float(text: str) -> float:
    """An option's number: finite and above zero (`--vram 0`, `nan` or `inf` are refused by argparse, exit 2)."""
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number above 0")
    return value


def make_console() -> Console:
    # A terminal tells rich its width; a pipe wraps at the width it is given (COLUMNS), 160 when none is.
    width = None if sys.stdout.isatty() else _columns()
    return Console(highlight=False, width=width)


def _columns() -> int:
    try:
        return max(40, int(os.environ.get("COLUMNS", "160")))
    except ValueError:
        return 160

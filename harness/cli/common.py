"""Shared pieces of the command line: exit codes (from the one table in harness.records.exits) and the console."""

from __future__ import annotations

import os
import sys
from typing import Optional

from rich.console import Console

from harness.records.exits import Exit
from harness.scenario.load import LoadedScenario, ScenarioError, load_scenario

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_NOGO, EXIT_INTERRUPTED = (Exit.OK, Exit.FAILED, Exit.USAGE, Exit.NOGO,
                                                                    Exit.INTERRUPTED)


def load_or_explain(path: str) -> Optional[LoadedScenario]:
    """The scenario, or None after printing every problem with its file, line and field."""
    try:
        return load_scenario(path)
    except ScenarioError as exc:
        print(f"harness: invalid scenario\n{exc.render()}", file=sys.stderr)
        return None


def make_console() -> Console:
    width = None if sys.stdout.isatty() else max(120, _columns())
    return Console(highlight=False, width=width)


def _columns() -> int:
    try:
        return int(os.environ.get("COLUMNS", "160"))
    except ValueError:
        return 160

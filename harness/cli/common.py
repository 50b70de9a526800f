"""Shared pieces of the command line: exit codes and the console."""

from __future__ import annotations

import os
import sys

from rich.console import Console

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def make_console() -> Console:
    width = None if sys.stdout.isatty() else max(120, _columns())
    return Console(highlight=False, width=width)


def _columns() -> int:
    try:
        return int(os.environ.get("COLUMNS", "160"))
    except ValueError:
        return 160

"""Command line: harness run | probe | plan | report | compare | history | presets | endpoint | serve."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from harness import __version__
from harness.cli import diagnose, endpoint, fleet, machine, results, run
from harness.cli.common import EXIT_USAGE, make_console


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=run._DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.register(sub)
    machine.register(sub)
    results.register(sub)
    diagnose.register(sub)
    fleet.register(sub)
    endpoint.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "warmup", None) is not None and args.warmup < 2:
        parser.error("--warmup must be at least 2 (moshi's first step returns no tokens)")
    return args.handler(args, make_console())

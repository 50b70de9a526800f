"""Command line: harness run | probe | plan | report | compare | history | presets | endpoint | serve."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Optional, Sequence

from harness import __version__
from harness.cli import diagnose, endpoint, fleet, machine, results, run
from harness.cli.common import EXIT_USAGE, make_console
from harness.records.exits import Exit, UserError


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
    try:
        return int(args.handler(args, make_console()))
    except UserError as exc:  # bad input, wherever it was found: one line, exit 2
        print(f"harness: {exc}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    except BrokenPipeError:  # `harness ... | head`: the reader left; nothing to report
        return int(Exit.OK)
    except Exception:  # a bug: never exit 1, which means "a run failed" or "a regression"
        print(f"harness: internal error (a bug in harness {__version__}; please report it with the traceback "
              "below)", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return int(Exit.INTERNAL)

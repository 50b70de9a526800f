"""Command line: harness run | probe | plan | report | compare | history | presets | endpoint | serve."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

from harness import __version__
from harness.cli import diagnose, endpoint, fleet, machine, results, run
from harness.cli.common import EXIT_USAGE, make_console
from harness.records.exits import Exit, Interrupted, UserError
from harness.records.text import plain

# SIGTERM (a CI runner's cancel, `kill`, systemd) and SIGHUP (the terminal went away) end a command the way Ctrl-C
# does; a second one while it winds down is ignored so that the unwinding itself is not cut short.
_SIGNALS = {signal.SIGTERM: (Exit.TERMINATED, "terminated (SIGTERM)"),
            signal.SIGHUP: (Exit.HANGUP, "hung up (SIGHUP)")}


@contextmanager
def _signals_unwind() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum: int, frame: object) -> None:
        for other in _SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        code, reason = _SIGNALS[signal.Signals(signum)]
        raise Interrupted(code, reason)

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def _quietly(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except OSError:  # a hangup took the terminal: the exit code still says what happened
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "warmup", None) is not None and args.warmup < 2:
        parser.error("--warmup must be at least 2 (moshi's first step returns no tokens)")
    try:
        with _signals_unwind():
            return int(args.handler(args, make_console()))
    except UserError as exc:  # bad input, wherever it was found: one line, exit 2
        print(f"harness: {plain(exc)}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt as exc:
        _quietly(f"harness: {getattr(exc, 'reason', 'interrupted')}")
        return int(getattr(exc, "code", Exit.INTERRUPTED))
    except BrokenPipeError:  # `harness ... | head`: the reader left; nothing to report
        return int(Exit.OK)
    except Exception:  # a bug: never exit 1, which means "a run failed" or "a regression"
        print(f"harness: internal error (a bug in harness {__version__}; please report it with the traceback "
              "below)", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return int(Exit.INTERNAL)

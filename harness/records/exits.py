"""Every exit code the harness returns, and the one error type for bad input.

One table: `compare` uses 1 for "regression" and `run` for "a run failed", so nothing else may exit 1. An unexpected
exception is caught once, in `harness.cli.main`, and exits INTERNAL (70, sysexits' EX_SOFTWARE) after one line that
says it is a bug and the traceback on stderr; never 1.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1  # run: a configuration failed; compare: a regression; endpoint: a caller failed
    USAGE = 2  # bad input: options, scenario, results or log files
    NOGO = 3  # run/report/endpoint with --fail-on-nogo: the verdict is NO-GO
    NO_BASELINE = 4  # compare: a run has no baseline
    NOT_COMPARABLE = 5  # compare: the measurements differ in what was measured, or the hardware differs
    INCONCLUSIVE = 6  # compare: the threshold is below this machine's noise, or the machine was disturbed
    NOT_JUDGED = 7  # compare: a statistic could not be judged (too few samples, no finite values)
    UNDECIDED = 8  # run/report with --fail-on-nogo: INCONCLUSIVE (not enough evidence) or RE-RUN (disturbed)
    INTERNAL = 70  # a bug in the harness: its traceback follows on stderr
    HANGUP = 129  # SIGHUP (128 + 1)
    INTERRUPTED = 130  # Ctrl-C / SIGINT (128 + 2)
    TERMINATED = 143  # SIGTERM (128 + 15)


MEANING: dict[Exit, str] = {
    Exit.OK: "success (compare: no regression)",
    Exit.FAILED: "run: a configuration failed; compare: a run is slower past its threshold, or failed where it "
                 "used to measure; endpoint: a caller failed (refused, timed out or dropped)",
    Exit.USAGE: "invalid input (options, scenario, results, history or log files)",
    Exit.NOGO: "the verdict is NO-GO (with --fail-on-nogo)",
    Exit.NO_BASELINE: "compare: no baseline for a run (first results on this hardware, or a new run)",
    Exit.NOT_COMPARABLE: "compare: measurement settings or hardware differ: refused",
    Exit.INCONCLUSIVE: "compare: the threshold is below this machine's noise, or the machine was disturbed",
    Exit.NOT_JUDGED: "compare: a statistic could not be judged (too few or no valid samples)",
    Exit.UNDECIDED: "run/report with --fail-on-nogo: the verdict is INCONCLUSIVE (not enough evidence: the "
                     "report says how many more frames settle it) or RE-RUN (the machine was disturbed)",
    Exit.INTERNAL: "an internal error of the harness (a bug): its traceback is on stderr",
    Exit.HANGUP: "hung up (SIGHUP): what was measured is kept",
    Exit.INTERRUPTED: "interrupted (Ctrl-C): what was measured is kept",
    Exit.TERMINATED: "terminated (SIGTERM): what was measured is kept",
}


class UserError(Exception):
    """Bad input the user can fix: printed as one line (`harness: <message>`), exit 2, never a traceback.

    Raised anywhere below the command line; caught once, in `harness.cli.main`. `where` names the file (and line,
    field) when the input came from one.
    """

    def __init__(self, message: str, where: str = "", code: Exit = Exit.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.code = code

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that it unwinds exactly as Ctrl-C does: workers' process
    groups are killed on the way out (harness.launcher.spawn), what was measured is written, temporary folders are
    removed; the exit code says which signal it was (`code`)."""

    def __init__(self, code: Exit, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

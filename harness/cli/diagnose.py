"""`harness diagnose FILE|-`: kind, cause and exact remedy for the log of any failed run."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from harness.cli.common import EXIT_OK, EXIT_RUN_FAILED
from harness.diagnosis.excerpt import read_excerpt
from harness.records.exits import UserError
from harness.records.text import console_text

_DESCRIPTION = """\
Paste the log of a failed moshi / PersonaPlex / PyTorch run (from any tool) and get the kind of
failure, its cause and the exact remedy, from the same signature table that diagnoses the
harness's own workers. Several failures in one log: the one that killed the process is reported,
the others are listed. The remedy depends on the GPU: --gpu NAME, else the GPU named in the log.
"""


def cmd_diagnose(args: argparse.Namespace, console: Console) -> int:
    from harness.diagnosis.context import Context, gpu_from_spec
    from harness.diagnosis.engine import diagnose_text
    from harness.knowledge.gpus import find_gpu, gpu_names

    ctx = Context()
    if args.gpu:
        spec = find_gpu(args.gpu)
        if spec is None:
            raise UserError(f"unknown GPU {args.gpu!r}; known: {', '.join(gpu_names())}")
        ctx.gpu = gpu_from_spec(spec)
    if args.log == "-":
        excerpt = read_excerpt(getattr(sys.stdin, "buffer", sys.stdin))
    else:
        path = Path(args.log)
        try:
            with path.open("rb") as handle:
                excerpt = read_excerpt(handle)
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if excerpt.note:
        print(f"harness: {excerpt.note}", file=sys.stderr)
    finding = diagnose_text(excerpt.text, ctx)
    finding.lines = [(excerpt.file_line(n), t) for n, t in finding.lines]
    if args.json:
        print(json.dumps({**asdict(finding), "lines": [{"line": n, "text": t} for n, t in finding.lines]}, indent=2))
    else:
        style = "green" if finding.known else "red"
        console.print(f"[bold {style}]{finding.kind}[/]" + (f"  (GPU: {console_text(finding.gpu)})" if finding.gpu else ""))
        console.print(f"[bold]cause[/]:  {console_text(finding.cause)}")
        console.print(f"[bold]remedy[/]: {console_text(finding.remedy)}")
        if finding.also:
            console.print(f"[bold]also in this log[/]: {', '.join(finding.also)}")
        console.print("[bold]lines it rests on[/]:" if finding.known else "[bold]lines it looked at[/]:")
        for number, line in finding.lines:
            console.print(f"  {number:>5} | {console_text(line.rstrip()[:300])}")
    return EXIT_OK if finding.known else EXIT_RUN_FAILED


def register(sub: argparse._SubParsersAction) -> None:
    from harness.knowledge.gpus import gpu_names

    parser = sub.add_parser("diagnose", help="diagnose the log of a failed moshi / PersonaPlex / PyTorch run",
                            description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=f"GPUs known to --gpu: {', '.join(gpu_names())}.\n"
                                   "exit status: 0 diagnosed, 1 unknown (the lines it looked at are printed), "
                                   "2 invalid input.")
    parser.add_argument("log", metavar="FILE|-", help="the log file, or - for standard input")
    parser.add_argument("--gpu", metavar="NAME", help="the GPU the run was on (table name or alias): picks the "
                                                      "remedy, e.g. the torch wheel with its kernels")
    parser.add_argument("--json", action="store_true", help="print the finding as JSON")
    parser.set_defaults(handler=cmd_diagnose)

"""`harness diagnose FILE|-`: kind, cause and exact remedy for the log of any failed run."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli.common import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE

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
            print(f"harness: unknown GPU {args.gpu!r}; known: {', '.join(gpu_names())}", file=sys.stderr)
            return EXIT_USAGE
        ctx.gpu = gpu_from_spec(spec)
    if args.log == "-":
        text = sys.stdin.read()
    else:
        path = Path(args.log)
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            print(f"harness: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    finding = diagnose_text(text, ctx)
    if args.json:
        print(json.dumps({**asdict(finding), "lines": [{"line": n, "text": t} for n, t in finding.lines]}, indent=2))
    else:
        style = "green" if finding.known else "red"
        console.print(f"[bold {style}]{finding.kind}[/]" + (f"  (GPU: {escape(finding.gpu)})" if finding.gpu else ""))
        console.print(f"[bold]cause[/]:  {escape(finding.cause)}")
        console.print(f"[bold]remedy[/]: {escape(finding.remedy)}")
        if finding.also:
            console.print(f"[bold]also in this log[/]: {', '.join(finding.also)}")
        console.print("[bold]lines it rests on[/]:" if finding.known else "[bold]lines it looked at[/]:")
        for number, line in finding.lines:
            console.print(f"  {number:>5} | {escape(line.rstrip()[:300])}")
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

"""Arguments and the whole run: the steps (gpucheck.steps), then the bundle (gpucheck.bundle)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional

from gpucheck.bundle import bundle
from gpucheck.core import CPU, H200, H200_INT8, GpuCheck
from gpucheck.steps import CORE_RUNS, run_steps, step_names

STEP_NAMES = tuple(dict.fromkeys(step_names(int8=False) + step_names(int8=True)))


def parse_args(doc: str, argv: Optional[list[str]] = None) -> argparse.Namespace:
    head, _, rest = doc.partition("\n\n")
    parser = argparse.ArgumentParser(prog="gpu-check", description=head, epilog=rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for the bundle (default: $OUT)")
    parser.add_argument("--cpu", action="store_true", help="the CPU rehearsal: personaplex-tiny, few frames")
    parser.add_argument("--int8", action="store_true", help="the int8 call: wheels, probe, the int8 GPU tests, int8 "
                                                            "with and without CUDA graphs")
    parser.add_argument("--budget", type=float, metavar="SECONDS",
                        help=f"the whole command's time (default {H200.total_s:.0f}; {H200_INT8.total_s:.0f} with "
                             f"--int8, {CPU.total_s:.0f} with --cpu)")
    parser.add_argument("--wheels", type=Path, help="folder of wheels to install (default: the checkout's .whl/)")
    parser.add_argument("--work", type=Path, help="working folder (default: a new temporary folder)")
    parser.add_argument("--steps", help=f"comma-separated steps to run (of {', '.join(STEP_NAMES)}); the others are "
                                        "recorded as not selected")
    parser.add_argument("--fastest", choices=CORE_RUNS, help="the configuration the served, capacity and compile "
                        "steps take (default: the fastest core run measured in this call), for a rerun of those steps")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out is required where $OUT is not set")
    if args.budget is not None and args.budget <= 0:
        parser.error("--budget must be more than 0 seconds")
    if args.steps:
        unknown = set(args.steps.split(",")) - set(STEP_NAMES)
        if unknown:
            parser.error(f"--steps: unknown step(s) {', '.join(sorted(unknown))}; steps are {', '.join(STEP_NAMES)}")
    return args


def main(doc: str, argv: Optional[list[str]] = None) -> int:
    args = parse_args(doc, argv)
    preset = CPU if args.cpu else H200_INT8 if args.int8 else H200
    check = GpuCheck(preset, Path(args.out), args.work, total_s=args.budget, int8=args.int8,
                     wheels=args.wheels, fastest=args.fastest,
                     selected=set(args.steps.split(",")) if args.steps else None)
    check.say(f"gpu-check {check.preset.name}{' int8' if args.int8 else ''}: {check.total_s:.0f} s in all, "
              f"{check.preset.reserve_s:.0f} s of it kept for the bundle; work {check.work}; out {check.out}")
    try:
        run_steps(check)
    except KeyboardInterrupt:
        check.say("interrupted: bundling what was measured")
    bundle(check)
    failed = [s.name for s in check.steps if s.status == "failed"]
    summary = check.out / "summary.md"
    if summary.is_file():
        print(summary.read_text(encoding="utf-8"), flush=True)
    print(f"gpu-check: {len(list(check.out.iterdir()))} files in {check.out}"
          + (f"; failed: {', '.join(failed)}" if failed else "; no step failed"), flush=True)
    return 1 if failed else 0

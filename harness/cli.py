"""Command line: `harness run SCENARIO`, `harness presets`."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.plan.gpus import gpu_names
from harness.scenario.presets import PRESETS

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_DESCRIPTION = """\
Hardware diagnostics and benchmarks for NVIDIA PersonaPlex (Kyutai's Moshi architecture).

Each configuration of a scenario (dtype, int8, CPU offload, torch.compile, CUDA graphs) runs the
real moshi inference core in its own worker process: Mimi encode of 80 ms of 24 kHz audio ->
LMGen.step -> Mimi decode, one frame per step. Step time is the wall time of that frame;
RTF = step time / 80 ms, so an RTF below 1 is faster than real time.
"""

_RUN_EPILOG = """\
scenario fields (YAML):
  name, description        what the scenario is about
  preset                   model architecture: {presets}
  weights                  'synthetic' (default; measures speed, not speech quality) or a path to
                           a local model.safetensors, or the folder PersonaPlex ships it in
  frames, warmup_frames    measured frames (default 100) and frames run before them (default 10)
  frame_budget_ms          audio per step, 80 by default
  batch_size, seed         concurrent streams (default 1), seed for weights and input audio
  timeout_s                per-run limit in seconds (default 900); the worker is killed after it
  torch_threads            torch intra-op threads (default: torch's own choice)
  defaults:                values for every run (device auto, dtype bfloat16, quantize none,
                           offload none, offload_fraction 0.5, compile off, cuda_graphs off)
  runs:                    a list of runs: name, device (cpu/cuda/auto), dtype (bfloat16/float16/
                           float32), quantize (none/int8), offload (none/cpu), offload_fraction,
                           compile (on/off), cuda_graphs (on/off), timeout_s
  matrix:                  lists per field, expanded into every combination; `exclude:` drops some

results: DIR/results.json (schema-versioned, raw per-frame samples), DIR/results.csv and
DIR/logs/<run>.stderr.log; results.json is rewritten atomically after every run.
exit status: 0 every run ok or skipped, 1 some run failed, 2 invalid scenario, 130 interrupted.

examples:
  harness run scenarios/cpu-smoke.yaml
  harness run scenarios/rtx5090.yaml --out reports/rtx5090-today
  harness run scenarios/cpu-smoke.yaml --only cpu-bf16-eager --frames 50
"""


def _default_out_dir(scenario_name: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("reports") / f"{scenario_name}-{stamp}"


def _point_latest(out_dir: Path) -> None:
    link = out_dir.parent / "latest"
    try:
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(out_dir.name)
    except OSError:
        pass  # a convenience only


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from harness.launcher.console import summary_table
    from harness.launcher.session import RunOptions, ScenarioRunner
    from harness.scenario.load import ScenarioError, load_scenario

    try:
        loaded = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"harness: invalid scenario\n{exc.render()}", file=sys.stderr)
        return EXIT_USAGE
    runs = loaded.runs
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {r.name for r in runs}
        if unknown:
            print(f"harness: --only names no run of {args.scenario}: {', '.join(sorted(unknown))}; "
                  f"runs are: {', '.join(r.name for r in runs)}", file=sys.stderr)
            return EXIT_USAGE
        runs = [r for r in runs if r.name in wanted]
    out_dir = Path(args.out) if args.out else _default_out_dir(loaded.scenario.name)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"harness: cannot create output folder {out_dir}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.out is None:
        _point_latest(out_dir)
    console.print(f"[bold]{loaded.scenario.name}[/]: {len(runs)} runs of preset {loaded.scenario.preset} "
                  f"-> {out_dir}", highlight=False)
    runner = ScenarioRunner(loaded, out_dir, RunOptions(args.frames, args.warmup, args.timeout, args.force), console)
    try:
        session = runner.run(runs)
    except KeyboardInterrupt:
        console.print(f"[red]interrupted[/]: what was measured so far is in {out_dir / 'results.json'}")
        return EXIT_INTERRUPTED
    console.print(summary_table(session))
    if session.verdict is not None:
        style = "bold green" if session.verdict.go else "bold red"
        console.print(f"[{style}]{escape(session.verdict.headline)}[/]")
        for reason in session.verdict.reasons[:6]:
            console.print(f"  - {escape(reason)}", highlight=False)
    console.print(f"report: {out_dir / 'report.html'}\nresults: {out_dir / 'results.json'}  "
                  f"{out_dir / 'results.csv'}  {out_dir / 'summary.md'}", highlight=False)
    return EXIT_RUN_FAILED if any(r.status == "failed" for r in session.runs) else EXIT_OK


def cmd_probe(args: argparse.Namespace, console: Console) -> int:
    from harness.probe.machine import probe_machine
    from harness.probe.render import probe_json, probe_table

    if not args.json:
        console.print("probing this machine (torch checks run in a separate process) ...", highlight=False)
    result = probe_machine(device_checks=True, disk_path=Path(args.disk or "."))
    if args.json:
        print(probe_json(result))
    else:
        console.print(probe_table(result))
    return {"pass": EXIT_OK, "n/a": EXIT_OK, "warn": EXIT_RUN_FAILED, "fail": EXIT_USAGE}[result.worst]


def cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from harness.plan.gpus import find_gpu
    from harness.plan.render import plan_json, plan_tables
    from harness.plan.scenario_plan import ScenarioPlanError, plan_scenario
    from harness.scenario.load import ScenarioError, load_scenario

    try:
        loaded = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"harness: invalid scenario\n{exc.render()}", file=sys.stderr)
        return EXIT_USAGE
    if args.gpu and find_gpu(args.gpu) is None:
        print(f"harness: unknown GPU {args.gpu!r}; known: {', '.join(gpu_names())}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = plan_scenario(loaded, gpu=args.gpu, here=args.here, host_ram_gib=args.host_ram)
    except ScenarioPlanError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(plan_json(result))
    else:
        for renderable in plan_tables(result):
            console.print(renderable)
    return EXIT_OK if any(p.feasible for p in result.plans) else EXIT_RUN_FAILED


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from harness.records.store import ResultsFileError, load_session, write_session
    from harness.report.render import write_report

    folder = Path(args.dir)
    try:
        session = load_session(folder)
    except ResultsFileError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out_dir = folder if folder.is_dir() else folder.parent
    html, summary, verdict = write_report(session, out_dir)
    if args.update_results:
        session.verdict = verdict
        write_session(session, out_dir)
    style = "bold green" if verdict.go else "bold red"
    console.print(f"[{style}]{escape(verdict.headline)}[/]\nreport: {html}\nsummary: {summary}")
    return EXIT_OK


def cmd_presets(args: argparse.Namespace, console: Console) -> int:
    for preset in PRESETS.values():
        console.print(f"[bold]{preset.name}[/]  {preset.description}", highlight=False)
    return EXIT_OK


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run every configuration of a scenario and record the results",
                         description=_DESCRIPTION,
                         epilog=_RUN_EPILOG.format(presets=", ".join(PRESETS)),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", help="scenario YAML file, e.g. scenarios/cpu-smoke.yaml")
    run.add_argument("--out", metavar="DIR", help="results folder (default: reports/<scenario>-<UTC time>, "
                                                  "with reports/latest pointing at it)")
    run.add_argument("--only", metavar="RUN", nargs="+", help="run only these runs (by name)")
    run.add_argument("--frames", type=_positive_int, help="override the scenario's measured frames")
    run.add_argument("--warmup", type=_positive_int, help="override the scenario's warmup frames (at least 2)")
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="override the per-run timeout")
    run.add_argument("--force", action="store_true",
                     help="also run configurations the planner predicts cannot work here (out of memory, no Triton)")
    run.set_defaults(handler=cmd_run)

    plan = sub.add_parser(
        "plan", help="predict memory, software fit and a step-time floor for every run, before running anything",
        description="Plan a scenario for its `target:` machine (or --gpu NAME, or --here): predicted peak GPU and "
                    "host memory per run, itemised (weights by dtype, int8 scales, KV cache, depformer cache, Mimi, "
                    "activations, CUDA context); what offload keeps on the device and what on the host; software "
                    "fit (Triton vs compute capability and OS, bf16, int8, torch kernels for the GPU); and a "
                    "step-time floor from the memory-bandwidth roofline (bytes read per step / bandwidth).",
        epilog=f"GPUs known to --gpu: {', '.join(gpu_names())}.\n"
               "exit status: 0 some run is feasible, 1 none is, 2 invalid input.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    plan.add_argument("scenario", help="scenario YAML file")
    where = plan.add_mutually_exclusive_group()
    where.add_argument("--gpu", metavar="NAME", help="plan for this GPU from the table instead of the scenario's target")
    where.add_argument("--here", action="store_true", help="plan for this machine (probed)")
    plan.add_argument("--host-ram", type=float, metavar="GIB", help="host RAM of the target (with --gpu)")
    plan.add_argument("--json", action="store_true", help="print the plans as JSON")
    plan.set_defaults(handler=cmd_plan)

    probe = sub.add_parser(
        "probe", help="check this machine: GPU, driver, torch build, Triton, bitsandbytes, memory, bandwidth",
        description="Check this machine for PersonaPlex: each check is pass / warn / fail / n/a with a one-line "
                    "finding and, for warn and fail, the remedy. Torch-side checks run in a separate process, so a "
                    "broken CUDA install is a finding, not a crash.",
        epilog="exit status: 0 all checks pass (or n/a), 1 some warn, 2 some fail.")
    probe.add_argument("--json", action="store_true", help="print the checks and the machine as JSON")
    probe.add_argument("--disk", metavar="PATH", help="where offloaded weights and results would go (default: .)")
    probe.set_defaults(handler=cmd_probe)

    report = sub.add_parser("report", help="re-render report.html and summary.md from a results folder",
                            description="Re-render DIR/report.html and DIR/summary.md from DIR/results.json alone "
                                        "(verdict, validity and playback are recomputed from the raw samples).")
    report.add_argument("dir", help="a results folder (or its results.json)")
    report.add_argument("--update-results", action="store_true",
                        help="also store the recomputed verdict back into results.json")
    report.set_defaults(handler=cmd_report)

    presets = sub.add_parser("presets", help="list the model presets")
    presets.set_defaults(handler=cmd_presets)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "warmup", None) is not None and args.warmup < 2:
        parser.error("--warmup must be at least 2 (moshi's first step returns no tokens)")
    console = Console(highlight=False, width=None if sys.stdout.isatty() else max(120, _columns()))
    return args.handler(args, console)


def _columns() -> int:
    try:
        return int(os.environ.get("COLUMNS", "160"))
    except ValueError:
        return 160

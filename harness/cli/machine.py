"""`harness probe` and `harness plan`: what this machine is, what a scenario needs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from harness.cli.common import EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, load_or_explain, positive_float
from harness.knowledge.gpus import find_gpu, gpu_names
from harness.records.exits import UserError


def cmd_probe(args: argparse.Namespace, console: Console) -> int:
    from harness.probe.machine import probe_machine
    from harness.probe.render import probe_json, probe_table

    if not args.json:
        console.print("probing this machine (torch checks run in a separate process) ...", highlight=False)
    python = args.python
    if python is not None and not (Path(python).is_file() and os.access(python, os.X_OK)):
        raise UserError(f"--python {python}: not an executable file")
    result = probe_machine(device_checks=True, disk_path=Path(args.disk or "."), python=python)
    if args.json:
        print(probe_json(result))
    else:
        console.print(probe_table(result))
    return {"pass": EXIT_OK, "n/a": EXIT_OK, "warn": EXIT_RUN_FAILED, "fail": EXIT_USAGE}[result.worst]


def cmd_plan(args: argparse.Namespace, console: Console) -> int:

    from harness.plan.render import plan_json, plan_tables
    from harness.plan.scenario_plan import ScenarioPlanError, plan_scenario

    if args.calibration:
        from harness.plan.calibrate import calibration
        from harness.plan.render_calibration import calibration_json, calibration_tables

        if args.json:
            print(calibration_json(calibration()))
        else:
            for renderable in calibration_tables(calibration()):
                console.print(renderable)
        if args.scenario is None:
            return EXIT_OK
    if args.scenario is None:
        raise UserError("plan needs a SCENARIO (or --calibration alone)")
    loaded = load_or_explain(args.scenario)
    from harness.session.certifiable import certify_warning

    warning = certify_warning(loaded)
    if warning:
        print(f"harness: warning: {warning}", file=sys.stderr)
    custom = args.vram is not None or args.bandwidth is not None or args.cc is not None
    if args.gpu and find_gpu(args.gpu) is None and not custom:
        raise UserError(f"unknown GPU {args.gpu!r}; known: {', '.join(gpu_names())} (or describe it with --vram, "
                        "--bandwidth, --cc)")
    if custom:
        if args.here:
            raise UserError("--vram/--bandwidth/--cc describe a GPU that is not here; drop --here")
        loaded = _with_custom_gpu(loaded, args)
    earlier = None
    if args.results:
        from harness.records.files import ResultsFileError
        from harness.records.store import load_session

        try:
            earlier = load_session(Path(args.results))
        except ResultsFileError as exc:
            raise UserError(f"--results: {exc}") from None
    try:
        result = plan_scenario(loaded, gpu=None if custom else args.gpu, here=args.here, host_ram_gib=args.host_ram,
                               gpu_hour_usd=args.gpu_hour_usd, earlier=earlier, earlier_where=str(args.results or ""))
    except ScenarioPlanError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(plan_json(result))
    else:
        for renderable in plan_tables(result, wide=args.wide):
            console.print(renderable)
        from harness.plan.quantized_plan import plan_quantized, quantized_table

        rows = plan_quantized(result.architecture, result.target, frame_budget_ms=loaded.scenario.frame_budget_ms,
                              deadline_ms=loaded.scenario.criteria.deadline_ms(loaded.scenario.frame_budget_ms))
        if rows:
            console.print(quantized_table(rows, result.target))
    if args.sessions and not args.json:
        from harness.plan.capacity import sessions_table  # issue 11: sessions per GPU by memory

        deadline = loaded.scenario.criteria.deadline_ms(loaded.scenario.frame_budget_ms)
        for run in loaded.runs:
            console.print(sessions_table(result.architecture, run, None, deadline_ms=deadline, only_gpu=args.gpu,
                                         extra=(result.target,),
                                         memory_headroom=loaded.scenario.criteria.memory_headroom))
    return EXIT_OK if any(p.feasible for p in result.plans) else EXIT_RUN_FAILED


def _with_custom_gpu(loaded, args: argparse.Namespace):  # noqa: ANN001, ANN202 - LoadedScenario in, out
    """The scenario with its `target:` replaced by the GPU the options describe (table figures fill the gaps)."""
    import dataclasses
    import re

    from pydantic import ValidationError

    from harness.records.scenario import Target

    if args.cc is not None and not re.fullmatch(r"\d+\.\d+", args.cc):
        raise UserError(f"--cc wants a compute capability like 8.9, not {args.cc!r}")
    spec = find_gpu(args.gpu, int(args.vram * 2**30) if args.vram else None) if args.gpu else None
    if spec is None and args.vram is None:
        raise UserError("a GPU that is not in the table needs at least --vram")
    old = loaded.scenario.target
    try:
        target = Target(gpu=args.gpu or "custom GPU", vram_gib=args.vram or spec.vram_gib,
                        compute_capability=args.cc or (spec.compute_capability if spec else None),
                        memory_bandwidth_gbs=args.bandwidth or (spec.bandwidth_gbs if spec else None),
                        host_link_gbs=args.host_link or (spec.host_link_gbs if spec else None),
                        host_ram_gib=args.host_ram or (old.host_ram_gib if old else None),
                        os=old.os if old else "linux")
    except ValidationError as exc:
        raise UserError(f"{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    return dataclasses.replace(loaded, scenario=loaded.scenario.model_copy(update={"target": target}))


def register(sub: argparse._SubParsersAction) -> None:
    probe = sub.add_parser(
        "probe", help="check this machine: GPU, driver, torch build, Triton, bitsandbytes, memory, bandwidth",
        description="Check this machine for PersonaPlex: each check is pass / warn / fail / n/a with a one-line "
                    "finding and, for warn and fail, the remedy. Torch-side checks run in a separate process, so a "
                    "broken CUDA install is a finding, not a crash.",
        epilog="exit status: 0 all checks pass (or n/a), 1 some warn, 2 some fail.")
    probe.add_argument("--json", action="store_true", help="print the checks and the machine as JSON")
    probe.add_argument("--disk", metavar="PATH", help="where offloaded weights and results would go (default: .)")
    probe.add_argument("--python", metavar="PATH",
                       help="probe torch in another environment (e.g. your PersonaPlex venv's bin/python); it needs "
                            "torch and moshi there, not the harness's own dependencies")
    probe.set_defaults(handler=cmd_probe)

    plan = sub.add_parser(
        "plan", help="predict memory, software fit and a step-time floor for every run, before running anything",
        description="Plan a scenario for its `target:` machine (or --gpu NAME, --here, or a card described with "
                    "--vram/--bandwidth/--cc): predicted peak GPU and "
                    "host memory per run, itemised (weights by dtype, int8 scales, KV cache, depformer cache, Mimi, "
                    "activations, CUDA context); what offload keeps on the device and what on the host; software "
                    "fit (Triton vs compute capability and OS, bf16, int8, torch kernels for the GPU); a "
                    "step-time floor from the memory-bandwidth roofline (bytes read per step / bandwidth); and a "
                    "predicted step time with a band, from its parts: GPU time (bytes / achievable bandwidth, "
                    "FLOPs / throughput, kernels x a per-kernel minimum) and host time (ops dispatched x the "
                    "host's cost per op), combined per mode (eager: the slower wins; CUDA graphs: the GPU; "
                    "compile: fewer, fused kernels). Kernels are counted on the real moshi frame; the three free "
                    "parameters are fitted on published figures (--calibration). With it: the real-time verdict, "
                    "lockstep sessions and stock server processes per GPU, cost per conversation-hour, and "
                    "quantized weights (int8, fp8, w8a16, nf4) planned for the GPU. --here measures this host's "
                    "cost per op in a worker.",
        epilog=f"GPUs known to --gpu: {', '.join(gpu_names())}.\n"
               "exit status: 0 some run is feasible, 1 none is, 2 invalid input.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    plan.add_argument("scenario", nargs="?", help="scenario YAML file")
    where = plan.add_mutually_exclusive_group()
    where.add_argument("--gpu", metavar="NAME", help="plan for this GPU from the table instead of the scenario's target")
    where.add_argument("--here", action="store_true", help="plan for this machine (probed)")
    plan.add_argument("--host-ram", type=positive_float, metavar="GIB", help="host RAM of the target (with --gpu)")
    card = plan.add_argument_group("a GPU that is not in the table (or to override its figures)")
    card.add_argument("--vram", type=positive_float, metavar="GIB", help="GPU memory")
    card.add_argument("--bandwidth", type=positive_float, metavar="GB/S", help="GPU memory bandwidth (the roofline)")
    card.add_argument("--cc", metavar="X.Y", help="compute capability (decides kernels, Triton, bf16)")
    card.add_argument("--host-link", type=positive_float, metavar="GB/S", help="usable host-to-GPU bandwidth (offload)")
    plan.add_argument("--results", metavar="DIR",
                      help="an earlier `harness run` of this scenario on the target's hardware (its results folder): "
                           "its measured cold starts (imports, load, warmup) replace the assumed fixed costs in the "
                           "predicted wall time")
    plan.add_argument("--json", action="store_true", help="print the plans as JSON")
    plan.add_argument("--wide", action="store_true",
                      help="also the memory breakdown and where each predicted step goes (mode, parts, kernels)")
    plan.add_argument("--gpu-hour-usd", type=float, metavar="USD",
                      help="price of one GPU-hour, for the cost per conversation-hour (default: the price table)")
    plan.add_argument("--calibration", action="store_true",
                      help="show the published step times the model is fitted and validated on: predicted, band, "
                           "error, source (alone, or before the plan)")
    plan.add_argument("--sessions", action="store_true",
                      help="also: how many lockstep sessions each GPU of the table holds by memory, and the "
                           "bandwidth floor per tick at that size (predicted)")
    plan.set_defaults(handler=cmd_plan)

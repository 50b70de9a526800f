"""`harness run` and `harness presets`."""

from __future__ import annotations

import argparse
import fcntl
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Optional

from rich.console import Console

from harness.cli.common import DECISION_STYLE, EXIT_OK, EXIT_RUN_FAILED, load_or_explain, positive_float
from harness.contract.presets import PRESETS
from harness.records.exits import Exit, UserError
from harness.records.text import console_text

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
  frames, warmup_frames    measured frames (default: what certifies the criteria with none late,
                           4606 at 1%/99% in bursts of 10; raised to the criteria's min_frames and
                           min_seconds of audio) and frames run before them (default 10; at least 3
                           with cuda_graphs on, so that no graph capture lands in a measured frame)
  frame_budget_ms          audio per step, 80 by default
  batch_size, seed         concurrent streams (default 1), seed for weights and input audio
  repeat                   worker processes per run (default 1); 3 or more let `harness compare`
                           test per-process medians, so noise between processes is measured
  timeout_s                per-run limit in seconds (default 900, or 600 + twice the audio measured
                           when that is longer); the worker is killed after it
  torch_threads            torch intra-op threads (default: torch's own choice)
  defaults:                values for every run (device auto, dtype bfloat16, quantize none,
                           offload none, offload_fraction 0.5, compile off, cuda_graphs off)
  runs:                    a list of runs: name (letters, digits, . _ -), device (cpu/cuda/auto), dtype (bfloat16/float16/
                           float32), quantize (none/int8/fp8/w8a16/nf4: fp8 and w8a16 need cc 8.9+ on a GPU,
                           all run on the CPU; see scenarios/cpu-quantized.yaml), offload (none/cpu), offload_fraction,
                           compile (on/off), cuda_graphs (on/off), timeout_s
  matrix:                  lists per field, expanded into every combination; `exclude:` drops some
  target:                  the machine the scenario is about (gpu, vram_gib, compute_capability,
                           memory_bandwidth_gbs, host_link_gbs, host_ram_gib, os): `harness plan`
  pace                     fast (default: back to back) or realtime (each frame when its audio is in)
  confirm_frames           a GO at pace fast is run again at pace realtime for this many frames
                           (default: min_frames / min_seconds of audio); 0: not confirmed, and says so
  duration                 soak: measure e.g. 30m instead of `frames` (drift, memory growth, throttling)
  telemetry_hz             sampler rate in the worker (default 10; 0 turns it off)
  criteria:                what real time means for the verdict: headroom (0.1: a frame is late past
                           budget x 0.9), jitter_buffer_ms (one frame budget), memory_headroom (0.1),
                           late_frame_target (0.01) certified at confidence (0.99) for late frames in
                           bursts of up to burst_frames (10 frames, 0.8 s of audio): 4606 frames with none
                           late certify 1% at 99%, a rare isolated late frame costs one frame, not a
                           burst (burst_frames 1: frames as independent trials, which bursts make
                           over-confident); min_frames (100), min_seconds of audio (10),
                           max_cv (0.25, above it a run is flagged unstable)
  host_memory_limit_gib    cap each worker's memory, e.g. to rehearse a smaller host
  serving (per run)        the frame measured: personaplex-server (NVIDIA's server: + second Mimi, Opus, host
                           copies) or moshi-server (PyPI moshi's: + Opus, host copies); default the server that
                           would deploy the run; model (the bare core) only when asked. GO ranks within one frame
  batch_size (per run)     sessions in lockstep (one batched worker run; also a matrix axis)
  capacity: (per run)      max_sessions, gpu_hour_usd, join {{at_tick, warmup_steps}}, processes
                           (measure|predict|off), max_processes: server processes per machine (K one-call
                           workers at once, as the shipped servers run) and sessions in lockstep (needs a
                           batching server), each searched 1, 2, 4, ... then bisected; a joining caller runs
                           the persona prefill and its stall of the others is reported; cost per
                           conversation-hour of each
  endpoint:                also measure the served model as its callers get it, after the runs (the same
                           measurement as `harness endpoint`, into DIR/endpoint.json and the report):
                           server moshi|personaplex (+ python: for NVIDIA's fork) started with the
                           scenario's preset and weights, or url: ws://... (running), or url + start:
                           "COMMAND {{port}}"; sessions (1), seconds (10), arrival_rate + calls (open loop),
                           search / capacity_servers (MAX), voice_prompt, text_prompt, device, slo:
                           {{first_audio_ms 500, interval_p99_ms 160, deficit_frames 3, handshake_ms
                           10000, underrun_s 0.5, jitter_buffer_ms 80}}. A server that fails is a record;
                           the headline names both verdicts; --fail-on-nogo fails on either; --resume
                           keeps an endpoint measured the same way

results: DIR/report.html (verdict, plots), DIR/summary.md, DIR/results.json (schema-versioned,
raw per-frame samples), DIR/results.csv and DIR/logs/<run>.stderr.log; results.json is rewritten
atomically after every run. Runs the planner predicts cannot work here are skipped (--force).
verdict, per run: REAL TIME (certified), NOT REAL TIME (p99, underruns, memory, or a late share shown above
the target), NOT ENOUGH EVIDENCE (on time so far, not certified yet: the report gives the frames and the
command that settle it); the headline: GO (a run is certified), NO-GO (the evidence says none is), INCONCLUSIVE
(none certified, one may be), or RE-RUN when the only failures are frames the machine kept the worker from
running (its CPU time and run-queue wait per frame, in results.json `frame_cpu`): "disturbed during N frames".
exit status: 0 every run ok or skipped, 1 some run failed, 2 invalid input; with --fail-on-nogo also 3 NO-GO
(the in-process verdict, or the SLO of the scenario's endpoint: block) and 8 INCONCLUSIVE or RE-RUN (measure
again: longer, or on a quiet machine),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP): workers are stopped with their
process groups, what was measured is kept and reported, and --resume DIR carries on. A folder that already
holds results is never overwritten: --out refuses it, --resume continues it (keeping every measured run still
in the scenario, and saying which it drops and why).

examples:
  harness run scenarios/cpu-smoke.yaml
  harness run scenarios/rtx5090.yaml --out reports/rtx5090-today
  harness run scenarios/cpu-smoke.yaml --only cpu-bf16-eager --frames 50
  harness run scenarios/h100.yaml --fail-on-nogo        # a CI gate
  harness run scenarios/h100.yaml --resume reports/h100-20261122-0930   # after an interruption
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


LOCK_FILE = ".harness.lock"


def _claim_out_dir(out_dir: Path, resuming: bool) -> IO:
    """The results folder, claimed for this run: writable, not in use by another `harness run` (an exclusive
    lock held until this process exits), and holding no results this run did not produce (never overwritten).
    Returns the open lock file: keep it open for as long as the run writes."""
    existing = out_dir / "results.json"
    if not resuming and (existing.exists() or existing.is_symlink()):
        raise UserError(f"{out_dir} already holds results (results.json): nothing was changed; continue them with "
                        f"--resume {out_dir}, or choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
        lock = (out_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise UserError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UserError(f"{out_dir} is in use by another harness run (it holds {LOCK_FILE}); nothing was "
                        "changed") from None
    if not resuming and (existing.exists() or existing.is_symlink()):  # written between the check and the lock
        lock.close()
        raise UserError(f"{out_dir} already holds results (results.json): nothing was changed")
    return lock


def _warn_uncertifiable(loaded, frames: Optional[int]) -> None:  # noqa: ANN001 - a LoadedScenario
    from harness.session.certifiable import certify_warning

    warning = certify_warning(loaded, frames)
    if warning:
        print(f"harness: warning: {warning}", file=sys.stderr)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from harness.records.store import load_session
    from harness.session.display import summary_table
    from harness.session.runner import RunOptions, ScenarioRunner
    from harness.verdict.endpoint import gate_exit

    loaded = load_or_explain(args.scenario)
    _warn_uncertifiable(loaded, args.frames)
    runs = loaded.runs
    endpoint = loaded.scenario.endpoint is not None
    if args.only:
        wanted = set(args.only)
        names = [r.name for r in runs] + (["endpoint"] if endpoint else [])
        unknown = wanted - set(names)
        if unknown:
            raise UserError(f"--only names no run of {args.scenario}: {', '.join(sorted(unknown))}; "
                            f"runs are: {', '.join(names)}")
        runs = [r for r in runs if r.name in wanted]
        endpoint = endpoint and "endpoint" in wanted
    previous = None
    if args.resume:
        previous = load_session(Path(args.resume))
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise UserError("--resume continues in the folder it names; leave out --out")
    out_dir = Path(args.out or args.resume) if (args.out or args.resume) else _default_out_dir(loaded.scenario.name)
    lock = _claim_out_dir(out_dir, resuming=previous is not None)  # noqa: F841 - held until the process exits
    if args.out is None and args.resume is None:
        _point_latest(out_dir)
    console.print(f"[bold]{console_text(loaded.scenario.name)}[/]: {len(runs)} runs of preset {loaded.scenario.preset} "
                  f"-> {console_text(out_dir)}", highlight=False)
    options = RunOptions(args.frames, args.warmup, args.timeout, args.force, resume=previous,
                         gpu_hour_usd=args.gpu_hour_usd, time_limit_s=args.time_limit, endpoint=endpoint)
    runner = ScenarioRunner(loaded, out_dir, options, console)
    try:
        session = runner.run(runs)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP: the runner kept what was measured
        code = int(getattr(exc, "code", Exit.INTERRUPTED))
        kept = out_dir / "results.json"
        where = f"what was measured so far is in {kept}" if kept.exists() else "nothing was measured yet"
        why = str(getattr(exc, "reason", "interrupted"))
        _quietly(lambda: console.print(f"[red]{console_text(why)}[/]: {console_text(where)}; "
                                       f"--resume {console_text(out_dir)} carries on"))
        return code
    console.print(summary_table(session))
    if session.verdict is not None:
        style = DECISION_STYLE.get(session.verdict.decision, "bold red")
        console.print(f"[{style}]{console_text(session.verdict.headline)}[/]")
        for reason in session.verdict.reasons[:6]:
            console.print(f"  - {console_text(reason)}", highlight=False)
        if session.verdict.next_steps:
            console.print("next steps, cheapest first:", highlight=False)
            for i, step in enumerate(session.verdict.next_steps, 1):
                console.print(f"  {i}. {console_text(step)}", highlight=False)
    console.print(f"report: {out_dir / 'report.html'}\nresults: {out_dir / 'results.json'}  "
                  f"{out_dir / 'results.csv'}  {out_dir / 'summary.md'}  {out_dir / 'junit.xml'}  "
                  f"{out_dir / 'metrics.prom'}", markup=False, highlight=False)
    if any(r.status == "failed" for r in session.runs):
        return EXIT_RUN_FAILED
    if args.fail_on_nogo and session.verdict is not None:
        return gate_exit(session.verdict)
    return EXIT_OK


def _quietly(show) -> None:  # noqa: ANN001 - after a hangup the terminal may be gone: the exit code still counts
    try:
        show()
    except OSError:
        pass


def cmd_presets(args: argparse.Namespace, console: Console) -> int:
    for preset in PRESETS.values():
        console.print(f"[bold]{preset.name}[/]  {preset.description}", highlight=False)
    return EXIT_OK


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run every configuration of a scenario and record the results",
                         description=_DESCRIPTION,
                         epilog=_RUN_EPILOG.format(presets=", ".join(PRESETS)),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", help="scenario YAML file, e.g. scenarios/cpu-smoke.yaml")
    run.add_argument("--out", metavar="DIR", help="results folder (default: reports/<scenario>-<UTC time>, "
                                                  "with reports/latest pointing at it); refused if it already "
                                                  "holds results")
    run.add_argument("--only", metavar="RUN", nargs="+",
                     help="run only these runs (by name); `endpoint` names the scenario's endpoint block, which "
                          "--only otherwise leaves out")
    run.add_argument("--frames", type=_positive_int,
                     help="measure exactly this many frames (the verdict says when that is too few to conclude)")
    run.add_argument("--warmup", type=_positive_int, help="override the scenario's warmup frames (at least 2)")
    run.add_argument("--timeout", type=positive_float, metavar="SECONDS", help="override the per-run timeout")
    run.add_argument("--time-limit", type=positive_float, metavar="SECONDS",
                     help="end the whole session within SECONDS (probe included): no run or capacity probe starts "
                          "after it (recorded as skipped, or the capacity search stops with what it measured: a "
                          "lower bound), and each worker's timeout is cut to the time left")
    run.add_argument("--force", action="store_true",
                     help="also run configurations the planner predicts cannot work here (out of memory, no Triton)")
    run.add_argument("--fail-on-nogo", action="store_true",
                     help="exit 3 when the verdict is NO-GO, 8 when it is INCONCLUSIVE or RE-RUN (for CI gates; "
                          "by default every verdict exits 0)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue an interrupted or partial session in DIR: runs already measured there with the "
                          "same configuration on the same hardware are kept, the others run")
    run.add_argument("--gpu-hour-usd", type=positive_float, metavar="USD",
                     help="price of one GPU-hour for capacity runs' cost per conversation-hour (default: the "
                          "scenario's capacity.gpu_hour_usd, else the price table in harness/knowledge/prices.py)")
    run.set_defaults(handler=cmd_run)

    presets = sub.add_parser("presets", help="list the model presets")
    presets.set_defaults(handler=cmd_presets)

"""`harness endpoint URL` (measure a running server as its callers do) and `harness serve` (start a real one)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

from harness.cli.common import EXIT_INTERRUPTED, EXIT_NOGO, EXIT_OK, EXIT_RUN_FAILED
from harness.contract.presets import preset_names
from harness.endpoint.protocol import DEFAULT_TEXT_PROMPT, UrlError, chat_url
from harness.records.endpoint import ENDPOINT_JSON, EndpointResults, LoadRun, Slo, write_endpoint
from harness.records.exits import Exit, UserError

if TYPE_CHECKING:
    from harness.endpoint.serving import ServeSpec

# The load generator (aiohttp, numpy, sphn) and the report (matplotlib) are imported by the commands that use them:
# every `harness ...` imports this module to build its parser, and they cost most of a second there.

_ENDPOINT_HELP = """\
Measure a running moshi or PersonaPlex server the way its callers do: each caller opens the WebSocket (route
/api/chat; PersonaPlex's query keys voice_prompt and text_prompt), waits for the handshake, streams speech-like
audio as Ogg/Opus (sphn, 24 kHz mono) paced at 80 ms from a shared start (a stalled sender never catches up in a
burst), and decodes what comes back. Per caller, on its own clock: connect time, time to handshake (split into the
wait for the call before it to end and the server's own work, e.g. PersonaPlex's persona prefill), first audio after
its stream started, packet interval p50/p99/max, frames sent minus frames heard (deficit) and its drift, underrun
seconds through a jitter buffer, how late the caller itself sent (so a slow client is not blamed on the server),
text received, and how the call ended. A refused, timed-out or dropped caller is a failed row, never dropped from
the denominator.

Loads: --sessions N (closed loop, one shared start); --arrival-rate R --calls M (open loop, Poisson arrivals of
finite calls); --search MAX (largest N whose callers all meet the SLO; a server that serves one call at a time is
said so plainly); --capacity-servers MAX (a stock deployment: K server processes, one call each on its own port).

Servers: a URL; or --start "COMMAND" (your own server, `{port}` in it replaced; the URL's port is used for the
first); or --serve-preset NAME (the real server `harness serve` starts). Servers the harness started are stopped
with their children when it ends.

The load generator measures itself: its event loops' lag (a ticker) and its callers' send lateness. A run that
failed while it fell behind is "limited by the load generator", not a server failure; callers are spread over
several processes (--client-processes) when one loop cannot keep up.

Results: DIR/endpoint.json (schema harness.endpoint v1, raw packet times kept), report.html, summary.md. A folder
that already holds results is refused (nothing is changed). Interrupted (Ctrl-C, SIGTERM), the runs that finished
are written, marked interrupted, without a verdict.
Exit status: 0 every caller ok, 1 a caller failed, 2 bad input or no caller could reach a moshi server,
3 NO-GO with --fail-on-nogo, 130 interrupted (143 SIGTERM).

  harness serve --preset personaplex-tiny --port 8998 &
  harness endpoint ws://127.0.0.1:8998 --sessions 2 --seconds 5
  harness endpoint --serve-preset personaplex-tiny --capacity-servers 4 --seconds 5
"""

_SERVE_HELP = """\
Start the REAL server, on 127.0.0.1 only, with the harness's weights for a preset: PyPI moshi's
`python -m moshi.server` (--server moshi; the architecture through its own --config-path), or NVIDIA's fork's
server from its own environment (--server personaplex --python ENV/bin/python; the architecture set in its loader
before its own main runs). Synthetic weights are written once by that server's own interpreter and cached
(--cache-dir). Waits until it listens, prints the URL, and stops it with its children on exit or Ctrl-C.
"""


def _add_server_options(parser: argparse.ArgumentParser, preset_flag: str) -> None:
    parser.add_argument(preset_flag, dest="preset", default=None if preset_flag != "--preset" else "personaplex-tiny",
                        choices=preset_names(), help="model preset (harness presets)")
    parser.add_argument("--weights", default="synthetic",
                        help="synthetic, or a folder with model.safetensors, Mimi's file and the tokenizer")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--server", default="moshi", choices=["moshi", "personaplex"],
                        help="moshi: PyPI moshi's server; personaplex: NVIDIA's fork (needs --python)")
    parser.add_argument("--python", default=None, help="interpreter of the server's environment")
    parser.add_argument("--voice-frames", type=int, default=50,
                        help="length of the synthetic voice prompt in 80 ms frames (PersonaPlex; default 50 = 4 s)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where synthetic weights are kept (default ~/.cache/harness/serve)")
    parser.add_argument("--compile", action="store_true",
                        help="let moshi torch.compile (off by default: NO_TORCH_COMPILE=1; on a CPU inductor "
                             "recompiles for seconds per frame)")
    parser.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait until it listens")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("endpoint", help="measure a running moshi / PersonaPlex server as its callers do",
                       description=_ENDPOINT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", help="ws:// or wss:// address of the server (route /api/chat by default)")
    p.add_argument("--sessions", type=int, default=1, help="callers sharing one start (closed loop)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds each caller streams")
    p.add_argument("--call-seconds", type=float, dest="seconds", help="same as --seconds (open loop wording)")
    p.add_argument("--arrival-rate", type=float, default=None, help="open loop: calls per second (Poisson)")
    p.add_argument("--calls", type=int, default=None, help="open loop: how many calls")
    p.add_argument("--search", type=int, default=None, metavar="MAX", help="largest sessions meeting the SLO")
    p.add_argument("--capacity-servers", type=int, default=None, metavar="MAX",
                   help="largest number of server processes (one call each) meeting the SLO")
    p.add_argument("--machine-hour-usd", type=float, default=None, help="price of the machine, for the cost line")
    p.add_argument("--voice-prompt", default=None, help="PersonaPlex: voice file name in the server's voice folder")
    p.add_argument("--text-prompt", default=None, help="PersonaPlex: the persona text (may be empty)")
    p.add_argument("--start", default=None, metavar="COMMAND", help="start this server first ({port} replaced)")
    _add_server_options(p, "--serve-preset")
    p.add_argument("--handshake-timeout", type=float, default=None,
                   help="seconds a caller waits for the handshake (default: 600 + callers x (seconds + drain + 60))")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--drain", type=float, default=2.0,
                   help="after its stream, a caller listens at most this long for the audio the server still owes")
    p.add_argument("--insecure", action="store_true", help="wss:// without checking the certificate")
    p.add_argument("--client-processes", type=int, default=0, metavar="N",
                   help="load generator processes the callers are spread over (default: enough that none runs more "
                        "than the callers one process keeps up with here)")
    p.add_argument("--slo-first-audio-ms", type=float, default=Slo().first_audio_ms)
    p.add_argument("--slo-interval-p99-ms", type=float, default=Slo().interval_p99_ms)
    p.add_argument("--slo-deficit-frames", type=float, default=Slo().deficit_frames)
    p.add_argument("--slo-handshake-ms", type=float, default=Slo().handshake_ms)
    p.add_argument("--slo-underrun-s", type=float, default=Slo().underrun_s)
    p.add_argument("--jitter-buffer-ms", type=float, default=Slo().jitter_buffer_ms)
    p.add_argument("--seed", type=int, default=0, help="seed of the open loop's arrivals")
    p.add_argument("--out", type=Path, default=None, help="results folder (default reports/endpoint-<UTC time>)")
    p.add_argument("--json", action="store_true", help="print endpoint.json to stdout")
    p.add_argument("--wide", action="store_true",
                   help="every caller timing in the table (connect, lock wait, prefill, gaps, drift, send lateness)")
    p.add_argument("--fail-on-nogo", action="store_true", help="exit 3 when the SLO verdict is NO-GO")
    p.set_defaults(handler=cmd_endpoint)

    s = sub.add_parser("serve", help="start the real moshi / PersonaPlex server on 127.0.0.1 with a preset",
                       description=_SERVE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_server_options(s, "--preset")
    s.add_argument("--port", type=int, default=8998)
    s.add_argument("--log", type=Path, default=None, help="the server's output (default CACHE/logs/serve-PORT.log)")
    s.set_defaults(handler=cmd_serve)


def _spec(args: argparse.Namespace, port: int) -> "ServeSpec":
    from harness.endpoint.serving import ServeSpec

    return ServeSpec(preset=args.preset, weights=args.weights, device=args.device, port=port, server=args.server,
                     python=args.python, voice_frames=args.voice_frames, cache_dir=args.cache_dir,
                     ready_timeout_s=args.ready_timeout, compile=args.compile)


class _Stopped(KeyboardInterrupt):
    """A signal asked us to stop: servers we started are stopped on the way out, then exit 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.code = 128 + signum


def _raise_interrupt(signum: int, _: object) -> None:
    raise _Stopped(signum)


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from harness.endpoint.serving import ServeError, default_cache, start
    from harness.launcher.server import stop_server

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port}: not a port")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGINT too: a shell's `&` job starts with it ignored
        signal.signal(sig, _raise_interrupt)
    log = args.log or (args.cache_dir or default_cache()) / "logs" / f"serve-{args.port}.log"
    server = None
    try:
        console.print(f"starting {args.server} server, {args.preset}, {args.weights} weights, {args.device} "
                      f"(log: {log}) ...")
        server, prepared = start(_spec(args, args.port), log)
        query = (f"?voice_prompt={prepared.voice_prompt}&text_prompt={quote(DEFAULT_TEXT_PROMPT)}"
                 if prepared.voice_prompt else "")
        print(f"ws://127.0.0.1:{args.port}/api/chat{query}", flush=True)
        console.print(f"serving: {prepared.description}; Ctrl-C stops it")
        while server.alive():
            threading.Event().wait(0.5)
        print(f"harness: the server exited with status {server.process.returncode}; see {log}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except ServeError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:
        return getattr(exc, "code", EXIT_INTERRUPTED)
    finally:
        if server is not None:
            stop_server(server)


def _slo(args: argparse.Namespace) -> Slo:
    return Slo(first_audio_ms=args.slo_first_audio_ms, interval_p99_ms=args.slo_interval_p99_ms,
               deficit_frames=args.slo_deficit_frames, handshake_ms=args.slo_handshake_ms,
               underrun_s=args.slo_underrun_s, jitter_buffer_ms=args.jitter_buffer_ms)


def _check(args: argparse.Namespace) -> Optional[str]:
    if args.url is None and args.preset is None:
        return "give a URL, or --serve-preset NAME to start a server"
    if args.url is not None and args.preset is not None:
        return "give a URL or --serve-preset, not both"
    if args.start and args.url is None:
        return "--start needs the URL the command will listen on"
    if args.capacity_servers and not (args.preset or (args.start and "{port}" in args.start)):
        return "--capacity-servers starts servers: give --serve-preset, or --start with {port} in the command"
    if args.url is not None:
        try:
            chat_url(args.url, None, None)
        except UrlError as exc:
            return str(exc)
    if args.client_processes < 0:
        return "--client-processes must be at least 1 (or 0: automatic)"
    for name in ("sessions", "search", "capacity_servers", "calls"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if args.seconds <= 0:
        return "--seconds must be positive"
    if (args.arrival_rate is None) != (args.calls is None):
        return "the open loop needs both --arrival-rate and --calls"
    if args.arrival_rate is not None and args.arrival_rate <= 0:
        return "--arrival-rate must be positive"
    return None


def _caller_table(run: LoadRun, wide: bool = False) -> Table:
    """One row per caller; what decides the SLO by default (fits 100 columns), every timing with --wide."""
    from rich import box

    table = Table(title=f"{run.kind} loop: {run.sessions} call(s) x {run.call_seconds:g} s over {run.servers} "
                        f"server(s): {run.ok} ok, {run.failed} failed, {'PASS' if run.passed else 'FAIL'}",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ["caller", "status", "handshake ms", "first audio ms", "gap p99 ms", "deficit", "underrun s"]
    if wide:
        columns += ["connect ms", "lock wait ms", "prefill ms", "gap p50/max ms", "drift ms/s", "send late max ms",
                    "end"]
    for column in columns:
        table.add_column(column, justify="left" if column in {"status", "end"} else "right",
                         overflow="fold" if column in {"status", "end"} else "ellipsis")

    def f(value: Optional[float], digits: int = 0) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for c in run.callers:
        status = c.status if c.status == "ok" else f"failed: {c.reason}"
        row = [str(c.index), status, f(c.handshake_ms), f(c.first_audio_ms), f(c.interval_p99_ms),
               f(c.deficit_frames, 1), f(c.underrun_s, 2)]
        if wide:
            gaps = "-" if c.interval_p50_ms is None else f"{c.interval_p50_ms:.0f}/{c.interval_max_ms:.0f}"
            row += [f(c.connect_ms, 1), f(c.lock_wait_ms), f(c.prefill_ms), gaps, f(c.drift_ms_per_s, 2),
                    f(c.send_late_max_ms, 1), c.close_reason]
        table.add_row(*row)
    return table


def _unreachable(results: EndpointResults) -> Optional[str]:
    """One line when no caller ever reached a moshi server (bad input, not a measurement)."""
    callers = [c for r in results.runs for c in r.callers]
    if callers and all(c.raw.upgraded_s is None for c in callers):
        return f"cannot measure {results.url.split('?')[0]}: {callers[0].reason}"
    return None


def _claim(out: Path) -> None:
    """The results folder: created, writable, and holding no results (as `harness run --out`: never overwritten)."""
    held = [name for name in (ENDPOINT_JSON, "results.json") if (out / name).exists() or (out / name).is_symlink()]
    if held:
        raise UserError(f"{out} already holds results ({held[0]}): nothing was changed; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to the output folder {out}: {exc.strerror or exc}") from None


def _interrupted(begun: list[EndpointResults], finished: list[LoadRun], args: argparse.Namespace,
                 code: int) -> Optional[EndpointResults]:
    """What finished before an interrupt, marked as such (no verdict: the load asked for did not all run)."""
    if not begun:
        return None
    from harness.probe.machine import host_machine

    signal_name = {143: "SIGTERM", 129: "SIGHUP", 130: "SIGINT"}.get(code, f"exit {code}")
    kept = begun[0].model_copy(update={"runs": list(finished), "search": None, "verdict": None,
                                       "interrupted": f"interrupted ({signal_name})"})
    kept.machine = host_machine()
    return kept


def _write(results: EndpointResults, out: Path) -> None:
    from harness.probe.machine import host_machine
    from harness.report.endpoint import render_endpoint_html, summary_line
    from harness.report.exports import write_endpoint_exports

    if results.machine is None:
        results.machine = host_machine()  # its hardware key: compare tells load generators apart
    write_endpoint(results, out)
    (out / "report.html").write_text(render_endpoint_html(results), encoding="utf-8")
    (out / "summary.md").write_text(summary_line(results) + "\n", encoding="utf-8")
    write_endpoint_exports(results, out, summary_line(results))  # junit.xml, metrics.prom, the CI step summary


def cmd_endpoint(args: argparse.Namespace, console: Console) -> int:
    from harness.endpoint.load import CallSettings
    from harness.endpoint.measure import LoadSpec, ServerSource, measure
    from harness.endpoint.serving import ServeError
    from harness.report.endpoint import summary_line

    problem = _check(args)
    if problem:
        raise UserError(problem)
    out = args.out or Path("reports") / f"endpoint-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
    _claim(out)
    serve = _spec(args, 0) if args.preset else None
    source = ServerSource(url=args.url, start_command=args.start, serve=serve, ready_timeout_s=args.ready_timeout,
                          log_dir=out / "logs")
    load = LoadSpec(sessions=args.sessions, arrival_rate=args.arrival_rate, calls=args.calls or 0,
                    search_sessions=args.search, search_servers=args.capacity_servers,
                    machine_hour_usd=args.machine_hour_usd, seed=args.seed)
    settings = CallSettings(call_seconds=args.seconds, connect_timeout_s=args.connect_timeout,
                            handshake_timeout_s=args.handshake_timeout, drain_s=args.drain,
                            insecure=args.insecure, client_processes=args.client_processes)
    quiet = args.json
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    finished: list[LoadRun] = []
    begun: list[EndpointResults] = []

    def on_run(run: LoadRun) -> None:
        finished.append(run)
        if not quiet:
            console.print(_caller_table(run, wide=args.wide))
            if run.note:
                console.print(run.note)

    try:
        results = measure(source, load, settings, _slo(args), args.voice_prompt, args.text_prompt, on_run,
                          on_ready=lambda d: None if quiet else console.print(f"server ready: {d}"),
                          on_begin=begun.append)
    except ServeError as exc:
        raise UserError(str(exc)) from None
    except UrlError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt as exc:
        code = getattr(exc, "code", EXIT_INTERRUPTED)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a second signal must not cut the writing short
            signal.signal(sig, signal.SIG_IGN)
        kept = _interrupted(begun, finished, args, code)
        if kept is not None:
            _write(kept, out)
            print(f"harness: interrupted; servers it started are stopped; {len(finished)} finished run(s) kept in "
                  f"{out / 'endpoint.json'}", file=sys.stderr)
        else:
            print("harness: interrupted before any server answered; servers it started are stopped",
                  file=sys.stderr)
        return code
    _write(results, out)
    if args.json:
        print(results.model_dump_json(indent=1))
    else:
        if results.search is not None:
            s = results.search
            console.print(f"search over {s.what}: largest passing {s.largest_passing}, first failing "
                          f"{s.first_failing if s.first_failing is not None else '-'} ({s.limited_by})")
            if s.cost_per_conversation_hour_usd is not None:
                console.print(f"cost per conversation-hour: {s.cost_per_conversation_hour_usd:.3f} USD ({s.price_note})")
        console.print(summary_line(results))
        console.print(f"results: {out / 'endpoint.json'}, {out / 'report.html'}")
    unreachable = _unreachable(results)
    if unreachable:
        raise UserError(unreachable)
    if args.fail_on_nogo and results.verdict is not None and results.verdict.word == "NO-GO":
        return EXIT_NOGO
    if args.fail_on_nogo and results.verdict is not None and results.verdict.word == "INCONCLUSIVE":
        return int(Exit.UNDECIDED)  # the load generator fell behind: the server was not shown to pass or fail
    failed = any(c.status == "failed" for r in results.runs for c in r.callers)
    return EXIT_RUN_FAILED if failed else EXIT_OK

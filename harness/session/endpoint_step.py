"""A scenario's `endpoint:` block, measured after the in-process runs into the same folder (endpoint.json).

The real server is started through `harness serve`'s code (or the user's own `start` command, or none for a `url`),
measured by the same code as `harness endpoint`, and stopped with its children whatever happens. Anything that goes
wrong (the server does not start, no caller reaches it) becomes `failure` in endpoint.json, never an exception that
would lose the runs already measured. `--resume` keeps an earlier endpoint.json measured the same way
(harness.records.identity.EndpointMeasurement, the rule compare uses) on the same hardware.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from rich.console import Console

from harness.endpoint.load import CallSettings
from harness.endpoint.measure import LoadSpec, ServerSource, measure, setup_of
from harness.endpoint.protocol import UrlError
from harness.endpoint.serving import ServeError, ServeSpec
from harness.records.endpoint import (
    ENDPOINT_JSON,
    EndpointFileError,
    EndpointResults,
    LoadRun,
    load_endpoint,
    write_endpoint,
)
from harness.records.identity import endpoint_measurement, endpoint_measurement_of
from harness.records.machine import Machine
from harness.records.scenario import EndpointBlock, Scenario
from harness.verdict.endpoint import failed_verdict


class _NotStarted(RuntimeError):
    pass


def _source(block: EndpointBlock, scenario: Scenario, weights: Optional[Path], machine: Machine,
            out_dir: Path) -> ServerSource:
    serve = None
    if block.serves:
        device = block.device or ("cuda" if machine.cuda_available else "cpu")
        folder = "synthetic" if weights is None else str(weights if weights.is_dir() else weights.parent)
        serve = ServeSpec(preset=scenario.preset, weights=folder, device=device, port=0, server=block.server,
                          python=block.python or scenario.python, voice_frames=block.voice_frames,
                          ready_timeout_s=block.ready_timeout_s)
    return ServerSource(url=block.url, start_command=block.start, serve=serve, ready_timeout_s=block.ready_timeout_s,
                        log_dir=out_dir / "logs" / "endpoint")


def _load(block: EndpointBlock, seed: int) -> LoadSpec:
    return LoadSpec(sessions=block.sessions, arrival_rate=block.arrival_rate, calls=block.calls or 0,
                    search_sessions=block.search, search_servers=block.capacity_servers, seed=seed)


def _previous(out_dir: Path, console: Console) -> Optional[EndpointResults]:
    path = out_dir / ENDPOINT_JSON
    if not path.exists():
        return None
    try:
        return load_endpoint(path)
    except EndpointFileError as exc:
        console.print(f"--resume: the endpoint is measured again: {exc}", markup=False, highlight=False)
        return None


def kept_endpoint(out_dir: Path, console: Console) -> Optional[EndpointResults]:
    """What an earlier session of this folder measured (a resumed run that leaves the endpoint block out)."""
    return _previous(out_dir, console)


def _unreached(results: EndpointResults) -> Optional[str]:
    callers = [c for r in results.runs for c in r.callers]
    if callers and all(c.raw.upgraded_s is None for c in callers):
        return f"no caller reached {results.url.split('?')[0]}: {callers[0].reason}"
    return None


def measure_endpoint(scenario: Scenario, weights: Optional[Path], machine: Machine, out_dir: Path,
                     console: Console, resume: bool, not_started: Optional[str] = None) -> EndpointResults:
    """`not_started`: why it must not start (the session's time limit): recorded as its failure."""
    block = scenario.endpoint
    assert block is not None
    source, load = _source(block, scenario, weights, machine, out_dir), _load(block, scenario.seed)
    settings = CallSettings(call_seconds=block.seconds, drain_s=block.drain_s)
    setup = setup_of(source, load, block.seconds)
    if resume and (previous := _previous(out_dir, console)) is not None:
        wanted = endpoint_measurement(setup, block.slo, block.voice_prompt, block.text_prompt, machine.hardware_key)
        differences = endpoint_measurement_of(previous).differences(wanted)
        if previous.failure is None and not differences:
            console.print("endpoint: measured before the same way on this hardware (--resume): kept",
                          highlight=False)
            return previous
        why = "; ".join(differences) or f"it was not measured before ({previous.failure})"
        console.print(f"--resume: the endpoint is measured again: {why}", markup=False, highlight=False)
    console.print(f"endpoint: {setup.server} server, {setup.load} load, {block.seconds:g} s calls ...",
                  highlight=False)

    def on_run(run: LoadRun) -> None:
        console.print(f"endpoint: {run.sessions} call(s) over {run.servers} server(s): {run.ok} ok, {run.failed} "
                      f"failed, {'PASS' if run.passed else 'FAIL'}", highlight=False)

    try:
        if not_started:
            raise _NotStarted(not_started)
        results = measure(source, load, settings, block.slo, block.voice_prompt, block.text_prompt, on_run,
                          on_ready=lambda d: console.print(f"endpoint: server ready: {d}", markup=False,
                                                           highlight=False))
        results.failure = _unreached(results)
    except (ServeError, UrlError, OSError, _NotStarted) as exc:
        results = _failed(block, setup, str(exc))
    except Exception as exc:  # noqa: BLE001 - the runs measured before must reach the report: a record, not a crash
        results = _failed(block, setup, f"{type(exc).__name__}: {exc}")
    if results.failure:
        results.verdict = failed_verdict(results.failure)
        console.print(f"endpoint: not measured: {results.failure}", markup=False, highlight=False)
    results.machine = machine
    write_endpoint(results, out_dir)
    return results


def _failed(block: EndpointBlock, setup, failure: str) -> EndpointResults:  # noqa: ANN001 - EndpointSetup
    return EndpointResults(created=datetime.now(timezone.utc), url=block.url or "", slo=block.slo, setup=setup,
                           voice_prompt=block.voice_prompt, text_prompt=block.text_prompt,
                           server=block.start or (f"{block.server} server (harness serve)" if block.serves else ""),
                           failure=failure.strip().splitlines()[0] if failure.strip() else "unknown failure")

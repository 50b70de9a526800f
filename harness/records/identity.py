"""What makes two measurements the same measurement: one table, used by `--resume`, `compare` and history.

A run measured at batch 4, with other weights, another frame, another persona, another environment or torch is a
different experiment: its step time differs for reasons no regression test should report, and `--resume` must not
reuse it. `Measurement` holds every such field; `differences` names those that differ. One rule, two tiers:
- what changes the quantity measured (batch, weights, torch, the recorded environment variables, the telemetry
  sampler's rate: a thread inside the measured process, ...): `--resume` re-measures, `compare` refuses the pair
  unless the user allows the field (`--allow-difference torch`, named in the refusal);
- what changes only the sample (`SAMPLE_FIELDS`: how many frames, the seed): the same quantity, estimated from
  another sample. `--resume` still re-measures a run asked with other frames or seed (it must deliver what was
  asked); `compare` judges the pair and shows the difference beside it as a warning.
Both call the same function, so they cannot drift apart.

`EndpointMeasurement` is the same rule for a served endpoint (endpoint.json): `--resume` of a scenario's `endpoint:`
block and `compare` of endpoint results both call `differences` on it.

A field one side does not know (an older results file; the torch of an environment not yet run) is not judged:
absent (None) is unknown, not different; a setting left unset is recorded as such ("none", 0), never as None.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from harness.contract.wire import EngineInfo
from harness.records.config import Offload, RunConfig, environment_label
from harness.records.endpoint import EndpointResults, EndpointSetup, Slo
from harness.records.scenario import Scenario


class _Identity(BaseModel):
    """The rule both identities share: fields both sides know and that differ, less the allowed ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def differences(self, other: "_Identity", allowed: frozenset[str] = frozenset(),
                    sample: bool = True) -> list[str]:
        """`field before -> after` for every field both sides know and that differs, except those allowed; with
        `sample=False`, not the fields that change only the sample (`sample_differences`)."""
        out = []
        mine, theirs = self.model_dump(), other.model_dump()
        skip = set(allowed) | (set() if sample else set(_sample_fields(self)))
        for name in type(self).model_fields:
            before, after = mine[name], theirs[name]
            if before is None or after is None or before == after or name in skip:
                continue
            out.append(_change(name, before, after))
        return out

    def sample_differences(self, other: "_Identity") -> list[str]:
        """The differing fields that change only the sample, not the quantity measured."""
        every = set(type(self).model_fields)
        return self.differences(other, frozenset(every - set(_sample_fields(self))))

    def key(self) -> str:
        """A short hash of the known fields (shown in results; identity itself is decided by `differences`)."""
        known = {k: v for k, v in self.model_dump().items() if v is not None}
        return hashlib.sha256(json.dumps(known, sort_keys=True).encode()).hexdigest()[:16]


class Measurement(_Identity):
    """Everything that changes what a worker measures. Not: names, descriptions, criteria, time limits, `repeat`
    (more processes measure the same thing). `frames` and `seed` change only the sample (SAMPLE_FIELDS)."""

    preset: Optional[str] = None
    weights: Optional[str] = None
    frames: Optional[int] = None  # measured frames asked of each worker (criteria minimums and --frames applied)
    duration_s: Optional[float] = None  # a soak measures this long instead; 0: not a soak
    warmup: Optional[int] = None
    frame_budget_ms: Optional[float] = None
    pace: Optional[str] = None
    torch_threads: Optional[int] = None  # 0: torch's default
    seed: Optional[int] = None
    host_memory_limit_gib: Optional[float] = None  # 0: no limit
    batch_size: Optional[int] = None  # the run's, else the scenario's
    serving: Optional[str] = None
    persona: Optional[str] = None  # canonical JSON of the prefill stepped before the first frame; "none"
    environment: Optional[str] = None  # the worker's interpreter: "harness" or its environment's folder
    torch: Optional[str] = None  # as the worker reported it; before a run, as the probe found it (own environment)
    moshi: Optional[str] = None
    moshi_flavour: Optional[str] = None  # pypi, or nvidia (PersonaPlex's fork), as the worker reported it
    device: Optional[str] = None
    dtype: Optional[str] = None
    quantize: Optional[str] = None
    offload: Optional[str] = None
    offload_fraction: Optional[float] = None  # only when something is offloaded
    compile: Optional[bool] = None
    cuda_graphs: Optional[bool] = None
    capacity: Optional[str] = None  # the capacity search's spec, canonical JSON
    telemetry_hz: Optional[float] = None  # the sampler is a thread inside the measured process; 0: off
    env: Optional[str] = None  # canonical JSON of the variables that can change a measurement (contract.environment)
    input: Optional[str] = None  # the input audio: "synthetic" (seeded) or the recording's path
    fidelity: Optional[str] = None  # canonical JSON of the fidelity pass asked for (frames, criteria)


FIELDS: tuple[str, ...] = tuple(Measurement.model_fields)
# Fields that change only the sample, not the quantity measured: compare warns, --resume re-measures.
# The input audio and the fidelity pass change no step time (compute does not depend on what is said; the pass runs
# after the timed frames), but they do change the fidelity figures recorded: --resume measures again.
SAMPLE_FIELDS: tuple[str, ...] = ("frames", "seed", "input", "fidelity")


def _sample_fields(identity: _Identity) -> tuple[str, ...]:
    return SAMPLE_FIELDS if isinstance(identity, Measurement) else ()


def override_hint(differences: list[str]) -> str:
    """The flags that would compare a pair anyway: `--allow-difference torch --allow-difference env`."""
    names = dict.fromkeys(d.split(" ", 1)[0] for d in differences)
    return " ".join(f"--allow-difference {name}" for name in names)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _change(name: str, before: Any, after: Any) -> str:
    """`torch 2.4.1 -> 2.9.1`; for the environment, the variables that differ (`env PYTORCH_CUDA_ALLOC_CONF unset ->
    expandable_segments:True`), so that the line says what changed."""
    if name == "env":
        try:
            old, new = json.loads(before), json.loads(after)
        except (TypeError, ValueError):
            old = new = None
        if isinstance(old, dict) and isinstance(new, dict):
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            return "env " + ", ".join(f"{k} {old.get(k, 'unset')} -> {new.get(k, 'unset')}" for k in keys)
    return f"{name} {_show(before)} -> {_show(after)}"


def _canonical(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True)


def measurement_of(scenario: Optional[Scenario], run: RunConfig, *, weights: Optional[str], frames: Optional[int],
                   warmup: Optional[int], engine: Optional[EngineInfo] = None,
                   software: Optional[dict[str, Optional[str]]] = None,
                   env: Optional[dict[str, str]] = None) -> Measurement:
    """The identity of `run` as `scenario` measures it. `engine` (what the worker reported) adds the software that
    ran and the environment it ran under; before a run, `software` (the probe's package versions of the harness's
    own environment) stands in for runs in that environment, and `env` for the variables the worker will be given.
    Software not known is not judged."""
    offloaded = run.offload is not Offload.none
    fields: dict[str, Any] = dict(
        weights=weights, frames=frames, warmup=warmup, serving=run.serving.value,
        environment=environment_label(run.python) if run.python else "harness",
        device=run.device.value, dtype=run.dtype.value, quantize=run.quantize.value, offload=run.offload.value,
        offload_fraction=run.offload_fraction if offloaded else None, compile=run.compile,
        cuda_graphs=run.cuda_graphs, capacity=_canonical(run.capacity) if run.capacity is not None else None)
    if scenario is not None:
        fields.update(
            preset=scenario.preset, duration_s=scenario.duration or 0.0, frame_budget_ms=scenario.frame_budget_ms,
            pace=scenario.pace.value, torch_threads=scenario.torch_threads or 0, seed=scenario.seed,
            host_memory_limit_gib=scenario.host_memory_limit_gib or 0.0, telemetry_hz=scenario.telemetry_hz,
            batch_size=run.batch_size or scenario.batch_size,
            persona=_canonical(scenario.effective_persona), input=scenario.input,
            fidelity=_canonical(scenario.fidelity))
    elif run.batch_size:
        fields["batch_size"] = run.batch_size
    if engine is not None:
        fields.update(torch=engine.torch_version, moshi=engine.moshi_version, moshi_flavour=engine.moshi_flavour)
        # files written before the worker recorded its environment (an empty env) do not know it
        fields["env"] = _canonical(engine.env) if engine.env else None
    elif software is not None and run.python is None:
        fields.update(torch=software.get("torch"), moshi=software.get("moshi"))
    if engine is None and env is not None:
        fields["env"] = _canonical(env)
    return Measurement(**fields)


class EndpointMeasurement(_Identity):
    """Everything that changes what the callers of a served model get: the server and its model, the load, the
    persona query, the SLO and jitter buffer the callers were judged by, and the load generator's hardware. Not: the
    URL's host and port (a port is free or not), the time limits, the host name."""

    server: Optional[str] = None  # moshi, personaplex (harness serve's code), command, url
    command: Optional[str] = None
    preset: Optional[str] = None
    weights: Optional[str] = None
    device: Optional[str] = None
    dtype: Optional[str] = None
    environment: Optional[str] = None
    load: Optional[str] = None  # closed, open, search-sessions, search-servers
    sessions: Optional[int] = None
    calls: Optional[int] = None
    arrival_rate_per_s: Optional[float] = None
    call_seconds: Optional[float] = None
    seed: Optional[int] = None
    voice_prompt: Optional[str] = None
    text_prompt: Optional[str] = None
    jitter_buffer_ms: Optional[float] = None
    slo: Optional[str] = None  # canonical JSON of the SLO less the jitter buffer
    hardware: Optional[str] = None  # the load generator's hardware key (harness.records.machine)


ENDPOINT_FIELDS: tuple[str, ...] = tuple(EndpointMeasurement.model_fields)


def endpoint_measurement(setup: Optional[EndpointSetup], slo: Slo, voice_prompt: Optional[str],
                         text_prompt: Optional[str], hardware: Optional[str]) -> EndpointMeasurement:
    """The identity of an endpoint measurement, from what was asked (before measuring: `--resume`) or recorded."""
    fields: dict[str, Any] = dict(voice_prompt=voice_prompt, text_prompt=text_prompt, hardware=hardware,
                                  jitter_buffer_ms=slo.jitter_buffer_ms,
                                  slo=_canonical(slo.model_dump(mode="json", exclude={"jitter_buffer_ms"})))
    if setup is not None:
        fields.update(setup.model_dump())
        # a closed loop's `calls` and `arrival_rate_per_s` are unset, not unknown: recorded as such
        if setup.load != "open":
            fields.update(calls=0, arrival_rate_per_s=0.0, seed=0)
        if setup.server in ("command", "url"):
            fields.update({k: fields[k] or "unknown" for k in ("preset", "weights", "device", "dtype", "environment")})
        if setup.server != "command":
            fields["command"] = "none"
    return EndpointMeasurement(**fields)


def endpoint_measurement_of(results: EndpointResults) -> EndpointMeasurement:
    """The identity of recorded endpoint results; files without `setup` give the load their runs show."""
    setup = results.setup
    if setup is None and results.runs and results.search is None:
        first = results.runs[0]
        known = EndpointMeasurement(load=first.kind, sessions=first.sessions, call_seconds=first.call_seconds,
                                    arrival_rate_per_s=first.arrival_rate_per_s or 0.0)
        rest = endpoint_measurement(None, results.slo, results.voice_prompt, results.text_prompt,
                                    results.machine.hardware_key if results.machine else None)
        return rest.model_copy(update={k: v for k, v in known.model_dump().items() if v is not None})
    return endpoint_measurement(setup, results.slo, results.voice_prompt, results.text_prompt,
                                results.machine.hardware_key if results.machine else None)

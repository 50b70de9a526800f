"""Endpoint results written through the real record model and the real assessment (harness.endpoint.assess), from
packet times a server of a given speed would give: for compare's tests, where two real measurements are too costly.

A server steps each 80 ms frame when it has arrived and the frame before is done, taking `step_ms` (with seeded
jitter); each step sends one frame of audio. Persona prefill before the handshake takes `prefill_ms`. A server with
`step_ms` above 80 falls behind: packet gaps grow to its step, the deficit grows over the call.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from harness.endpoint.assess import load_run
from harness.endpoint.caller import CallOutcome
from harness.probe.machine import host_machine
from harness.records.endpoint import CallerRaw, EndpointResults, EndpointSetup, Slo, write_endpoint
from harness.verdict.endpoint import slo_verdict

FRAME_S = 0.08


def caller(step_ms: float, prefill_ms: float, seconds: float, rng: np.random.Generator, start_s: float) -> CallOutcome:
    upgraded = start_s + 0.002
    handshake = upgraded + prefill_ms / 1000.0 * (1 + 0.03 * rng.standard_normal())
    frames = int(round(seconds / FRAME_S))
    scheduled = [handshake + 0.005 + k * FRAME_S for k in range(frames)]
    sent = [t + abs(0.0005 * rng.standard_normal()) for t in scheduled]
    audio, done = [], handshake
    for t in sent:
        step = step_ms / 1000.0 * max(0.5, 1 + 0.05 * rng.standard_normal())
        done = max(t + 0.001, done) + step
        audio.append(done)
    raw = CallerRaw(scheduled_start_s=start_s, connect_start_s=start_s, upgraded_s=upgraded, handshake_s=handshake,
                    end_s=audio[-1] + 0.01, send_scheduled_s=scheduled, send_s=sent, audio_s=audio,
                    audio_samples=[1920] * len(audio))
    return CallOutcome(raw=raw, close_reason="closed by the caller after its stream")


def endpoint_results(step_ms: float = 30.0, prefill_ms: float = 400.0, callers: int = 4, seconds: float = 10.0,
                     seed: int = 0, server: str = "moshi", failed: int = 0) -> EndpointResults:
    rng = np.random.default_rng(seed)
    slo = Slo()
    outcomes = [caller(step_ms, prefill_ms, seconds, rng, 0.0) for _ in range(callers)]
    for outcome in outcomes[:failed]:
        outcome.failure = "no handshake within 60 s"
    run = load_run("closed", outcomes, slo, seconds, servers=callers)  # one server process per caller
    setup = EndpointSetup(server=server, preset="personaplex-tiny", weights="synthetic", device="cpu",
                          environment="harness", load="closed", sessions=callers, call_seconds=seconds)
    return EndpointResults(created=datetime.now(timezone.utc), url="ws://127.0.0.1:8998/api/chat", server=server,
                           slo=slo, runs=[run], verdict=slo_verdict([run], None), setup=setup,
                           machine=host_machine(), voice_prompt=None, text_prompt=None)


def write(results: EndpointResults, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_endpoint(results, folder)
    return folder

"""One `harness endpoint` measurement: which servers (given URL, a started command, or `harness serve`'s), which
load (closed, open, sessions search, server-process search), and the verdict. Servers it started are always stopped.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import urlsplit

from harness.endpoint.load import CallSettings, closed_loop, open_loop
from harness.endpoint.protocol import DEFAULT_TEXT_PROMPT, chat_url
from harness.endpoint.search import search
from harness.endpoint.serving import ServeSpec, start, start_command
from harness.launcher.server import RunningServer, free_port, stop_server
from harness.records.config import environment_label
from harness.records.endpoint import EndpointResults, EndpointSetup, LoadRun, Slo
from harness.verdict.endpoint import slo_verdict


@dataclass
class LoadSpec:
    sessions: int = 1
    arrival_rate: Optional[float] = None
    calls: int = 0
    search_sessions: Optional[int] = None  # max sessions of the SLO search
    search_servers: Optional[int] = None  # max server processes of the capacity search
    machine_hour_usd: Optional[float] = None
    seed: int = 0


@dataclass
class ServerSource:
    url: Optional[str] = None
    start_command: Optional[str] = None
    serve: Optional[ServeSpec] = None
    ready_timeout_s: float = 900.0
    log_dir: Path = Path(".")


@dataclass
class _Servers:
    source: ServerSource
    started: list[RunningServer] = field(default_factory=list)
    description: str = ""
    voice_prompt: Optional[str] = None

    def url_for(self, server: RunningServer) -> str:
        if self.source.url:
            parts = urlsplit(self.source.url)
            return parts._replace(netloc=f"{parts.hostname}:{server.port}").geturl()
        return f"ws://127.0.0.1:{server.port}/api/chat"

    def start_one(self) -> str:
        index = len(self.started)
        log = self.source.log_dir / f"server-{index}.log"
        port = _port_of(self.source.url) if index == 0 and self.source.url else free_port()
        if self.source.serve is not None:
            spec = ServeSpec(**{**self.source.serve.__dict__, "port": port})
            server, prepared = start(spec, log)
            self.description, self.voice_prompt = prepared.description, prepared.voice_prompt
        else:
            server = start_command(self.source.start_command or "", port, log, self.source.ready_timeout_s)
            self.description = f"started by the harness: {self.source.start_command}"
        self.started.append(server)
        return self.url_for(server)

    def stop_all(self) -> None:
        for server in self.started:
            stop_server(server)


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme in ("wss", "https") else 80)


@contextlib.contextmanager
def servers(source: ServerSource) -> Iterator[_Servers]:
    held = _Servers(source)
    try:
        yield held
    finally:
        held.stop_all()


def setup_of(source: ServerSource, load: LoadSpec, call_seconds: float) -> EndpointSetup:
    """What was asked, as harness.records.identity judges it."""
    mode = ("search-servers" if load.search_servers else "search-sessions" if load.search_sessions
            else "open" if load.arrival_rate is not None else "closed")
    sessions = load.search_servers or load.search_sessions or (None if mode == "open" else load.sessions)
    setup = EndpointSetup(server="url", load=mode, sessions=sessions, call_seconds=call_seconds,
                          calls=load.calls if mode == "open" else None,
                          arrival_rate_per_s=load.arrival_rate if mode == "open" else None,
                          seed=load.seed if mode == "open" else None)
    if source.serve is not None:
        spec = source.serve
        setup.server, setup.preset, setup.weights, setup.device = spec.server, spec.preset, spec.weights, spec.device
        setup.dtype = "float16" if spec.half else None  # the server's own default otherwise, not known here
        setup.environment = environment_label(spec.python) if spec.python else "harness"
    elif source.start_command:
        setup.server, setup.command = "command", source.start_command
    return setup


def measure(source: ServerSource, load: LoadSpec, settings: CallSettings, slo: Slo, voice_prompt: Optional[str],
            text_prompt: Optional[str], on_run: Callable[[LoadRun], None],
            on_ready: Callable[[str], None] = lambda _: None,
            on_begin: Callable[[EndpointResults], None] = lambda _: None) -> EndpointResults:
    """`on_begin` gets the results' head (server, prompts, setup) once the first server answers, `on_run` each load
    run as it finishes: what an interrupt keeps."""
    with servers(source) as held:
        urls: list[str] = []
        if source.serve is not None or source.start_command:
            urls.append(held.start_one())
            on_ready(held.description)
        else:
            urls.append(source.url or "")
        voice = voice_prompt if voice_prompt is not None else held.voice_prompt
        text = text_prompt if text_prompt is not None or voice is None else DEFAULT_TEXT_PROMPT
        chat = [chat_url(u, voice, text) for u in urls]
        results = EndpointResults(created=datetime.now(timezone.utc), url=chat[0], server=held.description,
                                  voice_prompt=voice, text_prompt=text, slo=slo, host=socket.gethostname(),
                                  setup=setup_of(source, load, settings.call_seconds))
        on_begin(results)
        if load.search_servers:
            def probe_servers(k: int) -> LoadRun:
                while len(chat) < k:
                    chat.append(chat_url(held.start_one(), voice, text))
                return closed_loop(chat[:k], k, settings, slo)

            found, runs = search("servers", probe_servers, load.search_servers, on_run)
            found.calls_per_machine = found.largest_passing
            if load.machine_hour_usd is not None and found.largest_passing:
                found.cost_per_conversation_hour_usd = load.machine_hour_usd / found.largest_passing
                found.price_note = f"{load.machine_hour_usd:g} USD per machine-hour (--machine-hour-usd)"
            results.search, results.runs = found, runs
        elif load.search_sessions:
            found, runs = search("sessions", lambda n: closed_loop(chat, n, settings, slo), load.search_sessions,
                                 on_run)
            found.calls_per_machine = found.largest_passing
            results.search, results.runs = found, runs
        elif load.arrival_rate is not None:
            run = open_loop(chat, load.arrival_rate, load.calls, settings, slo, seed=load.seed)
            on_run(run)
            results.runs = [run]
        else:
            run = closed_loop(chat, load.sessions, settings, slo)
            on_run(run)
            results.runs = [run]
        results.verdict = slo_verdict(results.runs, results.search)
        return results

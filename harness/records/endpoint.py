"""endpoint.json: what the callers of a running moshi / PersonaPlex server got (schema `harness.endpoint`).

Times are seconds on the load generator's monotonic clock, zero at the shared start; durations are milliseconds
unless the name says otherwise. Every caller is a row, failed ones included (a refused, timed-out or dropped caller
stays in the denominator). Raw packet arrival times are kept so that any figure can be recomputed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from harness.records.base import Record
from harness.records.files import ResultsFileError, read_schema_json, validate_file
from harness.records.machine import Machine

ENDPOINT_SCHEMA_NAME = "harness.endpoint"
ENDPOINT_SCHEMA_VERSION = 1
ENDPOINT_JSON = "endpoint.json"

CallerStatus = Literal["ok", "failed"]
LoadKind = Literal["closed", "open"]


class EndpointFileError(ResultsFileError):
    """An endpoint.json that cannot be read: its message names the file and the field."""


class Slo(Record):
    """What every caller must get for a load to pass (defaults: the seeds' 500 ms conversational target)."""

    first_audio_ms: float = Field(default=500.0, gt=0, description="first audio after the caller's stream started")
    interval_p99_ms: float = Field(default=160.0, gt=0, description="p99 gap between audio packets (2 frames)")
    deficit_frames: float = Field(default=3.0, ge=0, description="frames sent minus frames heard at stream end "
                                                                  "(moshi's own delay is 1-2)")
    handshake_ms: float = Field(default=10000.0, gt=0, description="upgrade to handshake (PersonaPlex's persona "
                                                                   "prefill is in it)")
    underrun_s: float = Field(default=0.5, ge=0, description="silence the speaker plays through the jitter buffer")
    jitter_buffer_ms: float = Field(default=80.0, ge=0, description="the speaker's buffer (the criteria's one frame)")


class CallerRaw(Record):
    scheduled_start_s: float
    server: int = 0  # which of the run's server processes it dialled (index into the URLs, round-robin)
    process: int = 0  # which of the load generator's processes ran it
    connect_start_s: Optional[float] = None
    upgraded_s: Optional[float] = None  # WebSocket upgrade done (the server accepted the socket)
    handshake_s: Optional[float] = None  # kind 0 received
    end_s: Optional[float] = None  # the call ended (closed by us after the drain, or by the server)
    send_scheduled_s: list[float] = Field(default_factory=list)  # when each 80 ms frame was due
    send_s: list[float] = Field(default_factory=list)  # when it left
    audio_s: list[float] = Field(default_factory=list)  # arrival of each kind-1 message
    audio_samples: list[int] = Field(default_factory=list)  # PCM samples it decoded to
    text_s: list[float] = Field(default_factory=list)
    other_kinds: dict[str, int] = Field(default_factory=dict)  # control/metadata/error/ping/unknown counts


class CallerResult(Record):
    index: int
    status: CallerStatus
    reason: Optional[str] = None  # why it failed, in one line
    close_reason: str = ""  # how the call ended (we closed after the stream, server closed, error)
    connect_ms: Optional[float] = None
    handshake_ms: Optional[float] = Field(default=None, description="upgrade to handshake")
    lock_wait_ms: Optional[float] = Field(default=None, description="part of the handshake spent waiting for the "
                                                                     "call before this one to end")
    prefill_ms: Optional[float] = Field(default=None, description="the rest: the server's work before the handshake")
    lock_split: str = Field(default="", description="how the handshake was split: 'measured' (its server serves one "
                                                    "call at a time), 'no call before' (nothing to wait for), or "
                                                    "'unknown: ...' (lock wait and prefill then stay empty)")
    first_audio_ms: Optional[float] = Field(default=None, description="first audio after the stream started")
    interval_p50_ms: Optional[float] = None
    interval_p99_ms: Optional[float] = None
    interval_max_ms: Optional[float] = None
    sent_frames: int = 0
    received_frames: float = 0.0
    deficit_frames: Optional[float] = None
    drift_ms_per_s: Optional[float] = None
    underrun_s: Optional[float] = None
    send_late_p99_ms: Optional[float] = None
    send_late_max_ms: Optional[float] = None
    text: str = ""
    slo_failures: list[str] = Field(default_factory=list)
    raw: CallerRaw


class ClientHealth(Record):
    """Did the load generator keep up? Its event loops' lag (a ticker due every `tick_ms`) and how late callers sent
    their frames against the 80 ms schedule. A client that fell behind inflates packet gaps and underruns that the
    server did not cause: such a run is limited by the load generator, not a server failure."""

    processes: int = Field(default=1, description="load generator processes the callers were spread over")
    callers_per_process: int = Field(default=0, description="the most callers one process ran")
    tick_ms: float = 0.0
    loop_lag_p99_ms: Optional[float] = Field(default=None, description="worst process: p99 lateness of the ticker")
    loop_lag_max_ms: Optional[float] = None
    send_stall_p99_ms: Optional[float] = Field(default=None, description="every frame of every caller: how much "
                                                                         "later it left than the frame before allowed")
    send_late_total_max_ms: Optional[float] = Field(default=None, description="the latest caller's last frame")
    fell_behind: bool = False
    note: str = ""


class LoadRun(Record):
    kind: LoadKind
    sessions: int = Field(description="callers (closed loop) or calls (open loop)")
    call_seconds: float
    arrival_rate_per_s: Optional[float] = None
    servers: int = 1  # server processes the callers were spread over (capacity of a stock deployment)
    callers: list[CallerResult]
    ok: int
    failed: int
    passed: bool
    one_call_at_a_time: Optional[bool] = Field(default=None, description="no two calls streamed at once while a "
                                                                          "caller waited: a server-wide lock")
    note: str = ""
    client: Optional[ClientHealth] = Field(default=None, description="absent in files written before it was kept")
    limited_by_client: bool = Field(default=False, description="failed while the load generator fell behind: "
                                                               "limited by the load generator, not a server failure")


class SearchResult(Record):
    what: Literal["sessions", "servers"]
    largest_passing: int = Field(description="0: not even one passed")
    first_failing: Optional[int] = None
    limited_by: str
    probes: list[int]  # sizes tried, in order (each is one LoadRun in `runs`)
    calls_per_machine: Optional[int] = None
    cost_per_conversation_hour_usd: Optional[float] = None
    price_note: str = ""


ServerKind = Literal["moshi", "personaplex", "command", "url"]
LoadMode = Literal["closed", "open", "search-sessions", "search-servers"]


class EndpointSetup(Record):
    """How the measurement was asked for: what `harness compare` and `--resume` judge (harness.records.identity).
    None: not known (e.g. the server behind a URL), never judged as a difference."""

    server: ServerKind = Field(description="moshi / personaplex: started by `harness serve`'s code; command: a user's "
                                           "own command; url: a server already running")
    command: Optional[str] = None  # the user's own --start command
    preset: Optional[str] = None
    weights: Optional[str] = None
    device: Optional[str] = None
    dtype: Optional[str] = None
    environment: Optional[str] = None  # the server's interpreter: "harness" or its environment's folder
    load: LoadMode = "closed"
    sessions: Optional[int] = Field(default=None, description="closed loop callers, or the search's maximum")
    calls: Optional[int] = None
    arrival_rate_per_s: Optional[float] = None
    call_seconds: float = 10.0
    seed: Optional[int] = None  # the open loop's arrivals


class Verdict(Record):
    word: Literal["GO", "NO-GO", "INCONCLUSIVE"]  # INCONCLUSIVE: the load generator fell behind, not the server
    reasons: list[str] = Field(default_factory=list)


class EndpointResults(Record):
    schema_name: Literal["harness.endpoint"] = ENDPOINT_SCHEMA_NAME
    schema_version: Literal[1] = ENDPOINT_SCHEMA_VERSION
    created: datetime
    url: str
    server: str = Field(default="", description="what served it: harness serve's description or the command")
    voice_prompt: Optional[str] = None
    text_prompt: Optional[str] = None
    sample_rate: int = 24000
    frame_samples: int = 1920
    slo: Slo
    runs: list[LoadRun] = Field(default_factory=list)
    search: Optional[SearchResult] = None
    verdict: Optional[Verdict] = None
    host: str = ""
    setup: Optional[EndpointSetup] = Field(default=None, description="absent in files written before it was kept")
    machine: Optional[Machine] = Field(default=None, description="the load generator's machine (its hardware key "
                                                                 "makes results comparable)")
    failure: Optional[str] = Field(default=None, description="why nothing was measured (the server did not start, "
                                                             "no caller reached it): a record, never a crash")
    interrupted: Optional[str] = Field(default=None, description="stopped before the end (Ctrl-C, SIGTERM): the runs "
                                                                 "that finished are kept, no verdict is drawn")


def write_endpoint(results: EndpointResults, out_dir: Path) -> Path:
    from harness.records.store import atomic_write_text  # store reads results.json, whose identity reads this file

    path = out_dir / ENDPOINT_JSON
    atomic_write_text(path, results.model_dump_json(indent=1) + "\n")
    return path


def load_endpoint(path: Path) -> EndpointResults:
    path, data = read_schema_json(path, ENDPOINT_JSON, ENDPOINT_SCHEMA_NAME, "endpoint", EndpointFileError)
    return validate_file(EndpointResults, data, path, "endpoint", EndpointFileError)

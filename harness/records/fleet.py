"""fleet.json: one scenario (or several) run on many machines, one entry per (machine, scenario).

Each machine keeps its own results folder (results.json, report.html) beside fleet.json; `results_dir`
is that folder relative to fleet.json, so a fleet folder can be moved or archived as a whole.
`machine_results()` resolves those folders, which is all `harness compare` / `history` need to treat a
fleet folder as "these results, per machine".
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from harness.records.base import Record
from harness.records.files import ResultsFileError, read_schema_json, validate_file
from harness.records.store import RESULTS_JSON, atomic_write_text

FLEET_SCHEMA_NAME = "harness.fleet"
FLEET_SCHEMA_VERSION = 2  # 2: capacity became lockstep_sessions, beside server_processes
FLEET_JSON = "fleet.json"

MachineStatus = Literal["ok", "failed"]
VerdictWord = Literal["GO", "NO-GO", "INCONCLUSIVE", "RE-RUN"]


class FleetFileError(ResultsFileError):
    """A fleet.json that cannot be read: its message names the file (and line or field)."""


class FleetMachine(Record):
    """One machine's outcome for one scenario."""

    node_id: Optional[str] = Field(default=None, description="Ray node id; None when the task was never placed")
    hostname: str = ""
    scenario: str
    fingerprint: Optional[str] = Field(default=None, description="the machine fingerprint of its results.json")
    gpu: Optional[str] = Field(default=None, description="GPU name(s); None: no GPU seen (or no results)")
    driver: Optional[str] = Field(default=None, description="NVIDIA driver version")
    torch: Optional[str] = Field(default=None, description="torch version on that machine")
    status: MachineStatus
    reason: str = Field(default="", description="why the machine failed, or what is worth knowing when ok")
    verdict: Optional[VerdictWord] = None
    headline: str = Field(default="", description="the verdict's one-line headline on that machine")
    best: Optional[str] = Field(default=None, description="recommended configuration (GO) or the fastest ok run")
    p99_ms: Optional[float] = Field(default=None, description="p99 step time of `best`")
    server_processes: Optional[int] = Field(default=None, description="the deployable figure: one-call server "
                                            "processes (PersonaPlex's or moshi's server) the machine holds in real time")
    server_processes_how: Optional[str] = Field(default=None, description="measured or predicted")
    cost_per_conversation_hour: Optional[float] = Field(
        default=None, description="machine price per hour / server processes: what the buyer's order uses")
    lockstep_sessions: Optional[int] = Field(default=None, description="sessions in lockstep in one batched process "
                                                                       "(needs a batching server, e.g. vllm-omni's)")
    lockstep_cost_per_conversation_hour: Optional[float] = Field(
        default=None, description="machine price per hour / lockstep sessions (needs a batching server)")
    runs_ok: int = 0
    runs_failed: int = 0
    runs_skipped: int = 0
    exit_code: Optional[int] = Field(default=None, description="exit status of `harness run` on the node")
    wall_s: Optional[float] = Field(default=None, description="seconds `harness run` took on the node")
    results_dir: Optional[str] = Field(
        default=None, description="the machine's results folder, relative to fleet.json (results.json, report.html)")
    report: Optional[str] = Field(default=None, description="its report.html, relative to fleet.json")


class Fleet(Record):
    schema_name: str = FLEET_SCHEMA_NAME
    schema_version: int = FLEET_SCHEMA_VERSION
    harness_version: str
    created_at: datetime
    command: list[str] = Field(default_factory=list)
    cluster: str = Field(default="", description="the Ray address, or 'local cluster of N nodes'")
    scenarios: list[str]
    wall_s: Optional[float] = Field(default=None, description="wall time of the whole fleet run")
    machines: list[FleetMachine] = Field(default_factory=list)


def write_fleet(fleet: Fleet, out_dir: Path) -> Path:
    path = out_dir / FLEET_JSON
    atomic_write_text(path, fleet.model_dump_json(indent=2))
    return path


def is_fleet(path: Path) -> bool:
    """A fleet folder or fleet.json (cheap test, for commands that accept results or fleets)."""
    return (path / FLEET_JSON).is_file() if path.is_dir() else path.name == FLEET_JSON


def load_fleet(path: Path) -> Fleet:
    """Read fleet.json (or a folder holding one); refuse other files and schema versions with a clear message."""
    path, data = read_schema_json(path, FLEET_JSON, FLEET_SCHEMA_NAME, "fleet", FleetFileError)
    version = data.get("schema_version")
    if version == 1:
        data = _from_version_1(data)
        version = data["schema_version"]
    if version != FLEET_SCHEMA_VERSION:
        raise FleetFileError(f"{path}: fleet schema version {version} is not supported by this harness "
                             f"(it reads version {FLEET_SCHEMA_VERSION})")
    return validate_file(Fleet, data, path, "fleet", FleetFileError)


def _from_version_1(data: dict) -> dict:
    """Version 1 called the lockstep batch `capacity` and priced conversations by it; neither shipped server runs
    such a batch, so version 2 keeps it as `lockstep_sessions` and prices by server processes (unknown in v1)."""
    machines = []
    for machine in data.get("machines") or []:
        if isinstance(machine, dict):
            machine = dict(machine)
            machine["lockstep_sessions"] = machine.pop("capacity", None)
            machine["lockstep_cost_per_conversation_hour"] = machine.pop("cost_per_conversation_hour", None)
        machines.append(machine)
    return {**data, "machines": machines, "schema_version": 2}


def machine_results(path: Path) -> list[tuple[FleetMachine, Path]]:
    """Each machine of a fleet that has a results.json, with the absolute path of its results folder."""
    fleet_file = path / FLEET_JSON if path.is_dir() else path
    fleet = load_fleet(fleet_file)
    root = fleet_file.parent.resolve()
    found = []
    for machine in fleet.machines:
        if machine.results_dir is None:
            continue
        folder = (fleet_file.parent / machine.results_dir).resolve()
        if not folder.is_relative_to(root):  # results live beside fleet.json; a path out of it is not this fleet's
            raise FleetFileError(f"{fleet_file}: results_dir {machine.results_dir!r} of {machine.hostname} points "
                                 "outside the fleet folder")
        if (folder / RESULTS_JSON).is_file():
            found.append((machine, folder))
    return found

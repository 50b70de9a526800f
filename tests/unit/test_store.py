"""Results files: atomic replacement, schema version, CSV rows."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.scenario import RunDefaults
from harness.records.schema import SCHEMA_VERSION, RunResult, Session
from harness.records.store import ResultsFileError, atomic_write_text, load_session, write_session


def _session() -> Session:
    now = datetime.now(timezone.utc)
    config = RunConfig(name="cpu-bf16-eager", **RunDefaults().model_dump())
    machine = Machine(hostname="h", os="Linux", os_release="6", platform="p", cpu_model="c", cpu_cores_logical=2,
                      cpu_cores_physical=2, ram_total_bytes=1, python="3.11", packages={}, fingerprint="f")
    return Session(harness_version="0", created_at=now, updated_at=now, state="complete", command=["harness"],
                   scenario_path="s.yaml", scenario={"name": "s", "preset": "personaplex-tiny"}, weights="synthetic",
                   machine=machine,
                   runs=[RunResult(name=config.name, config=config, status="skipped", reason="why")])


def test_round_trip_and_csv(tmp_path: Path) -> None:
    session = _session()
    write_session(session, tmp_path)
    loaded = load_session(tmp_path)
    assert loaded == session
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("name,status,") and csv[1].startswith("cpu-bf16-eager,skipped,")
    assert oct((tmp_path / "results.json").stat().st_mode & 0o777) != "0o600"


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_load_refuses_foreign_or_newer_files(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultsFileError, match="not a harness results file"):
        load_session(path)
    data = json.loads(_session().model_dump_json())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFileError, match="schema version"):
        load_session(path)
    path.write_text("{broken")
    with pytest.raises(ResultsFileError, match=r"results.json:1: not valid JSON"):
        load_session(path)

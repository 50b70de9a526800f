"""One measurement identity, two tiers: `--resume` reuses a run exactly when nothing differs; `compare` refuses a
pair whose quantity differs, and judges one whose sample differs (frames, seed) with a warning.

Each case changes one thing between an earlier session and a new one; the real resume rule (ScenarioRunner._reusable)
and the real comparison (compare_sessions) must agree, and settings that change a frame must make both refuse.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console

from harness.compare.regression import compare_sessions, parse_threshold
from harness.contract.wire import EngineInfo
from harness.records.config import RunConfig
from harness.records.identity import FIELDS
from harness.records.machine import Machine
from harness.records.schema import RunResult, Session
from harness.scenario.load import load_scenario
from harness.session.runner import RunOptions, ScenarioRunner

BASE = """name: ident
preset: personaplex-tiny
frames: 40
warmup_frames: 4
torch_threads: 2
defaults: {device: cpu, dtype: bfloat16}
runs:
  - {name: r}
"""

# one change each: (label, scenario text edit, torch version the new machine has, same measurement?); "sample":
# the same quantity from another sample (resume measures again, compare judges it with a warning)
CASES = [
    ("nothing", {}, "2.9.1", True),
    ("description", {"description": "another day"}, "2.9.1", True),
    ("criteria", {"criteria": "{headroom: 0.2}"}, "2.9.1", True),
    ("time limit", {"timeout_s": "60"}, "2.9.1", True),
    ("repeat", {"repeat": "3"}, "2.9.1", True),
    ("telemetry rate", {"telemetry_hz": "5"}, "2.9.1", False),  # a sampler thread inside the measured process
    ("frames", {"frames": "150"}, "2.9.1", "sample"),  # 40 and 50 both measure the criteria's 100
    ("warmup", {"warmup_frames": "6"}, "2.9.1", False),
    ("budget", {"frame_budget_ms": "100"}, "2.9.1", False),
    ("pace", {"pace": "realtime"}, "2.9.1", False),
    ("threads", {"torch_threads": "1"}, "2.9.1", False),
    ("batch", {"batch_size": "2"}, "2.9.1", False),
    ("persona", {"persona": "off"}, "2.9.1", False),
    ("seed", {"seed": "7"}, "2.9.1", "sample"),
    ("input audio", {"input": "voice.wav"}, "2.9.1", "sample"),  # the same compute, other fidelity figures
    ("fidelity pass", {"fidelity": "{frames: 8}"}, "2.9.1", "sample"),
    ("memory limit", {"host_memory_limit_gib": "8"}, "2.9.1", False),
    ("soak", {"duration": "4s"}, "2.9.1", False),
    ("weights", {"weights": "ckpt/model.safetensors"}, "2.9.1", False),
    ("dtype", {"defaults": "{device: cpu, dtype: float32}"}, "2.9.1", False),
    ("serving", {"defaults": "{device: cpu, dtype: bfloat16, serving: model}"}, "2.9.1", False),
    ("compile", {"defaults": "{device: cpu, dtype: bfloat16, compile: on}"}, "2.9.1", False),
    ("int8", {"defaults": "{device: cpu, dtype: bfloat16, quantize: int8}"}, "2.9.1", False),
    ("offload", {"defaults": "{device: cpu, dtype: bfloat16, offload: cpu}"}, "2.9.1", False),
    ("environment", {"python": sys.executable}, "2.9.1", False),
    ("torch", {}, "2.10.0", False),
]


def _scenario_text(edits: dict[str, str]) -> str:
    lines = [line for line in BASE.splitlines() if line.split(":", 1)[0] not in edits]
    head = [f"{key}: {value}" for key, value in edits.items()]
    return "\n".join(lines[:2] + head + lines[2:]) + "\n"


def _machine(torch: str) -> Machine:
    return Machine(hostname="h", os="Linux", os_release="6", platform="p", cpu_model="c", cpu_cores_logical=2,
                   cpu_cores_physical=2, ram_total_bytes=2**34, python="3.11",
                   packages={"torch": torch, "moshi": "0.2.13"}, fingerprint="f")


def _engine(torch: str) -> EngineInfo:
    return EngineInfo(torch_version=torch, moshi_version="0.2.13", device="cpu", device_name="cpu", torch_threads=2,
                      lm_dtype="bfloat16", mimi_dtype="float32", weights="synthetic", lm_parameters=1,
                      mimi_parameters=1)


def _session(path: Path, torch: str) -> tuple[Session, ScenarioRunner]:
    loaded = load_scenario(path)
    runner = ScenarioRunner(loaded, path.parent / "out", RunOptions(), Console(file=open("/dev/null", "w")))
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    session = Session(harness_version="0", created_at=now, updated_at=now, state="complete", command=[],
                      scenario_path=str(path), scenario=loaded.scenario,
                      weights=str(loaded.weights_path) if loaded.weights_path else "synthetic",
                      machine=_machine(torch), frames=runner.frames, warmup_frames=runner.warmup)
    session.runs = [RunResult(name=run.name, config=run, status="ok", engine=_engine(torch)) for run in loaded.runs]
    return session, runner


@pytest.mark.parametrize("label, edits, torch, same", CASES, ids=[c[0] for c in CASES])
def test_resume_and_compare_agree(tmp_path: Path, label: str, edits: dict[str, str], torch: str,
                                  same: bool | str) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"")
    (tmp_path / "voice.wav").write_bytes(b"")  # loading checks the path exists; nothing here reads it
    (tmp_path / "before.yaml").write_text(BASE)
    (tmp_path / "after.yaml").write_text(_scenario_text(edits))
    earlier, _ = _session(tmp_path / "before.yaml", "2.9.1")
    current, runner = _session(tmp_path / "after.yaml", torch)

    runner.machine = current.machine
    runner.options = RunOptions(resume=earlier)
    reused = runner._reusable(current.runs[0].config, current) is not None
    compared = compare_sessions(earlier, current, [parse_threshold("p50:10%")], 0.01, "a", "b").runs[0]
    comparable = compared.outcome != "not comparable"

    if same == "sample":
        assert not reused, f"{label}: --resume must measure what is asked again"
        assert comparable and compared.sample_differences, compared
        assert compared.note.startswith("another sample"), compared.note
        return
    assert not compared.sample_differences
    assert reused == comparable, f"{label}: resume reuses={reused}, compare comparable={comparable} " \
                                 f"({compared.differences})"
    assert reused == same, f"{label}: expected {'the same' if same else 'another'} measurement, differences: " \
                           f"{compared.differences}"
    if not same:
        assert "--allow-difference " in compared.note, "a refusal names the flag that overrides it"


def test_the_recorded_environment_is_part_of_the_identity(tmp_path: Path) -> None:
    """A run measured under another allocator setting is not reused by --resume, and compare refuses it naming the
    variable and the flag; the same environment is the same measurement."""
    from harness.contract.environment import measurement_env
    from harness.launcher.environment import worker_env

    (tmp_path / "s.yaml").write_text(BASE)
    earlier, _ = _session(tmp_path / "s.yaml", "2.9.1")
    current, runner = _session(tmp_path / "s.yaml", "2.9.1")
    runner.machine, runner.options = current.machine, RunOptions(resume=earlier)
    given = measurement_env(worker_env(current.runs[0].config, 2))
    for session, env in ((earlier, given), (current, given)):
        assert session.runs[0].engine is not None
        session.runs[0].engine.env = dict(env)
    assert runner._reusable(current.runs[0].config, current) is not None
    assert compare_sessions(earlier, current, [parse_threshold("p50:10%")], 0.01, "a", "b").runs[0].outcome != \
        "not comparable"
    assert earlier.runs[0].engine is not None
    earlier.runs[0].engine.env = {**given, "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
    assert runner._reusable(current.runs[0].config, current) is None
    compared = compare_sessions(earlier, current, [parse_threshold("p50:10%")], 0.01, "a", "b").runs[0]
    assert compared.outcome == "not comparable"
    assert compared.differences == ["env PYTORCH_CUDA_ALLOC_CONF expandable_segments:True -> unset"]
    assert "(--allow-difference env compares them anyway)" in compared.note


def test_allowed_fields_are_the_identity_fields() -> None:
    assert {"batch_size", "serving", "persona", "environment", "torch", "dtype", "frames"} <= set(FIELDS)
    assert "name" not in FIELDS and "timeout_s" not in FIELDS


def test_auto_runs_renamed_for_the_cpu_keep_names_unique(tmp_path: Path) -> None:
    """`auto-bf16-eager` resolved to the CPU would take the name of an explicit `cpu-bf16-eager` (logs overwritten,
    --resume and compare confused): it becomes `cpu-bf16-eager-auto` instead."""
    (tmp_path / "s.yaml").write_text("name: s\npreset: personaplex-tiny\nruns:\n  - {device: cpu}\n  - {device: auto}\n"
                                     "  - {device: auto, dtype: float32}\n")
    loaded = load_scenario(tmp_path / "s.yaml")
    assert [r.name for r in loaded.runs] == ["cpu-bf16-eager", "auto-bf16-eager", "auto-fp32-eager"]
    runner = ScenarioRunner(loaded, tmp_path / "out", RunOptions(), Console(file=open("/dev/null", "w")))
    runner.machine = _machine("2.9.1")  # no CUDA here
    resolved = runner._resolve_all(loaded.runs)
    assert [r.name for r, _ in resolved] == ["cpu-bf16-eager", "cpu-bf16-eager-auto", "cpu-fp32-eager"]
    assert all(r.device.value == "cpu" for r, _ in resolved)
    assert [r.resolved_from for r, _ in resolved] == [None, "auto", "auto"]


def test_an_unreadable_worker_reply_is_named_in_the_record() -> None:
    from harness.launcher.spawn import WorkerOutcome
    from harness.session.assemble import ProcessOutcome, from_workers

    run = RunConfig(name="r", device="cpu", dtype="float32", quantize="none", offload="none", offload_fraction=0.5,
                     compile=False, cuda_graphs=False)
    outcome = WorkerOutcome(pid=1, exit_code=0, signal_name=None, timed_out=False, wall_s=1.0, stderr_tail="")
    result = from_workers(run, [ProcessOutcome(outcome, None, "BenchReply.samples: expected a list")],
                          frame_budget_ms=80.0, warmup_frames=2, timeout_s=10.0,
                          started_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert result.status == "failed"
    assert "reply could not be read: BenchReply.samples: expected a list" in result.reason

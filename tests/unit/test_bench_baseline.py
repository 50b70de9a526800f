"""pytest-benchmark baselines per hardware key: picked for this hardware only, stored after the gate, and a machine
without one is told so (real files, the real script in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.compare.bench_baseline import bench_baseline, store
from harness.records.store import load_session

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "benchmarks" / "smoke-baseline" / "results.json"  # a real results file of a known machine


def _run_json(path: Path, cpu: str) -> Path:
    path.write_text(json.dumps({"machine_info": {"system": "Linux", "python_implementation": "CPython",
                                                 "python_version": "3.11.7", "cpu": {"bits": 64, "brand_raw": cpu}},
                                "benchmarks": [{"name": "test_frame_loop", "stats": {"median": 1.0}}]}))
    return path


def test_a_baseline_is_found_only_under_this_hardware(tmp_path: Path) -> None:
    machine = load_session(SMOKE).machine
    other = machine.model_copy(update={"cpu_model": "AMD EPYC 7B13"})
    root = tmp_path / "baselines"
    none = bench_baseline(root, machine)
    assert not none.found and "no pytest-benchmark baseline for hardware" in none.message()
    assert none.pytest_args() == [f"--benchmark-storage=file://{none.storage}"]  # nothing to gate on
    saved = store(none, _run_json(tmp_path / "run.json", machine.cpu_model))
    assert saved == root.resolve() / machine.hardware_key / "Linux-CPython-3.11-64bit" / "0001_nightly.json"
    found = bench_baseline(root, machine)
    assert found.found and found.saved == [saved] and "--benchmark-compare" in found.pytest_args()
    assert "--benchmark-compare-fail=median:25%" in found.pytest_args()
    assert not bench_baseline(root, other).found  # another CPU model never sees this machine's baseline
    assert store(found, tmp_path / "run.json").name == "0002_nightly.json"


def test_the_script_says_plainly_when_there_is_none(tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "bench-baseline"), str(SMOKE), "--root", str(tmp_path)]
    none = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert none.returncode == 4 and "no pytest-benchmark baseline for hardware 6bc883d3ac4b" in none.stderr
    stored = subprocess.run([*script, "--store", str(_run_json(tmp_path / "run.json", "x"))], capture_output=True,
                            text=True, timeout=120)
    assert stored.returncode == 0, stored.stderr
    found = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 and "--benchmark-compare" in found.stdout.splitlines()
    bad = subprocess.run([*script[:2], str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("bench-baseline: ")
    # The committed baseline of the former development VM is filed under its hardware key.
    committed = bench_baseline(ROOT / "benchmarks" / "pytest-benchmark", load_session(SMOKE).machine)
    assert committed.found

"""pytest-benchmark baselines kept per hardware, as the results history is.

pytest-benchmark files its saved runs under a folder named for the platform and interpreter
("Linux-CPython-3.11-64bit"), so a baseline saved on one CPU model was compared with runs on another (hosted
runners come in several). Here each hardware key (harness.records.machine.Machine.hardware_key, the history's
key) has its own storage folder, ROOT/KEY; a machine with no saved run there has no baseline, and is told so.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.compare.hardware import hardware_key, hardware_of
from harness.records.machine import Machine

DEFAULT_FAIL = "median:25%"


@dataclass(frozen=True)
class BenchBaseline:
    key: str
    hardware: str  # in words
    storage: Path
    saved: list[Path]  # pytest-benchmark's saved runs for this hardware, oldest first

    @property
    def found(self) -> bool:
        return bool(self.saved)

    def pytest_args(self, fail: str = DEFAULT_FAIL) -> list[str]:
        """Compare with (and gate on) this hardware's newest saved run; with none, nothing to compare. Saving is
        separate (`store`), after the gate: a run that failed it must not become the next baseline."""
        storage = f"--benchmark-storage=file://{self.storage}"
        if self.found:
            return [storage, "--benchmark-compare", f"--benchmark-compare-fail={fail}"]
        return [storage]

    def message(self) -> str:
        if self.found:
            return (f"pytest-benchmark baseline for hardware {self.key} ({self.hardware}): "
                    f"{self.saved[-1].relative_to(self.storage)}")
        return (f"no pytest-benchmark baseline for hardware {self.key} ({self.hardware}) under {self.storage}: "
                "this run is saved as its baseline and nothing is gated")


def bench_baseline(root: Path, machine: Machine) -> BenchBaseline:
    key = hardware_key(machine)
    storage = (root / key).resolve()
    saved = sorted(storage.glob("*/[0-9][0-9][0-9][0-9]_*.json")) if storage.is_dir() else []
    return BenchBaseline(key=key, hardware=hardware_of(machine).describe(), storage=storage, saved=saved)


def _machine_id(info: dict) -> str:
    """pytest-benchmark's folder inside the storage ("Linux-CPython-3.11-64bit"), from the run's machine_info."""
    version = ".".join(str(info.get("python_version", "")).split(".")[:2])
    bits = (info.get("cpu") or {}).get("bits", 64)
    return f"{info.get('system', 'unknown')}-{info.get('python_implementation', 'Python')}-{version}-{bits}bit"


def store(baseline: BenchBaseline, run_json: Path, name: str = "nightly") -> Path:
    """File a `--benchmark-json` output as this hardware's newest saved run (numbered as pytest-benchmark does)."""
    data = json.loads(run_json.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "benchmarks" not in data or "machine_info" not in data:
        raise ValueError(f"{run_json}: not a pytest-benchmark JSON file (no 'benchmarks' / 'machine_info')")
    folder = baseline.storage / _machine_id(data["machine_info"])
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:4]) for p in folder.glob("[0-9][0-9][0-9][0-9]_*.json")]
    target = folder / f"{max(numbers, default=0) + 1:04d}_{name}.json"
    shutil.copyfile(run_json, target)
    return target

"""The user's own environment: workers and the probe run in a second venv that has torch 2.13.0 (outside moshi
0.2.13's declared torch<2.10) and moshi installed --no-deps, and no pydantic, psutil or accelerate at all.

The venv is built once per machine under ~/.cache/harness-tests (pip takes torch 2.13.0 from the wheel on this
machine's disk) and reused; deleting that folder rebuilds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TORCH = "2.13.0"
ENV = Path.home() / ".cache" / "harness-tests" / f"env-torch{TORCH}-moshi0.2.13"
# What moshi imports at run time for the core (its other requirements serve its own server and int8).
RUNTIME = ["numpy", "safetensors", "huggingface_hub", "einops", "sentencepiece"]


def _pip(*args: str) -> None:
    done = subprocess.run([str(ENV / "bin" / "python"), "-m", "pip", "install", "-q", *args], capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, f"pip install {' '.join(args)} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def other_python() -> Path:
    python = ENV / "bin" / "python"
    ready = ENV / ".ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENV)], check=True, timeout=300)
        _pip(f"torch=={TORCH}", *RUNTIME)
        _pip("--no-deps", "moshi==0.2.13")
        ready.write_text("ok\n")
    return python


def test_the_other_environment_really_lacks_the_harness_dependencies(other_python: Path) -> None:
    code = ("import importlib.util, torch; print(torch.__version__, "
            "[m for m in ('pydantic', 'psutil', 'accelerate', 'rich') if importlib.util.find_spec(m)])")
    done = subprocess.run([str(other_python), "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0].startswith(TORCH) and done.stdout.strip().endswith("[]")


def test_probe_in_the_other_environment(other_python: Path) -> None:
    done = run_cli("probe", "--python", str(other_python), "--json")
    # exit status = the worst check; accelerate and bitsandbytes are absent there on purpose (fail)
    assert done.returncode in (0, 1, 2) and done.stdout.startswith("{"), done.stderr[-3000:]
    report = json.loads(done.stdout)
    machine = report["machine"]
    assert machine["packages"]["torch"].startswith(TORCH) and machine["packages"]["moshi"] == "0.2.13"
    assert str(other_python) in machine["python"]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["torch"]["status"] == "pass" and TORCH in checks["torch"]["finding"]


def test_two_environments_side_by_side(other_python: Path, tmp_path: Path) -> None:
    scenario = tmp_path / "envs.yaml"
    scenario.write_text(f"""
name: envs
preset: personaplex-tiny
persona: off  # what these tests check does not need the persona prefill
frames: 3
warmup_frames: 2
torch_threads: 1
telemetry_hz: 2
criteria: {{min_frames: 1, min_seconds: 0}}
defaults: {{device: cpu, dtype: float32, serving: model}}
runs:
  - name: harness-env
  - name: user-env
    python: {other_python}
""")
    out = tmp_path / "out"
    done = run_cli("run", str(scenario), "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = {r["name"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert all(r["status"] == "ok" for r in runs.values()), {n: r["reason"] for n, r in runs.items()}
    assert runs["user-env"]["engine"]["torch_version"].startswith(TORCH)
    assert not runs["harness-env"]["engine"]["torch_version"].startswith(TORCH)
    assert runs["user-env"]["config"]["python"] == str(other_python.absolute())
    telemetry = runs["user-env"]["metrics"]["telemetry"]
    assert "psutil is not installed" in telemetry["sources"]["host"], "no psutil there: said, not faked"
    html = (out / "report.html").read_text()
    assert f"torch {TORCH}" in html and "torch 2.9.1" in html

"""scripts/gpu-check --cpu for real: the prepared GPU check runs its every step on the CPU, so that it cannot rot.

One run into a temporary folder under a short total budget (steps that do not fit are skipped with that note, as on
the lent GPU machine): at most 8 files come back, flat, each under 16 MiB; the step log names every step in order,
each started or skipped with its reason; the wheels step really installs a carried wheel for the later steps.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

CPU_STEPS = ["wheels", "probe", "pytest-gpu", "bf16-eager", "bf16-graphs", "fp16-graphs", "served", "capacity",
             "endpoint", "compile", "bundle"]
BUDGET_S = 90  # the whole check; on a loaded 2-core machine the later steps are skipped for time, and say so


def _wheel(folder: Path) -> Path:
    """A real (pure-Python) wheel, so that the wheels step runs pip install --no-index --target for real."""
    folder.mkdir()
    path = folder / "gpu_check_marker-1.0-py3-none-any.whl"
    info = "gpu_check_marker-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("gpu_check_marker/__init__.py", "")
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: gpu-check-marker\nVersion: 1.0\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", f"gpu_check_marker/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n"
                                           f"{info}/RECORD,,\n")
    return folder


@pytest.fixture(scope="module")
def cpu_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path, Path]:
    root = tmp_path_factory.mktemp("gpu-check")
    out, work = root / "out", root / "work"
    done = subprocess.run([sys.executable, "scripts/gpu-check", "--cpu", "--budget", str(BUDGET_S), "--out", str(out),
                           "--work", str(work), "--wheels", str(_wheel(root / "whl"))],
                          cwd=REPO, capture_output=True, text=True, timeout=BUDGET_S + 120)
    return done, out, work


def test_at_most_eight_flat_files_each_under_16_mib(cpu_check) -> None:
    done, out, _ = cpu_check
    assert done.returncode in {0, 1}, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(out.iterdir())
    assert 4 <= len(files) <= 8 and all(f.is_file() for f in files), files
    assert all(f.stat().st_size <= 16 * 2**20 for f in files)
    names = {f.name for f in files}
    assert {"gpu-check.json", "gpu-check.log", "summary.md", "bundle.tar.gz"} <= names
    with tarfile.open(out / "bundle.tar.gz") as tar:
        members = tar.getnames()
    assert "gpu-check/probe.json" in members and not any("/site/" in m for m in members), members


def test_every_step_started_or_skipped_with_its_reason(cpu_check) -> None:
    done, out, _ = cpu_check
    log = json.loads((out / "gpu-check.json").read_text())
    assert log["schema_name"] == "harness.gpu-check" and log["preset"] == "cpu"
    steps = log["steps"]
    assert [s["name"] for s in steps] == CPU_STEPS
    for s in steps:
        assert s["status"] in {"ok", "failed", "skipped"}, s
        if s["status"] == "skipped":
            assert s["reason"], s  # a note says why: not fitting in the time left, or what harness skipped
        else:
            assert s["started_s"] is not None and s["seconds"] is not None and s["commands"], s
        if s["status"] == "failed":  # only time may stop a step on a loaded machine; anything else is a bug
            assert "time limit" in s["reason"] or "timed out" in s["reason"], s
    console = (out / "gpu-check.log").read_text()
    for s in steps[:-1]:
        assert f"{s['name']}: budget " in console or f"{s['name']}: skipped: " in console, s["name"]
    summary = (out / "summary.md").read_text()
    assert all(f"| {name} |" in summary for name in CPU_STEPS[:-1])
    if steps[3]["status"] == "ok":  # bf16-eager measured: its run is in the merged session, report and table
        merged = json.loads((out / "results.json").read_text())
        assert "bf16-eager" in [r["name"] for r in merged["runs"]] and (out / "report.html").is_file()
        assert "| bf16-eager | core | ok |" in summary
    assert log["elapsed_s"] <= BUDGET_S + 15


def test_the_carried_wheel_is_installed_for_the_later_steps(cpu_check) -> None:
    _, out, work = cpu_check
    wheels = json.loads((out / "gpu-check.json").read_text())["steps"][0]
    assert wheels["status"] == "ok", wheels
    assert (work / "site" / "gpu_check_marker" / "__init__.py").is_file()
    packages = json.loads((work / "versions.json").read_text())
    assert packages["gpu_check_marker"] == "1.0"  # imported through the PYTHONPATH later steps get


def _gpucheck(module: str):  # noqa: ANN202 - scripts/gpucheck is no installed package
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        return importlib.import_module(f"gpucheck.{module}")
    finally:
        sys.path.remove(str(REPO / "scripts"))


def test_the_served_frame_is_the_fastest_bf16() -> None:
    steps = _gpucheck("steps")
    times = {"bf16-eager": 77.0, "bf16-graphs": 31.0, "fp16-graphs": 29.0}
    assert steps.served_choice("fp16-graphs", times) == "bf16-graphs"  # NVIDIA's server offers bf16 only
    assert steps.served_choice("bf16-eager", {"bf16-eager": 77.0}) == "bf16-eager"
    assert steps.served_choice("fp16-graphs", {}) == "bf16-graphs"  # a rerun with --fastest: the bf16 counterpart
    with pytest.raises(_gpucheck("core").StepSkipped, match="no bf16 configuration was measured ok"):
        steps.served_choice("fp16-graphs", {"fp16-graphs": 29.0})


def test_a_step_that_does_not_fit_is_skipped_with_a_note() -> None:
    core = _gpucheck("core")
    assert core.plan_step(60, 61) is None
    assert core.plan_step(60, 59) == "does not fit: needs ~60 s, 59 s left"
    assert core.plan_step(10, -3) == "does not fit: needs ~10 s, 0 s left"


def test_the_tarball_leaves_out_the_largest_files_until_it_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _gpucheck("bundle")
    monkeypatch.setattr(bundle, "MAX_FILE_BYTES", 2**20)
    work = tmp_path / "work"
    (work / "runs" / "a" / "logs").mkdir(parents=True)
    (work / "site" / "pydantic").mkdir(parents=True)
    (work / "runs" / "a" / "results.json").write_text("{}")
    (work / "runs" / "a" / "logs" / "a.stderr.log").write_bytes(os.urandom(2 * 2**20))  # incompressible
    (work / "site" / "pydantic" / "x.py").write_text("installed wheels never travel back")
    left_out = bundle._tarball(work, tmp_path / "bundle.tar.gz")
    assert left_out == ["runs/a/logs/a.stderr.log"]
    assert (tmp_path / "bundle.tar.gz").stat().st_size <= 2**20
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        assert tar.getnames() == ["gpu-check/runs/a/results.json"]

"""History keyed by hardware, software shown beside it, and the compare CLI's loud outcomes and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.compare import history
from harness.compare.hardware import hardware_key, hardware_of, software_changes
from harness.compare.regression import EXIT_NO_BASELINE, EXIT_NOT_COMPARABLE, EXIT_REGRESSION
from harness.contract.wire import GpuInfo
from harness.records.store import write_session
from tests.unit.test_compare import ar1, machine, run, session


def test_hardware_key_is_stable_across_software_bumps_and_follows_the_hardware() -> None:
    old = machine(torch="2.9.1")
    new = machine(torch="2.10.0").model_copy(update={
        "hostname": "runner-42", "packages": {"torch": "2.10.0", "moshi": "0.2.14"}, "torch_cuda_build": "13.0",
        "nvidia_driver": "580.1", "python": "3.12", "fingerprint": "changed",
        "ram_total_bytes": 64 * 2**30 - 300 * 2**20})  # the kernel reserves a little more after an update
    assert hardware_key(old) == hardware_key(new) and len(hardware_key(old)) == 12
    assert old.fingerprint != new.fingerprint, "the old fingerprint changed with every torch bump"
    for other in (old.model_copy(update={"cpu_cores_logical": 8}),
                  old.model_copy(update={"gpus": [GpuInfo(index=0, name="NVIDIA H100 80GB HBM3",
                                                          memory_total_bytes=80 * 2**30)]}),
                  old.model_copy(update={"gpus": [*old.gpus, *old.gpus]}),
                  old.model_copy(update={"ram_total_bytes": 128 * 2**30})):
        assert hardware_key(other) != hardware_key(old)
    assert hardware_of(old).describe() == "AMD EPYC, 16 cores, 64 GiB RAM, NVIDIA GeForce RTX 5090 (32 GiB)"
    bumped = session([], m=new)
    bumped.harness_version = "0.2.0"
    assert software_changes(session([]), bumped) == [
        "harness 0.1.0 -> 0.2.0", "python 3.11 -> 3.12", "torch 2.9.1 -> 2.10.0", "moshi 0.2.13 -> 0.2.14",
        "CUDA absent -> 13.0", "driver absent -> 580.1"]


def _write(folder: Path, s) -> Path:  # noqa: ANN001
    folder.mkdir(parents=True, exist_ok=True)
    write_session(s, folder)
    return folder


def test_history_by_hardware_reads_the_old_layout_and_keeps_the_baseline_across_a_torch_bump(tmp_path: Path) -> None:
    hist = tmp_path / "history"
    first = session([run("r", ar1(50, 200, 1))])
    # An entry written under the old layout: a folder named by Machine.fingerprint (torch in the hash).
    old_file = hist / first.machine.fingerprint / "20261101T000000Z-s.json"
    old_file.parent.mkdir(parents=True)
    old_file.write_text(first.model_dump_json())
    bumped = session([run("r", ar1(50, 200, 2))], later=1, m=machine(torch="2.10.0"))
    added = history.add(_write(tmp_path / "second", bumped), hist).path
    assert added.parent.name == hardware_key(bumped.machine) != bumped.machine.fingerprint
    found = history.entries(hist)
    assert [e.path for e in found] == [old_file, added] and {e.hardware for e in found} == {added.parent.name}
    later = session([run("r", ar1(50, 200, 3))], later=2, m=machine(torch="2.10.0"))
    baseline = history.latest_baseline(hist, later)
    assert baseline is not None and baseline.path == added
    assert history.latest_baseline(hist, first) is None, "nothing earlier than the first session"
    elsewhere = session([run("r", ar1(50, 200, 3))], later=2, m=machine(gpu=None))
    assert history.latest_baseline(hist, elsewhere) is None, "other hardware is never a baseline"
    rows = history.trend_rows([e.session for e in found])
    assert rows[0].changed == [] and rows[1].changed == ["torch 2.9.1 -> 2.10.0"]
    out = history.trend_plot([e.session for e in found], tmp_path / "trend.png")
    assert out.stat().st_size > 10_000


def test_cli_missing_baseline_is_loud_with_its_own_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    current = _write(tmp_path / "cur", session([run("r", ar1(50, 200, 1))]))
    assert main(["compare", str(tmp_path / "nowhere"), str(current)]) == EXIT_NO_BASELINE == 4
    err = capsys.readouterr().err
    assert "NO BASELINE: baseline" in err and "does not exist" in err
    md = tmp_path / "summary.md"
    assert main(["compare", "--history", str(tmp_path / "empty"), str(current), "--markdown", str(md)]) == 4
    assert "no earlier s results for hardware" in capsys.readouterr().out
    assert md.read_text().startswith("## Performance: NO BASELINE")


def test_cli_history_gate_regression_refusal_and_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hist = tmp_path / "history"
    base = _write(tmp_path / "base", session([run("r", ar1(50, 300, 1))]))
    assert main(["history", "add", str(base), "--dir", str(hist)]) == 0
    slow = _write(tmp_path / "slow", session([run("r", ar1(100, 300, 2))], later=1, m=machine(torch="2.10.0")))
    capsys.readouterr()
    assert main(["compare", "--history", str(hist), str(slow)]) == EXIT_REGRESSION
    out = capsys.readouterr().out
    assert "## Performance: REGRESSION" in out and "software changed: torch 2.9.1 -> 2.10.0" in out
    other = _write(tmp_path / "other", session([run("r", ar1(50, 300, 3))], later=1, m=machine(gpu=None)))
    assert main(["compare", str(base), str(other)]) == EXIT_NOT_COMPARABLE
    assert "different hardware (GPUs NVIDIA GeForce RTX 5090 (32 GiB) -> none)" in capsys.readouterr().out
    assert main(["compare", str(base), str(other), "--allow-other-machine"]) in {0, 6}
    bigger = _write(tmp_path / "bigger", session([run("r", ar1(100, 300, 4))], later=1, batch_size=4))
    assert main(["compare", str(base), str(bigger)]) == EXIT_NOT_COMPARABLE
    assert "batch_size 1 -> 4" in capsys.readouterr().out
    assert main(["compare", str(base), str(bigger), "--allow-difference", "batch_size"]) == EXIT_REGRESSION
    assert main(["compare", str(base), str(bigger), "--allow-difference", "colour"]) == 2
    assert main(["history", "add", str(slow), "--dir", str(hist)]) == 0
    capsys.readouterr()
    assert main(["history", "key", str(slow)]) == 0
    key = capsys.readouterr().out.strip()
    assert key == hardware_key(machine()) and (hist / key).is_dir()
    assert main(["history", "list", "--dir", str(hist), "--hardware", "0000"]) == EXIT_NO_BASELINE, "CI: first night"
    assert main(["history", "list", "--dir", str(hist)]) == 0
    table = capsys.readouterr().out
    assert "2.10.0" in table and "torch 2.9.1 -> 2.10.0" in table

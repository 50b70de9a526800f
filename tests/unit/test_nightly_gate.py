"""The nightly's history rule (issue 26): a night enters the history only when its gate passed (compare exit 0, or
4), or on the first night on its hardware; never after inconclusive (6) or a regression (1). The workflow's own gate
script runs here with a stand-in `harness` that exits each code, and the add step's condition is evaluated on the
outputs it wrote."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "nightly.yml"


def _steps() -> dict[str, dict]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return {s["name"]: s for job in jobs.values() for s in job["steps"] if "name" in s}


def _gate_outputs(tmp_path: Path, compare_exit: int) -> tuple[int, dict[str, str]]:
    """Runs the gate step's script with `.venv/bin/harness` exiting `compare_exit`; its exit and its outputs."""
    script = _steps()["Compare with this hardware's history (gates the job)"]["run"]
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "harness").write_text(f"#!/bin/sh\nexit {compare_exit}\n")
    (bin_dir / "harness").chmod(0o755)
    outputs = tmp_path / "github_output"
    outputs.touch()
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "GITHUB_OUTPUT": str(outputs)})
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return done.returncode, values


def _adds_to_history(first_night: bool, gate: dict[str, str], accept: bool = False) -> bool:
    """The add step's `if:` with these outputs (GitHub's expression: &&, ||, ==, !cancelled())."""
    condition = _steps()["Add to this hardware's history"]["if"].strip()
    condition = re.sub(r"^\$\{\{(.*)\}\}$", r"\1", condition, flags=re.S)
    values = {"steps.baseline.outputs.gate": "false" if first_night else "true",
              "steps.gate.outputs.passed": gate.get("passed", ""), "inputs.accept": accept}
    for name, value in values.items():
        condition = condition.replace(name, repr(value))
    condition = condition.replace("!cancelled()", "True").replace("&&", " and ").replace("||", " or ")
    return bool(eval(condition, {"__builtins__": {}}))  # noqa: S307 (the repository's own workflow text)


@pytest.mark.parametrize(("compare_exit", "added"), [(0, True), (4, True), (6, False), (1, False), (5, False)])
def test_a_night_enters_the_history_only_when_its_gate_passed(tmp_path: Path, compare_exit: int,
                                                               added: bool) -> None:
    rc, outputs = _gate_outputs(tmp_path, compare_exit)
    assert rc == (compare_exit if compare_exit not in (0, 4, 6) else 0), "1 and 5 fail the job, 6 warns"
    assert _adds_to_history(first_night=False, gate=outputs) is added


def test_the_first_night_on_new_hardware_is_its_baseline_and_accept_overrides() -> None:
    assert _adds_to_history(first_night=True, gate={})
    assert _adds_to_history(first_night=False, gate={"passed": "false"}, accept=True)
    assert not _adds_to_history(first_night=False, gate={"passed": "false"})

"""DESIGN rule: the parent never imports torch (a broken CUDA install must not crash the harness)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PARENT_MODULES = [
    "harness.cli", "harness.cli.run", "harness.cli.machine", "harness.cli.results",
    "harness.session.runner", "harness.launcher.spawn", "harness.probe.machine", "harness.probe.checks",
    "harness.plan.planner", "harness.plan.scenario_plan", "harness.report.render", "harness.verdict.recommend",
    "harness.compare.regression", "harness.compare.history", "harness.diagnosis.diagnose",
    "harness.session.assemble", "harness.contract.wire", "harness.contract.progress",
]


def test_parent_modules_do_not_import_torch() -> None:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PARENT_MODULES)
            + "heavy = sorted(m for m in ('torch', 'moshi', 'bitsandbytes', 'accelerate') if m in sys.modules)\n"
            + "print(','.join(heavy))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the parent imported {done.stdout.strip()}"

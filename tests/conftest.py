"""Shared fixtures: scenario files written on the fly, the harness CLI as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

# In-process engine tests run eager: moshi would otherwise torch.compile its output norm on the CPU
# (tens of seconds). Workers get their own setting from the run configuration, not from here.
os.environ.setdefault("NO_TORCH_COMPILE", "1")

REPO = Path(__file__).resolve().parents[1]
TINY = "personaplex-tiny"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`harness ...` in a fresh interpreter, as a user would run it."""
    # The checkout first, then whatever PYTHONPATH brings (on the lent GPU machine: the carried wheels' folder).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _no_ci_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports written by tests never reach the CI job's step summary (a test that checks it sets its own)."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items or cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False on this machine")
    for item in gpu_items:
        item.add_marker(skip)

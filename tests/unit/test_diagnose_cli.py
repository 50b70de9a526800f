"""`harness diagnose FILE|-`: output, JSON, exit status, --gpu."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from harness.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "data" / "diagnosis"


def _log(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.log"
    path.write_text(text)
    return str(path)


def test_diagnosed_log_exits_zero_with_cause_and_remedy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _log(tmp_path, "UserWarning: NVIDIA GeForce GTX 1080 Ti with CUDA capability sm_61 is not compatible with "
                          "the current PyTorch installation.\nRuntimeError: CUDA error: out of memory\n")
    assert main(["diagnose", path]) == 0
    out = capsys.readouterr().out
    assert "no_kernel_image" in out and "whl/cu126" in out and "symptom" in out and "cuda_oom" in out


def test_json_and_gpu_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _log(tmp_path, "RuntimeError: CUDA error: no kernel image is available for execution on the device\n")
    assert main(["diagnose", path, "--gpu", "rtx5090", "--json"]) == 0
    finding = json.loads(capsys.readouterr().out)
    assert finding["kind"] == "no_kernel_image" and "whl/cu128" in finding["remedy"]
    assert finding["lines"][0]["line"] == 1 and "RTX 5090" in finding["gpu"]


def test_unknown_exits_one_and_prints_the_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _log(tmp_path, "loading\nValueError: the microphone is muted\n")
    assert main(["diagnose", path]) == 1
    out = capsys.readouterr().out
    assert "unknown" in out and "lines it looked at" in out and "the microphone is muted" in out


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((CORPUS / "029-pytorch-157458-cl-not-found.md").read_text()))
    assert main(["diagnose", "-"]) == 0
    assert "inductor_toolchain" in capsys.readouterr().out


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(tmp_path / "missing.log")]) == 2
    assert main(["diagnose", _log(tmp_path, "x"), "--gpu", "voodoo2"]) == 2
    assert "unknown GPU" in capsys.readouterr().err

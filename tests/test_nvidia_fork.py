"""NVIDIA PersonaPlex's own fork of moshi, run for real on the CPU (personaplex-tiny, synthetic weights): the worker
runs the fork's LMGen and `step_system_prompts` in a `python:` environment and records flavour "nvidia"; the
harness's emulation of the prefill (PyPI moshi) is checked against the fork step by step.

Needs the fork beside the repository (../shared/third_party/personaplex-moshi) and its environment (tests/fork_env.py
builds it once per machine); skips with the reason where either cannot be had. No timing is asserted: the per-step
and frame milliseconds are printed for reading (pytest -s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import fork_env
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

PERSONA = {"voice_prompt_frames": 3, "text_prompt_tokens": 5, "silence_frames": 2, "server_wait_ms": 1.0}


@pytest.fixture(scope="session")
def nvidia_python() -> Path:
    try:
        return fork_env.ensure()
    except fork_env.ForkUnavailable as exc:
        pytest.skip(str(exc))


def _trace(python: Path | str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_TORCH_COMPILE="1", NO_CUDA_GRAPH="1")
    done = subprocess.run([str(python), str(REPO / "tests" / "prefill_trace.py"), json.dumps(PERSONA), "2"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def traces(nvidia_python: Path) -> dict[str, dict]:
    return {"nvidia": _trace(nvidia_python), "pypi": _trace(sys.executable)}


def test_each_moshi_is_recognised(traces: dict[str, dict]) -> None:
    assert traces["nvidia"]["flavour"] == "nvidia" and traces["nvidia"]["moshi"] == "0.1.0"
    assert traces["pypi"]["flavour"] == "pypi" and traces["pypi"]["moshi"] == "0.2.13"


def test_the_emulation_steps_the_prompt_as_the_fork_does(traces: dict[str, dict]) -> None:
    fork, emulation = traces["nvidia"], traces["pypi"]
    for figure in ("voice_steps", "silence_steps", "text_steps"):
        assert fork["prefill"][figure] == emulation["prefill"][figure], figure
    assert fork["prefill"]["voice_steps"] == 3 and fork["prefill"]["text_steps"] == 5
    assert [s["phase"] for s in fork["trace"]] == [s["phase"] for s in emulation["trace"]]
    assert all(s["computed"] for s in fork["trace"]), "with a voice's embeddings every prompt step runs the LM"
    for ours, theirs in zip(emulation["trace"], fork["trace"]):
        assert ours["text"] == theirs["text"], "the same forced text token at every step"
        if theirs["phase"] != "voice":  # a voice's steps replay embeddings: no tokens to compare
            assert ours["agent"] == theirs["agent"] and ours["user"] == theirs["user"]
    assert len(fork["prefill"]["step_ms"]) == len(emulation["prefill"]["step_ms"]) == len(fork["trace"])
    for name, t in traces.items():
        steps = t["prefill"]["step_ms"]
        print(f"\n{name} (moshi {t['moshi']}, torch {t['torch']}): prefill {len(steps)} steps "
              f"{t['prefill']['seconds']:.2f} s ({t['prefill']['wait_s']:.2f} s waits), step ms "
              f"{[round(x, 1) for x in steps]}, frame ms {[round(x, 1) for x in t['frame_ms']]}")


def _run_fork_scenario(tmp_path: Path, name: str, runs: str) -> Path:
    """A three-frame personaplex-tiny scenario with the short persona, `runs` (its defaults and runs) appended, run
    through the CLI into tmp_path/out; the verdict is NO-GO or GO, never a failure."""
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(f"""
name: {name}
preset: personaplex-tiny
frames: 3
warmup_frames: 2
torch_threads: 1
telemetry_hz: 0
criteria: {{min_frames: 1, min_seconds: 0}}
persona: {json.dumps(PERSONA)}
""" + runs)
    out = tmp_path / "out"
    done = run_cli("run", str(scenario), "--out", str(out))
    assert done.returncode in (0, 3), done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_a_run_in_the_forks_environment_runs_the_fork(nvidia_python: Path, tmp_path: Path) -> None:
    out = _run_fork_scenario(tmp_path, "fork", f"""defaults: {{device: cpu, dtype: float32, serving: personaplex-server}}
runs:
  - name: emulated
  - name: nvidia
    python: {nvidia_python}
""")
    runs = {r["name"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert all(r["status"] == "ok" for r in runs.values()), {n: r["reason"] for n, r in runs.items()}
    fork, emulated = runs["nvidia"], runs["emulated"]
    assert fork["engine"]["moshi_flavour"] == "nvidia" and fork["engine"]["moshi_version"] == "0.1.0"
    assert emulated["engine"]["moshi_flavour"] == "pypi"
    assert fork["metrics"]["prefill"]["steps"] == emulated["metrics"]["prefill"]["steps"] == 3 + 4 + 5
    assert fork["metrics"]["first_audio"]["per_call_s"] > 0 and fork["metrics"]["frames"] == 3


def test_the_fork_builds_and_steps_in_bfloat16(nvidia_python: Path, tmp_path: Path) -> None:
    """bf16, the one dtype NVIDIA's server offers: the fork creates text_linear, depformer_in and out_norm without a
    dtype (float32) and its loader casts the whole model to the run's dtype; the worker must too, or the first step
    fails (`expected m1 and m2 to have the same dtype ... BFloat16 != float` in text_linear)."""
    defaults = f"{{device: cpu, dtype: bfloat16, serving: personaplex-server, python: {nvidia_python}}}"
    out = _run_fork_scenario(tmp_path, "fork-bf16", f"""defaults: {defaults}
runs:
  - name: nvidia-bf16
""")
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["status"] == "ok", run["reason"] + run["stderr_tail"][-2000:]
    assert run["engine"]["moshi_flavour"] == "nvidia" and run["engine"]["lm_dtype"] == "bfloat16"
    assert run["metrics"]["frames"] == 3 and run["metrics"]["prefill"]["steps"] == 3 + 4 + 5
    # fidelity compares PyPI moshi configurations: the fork's run says why it was not compared
    assert "NVIDIA's fork" in run["metrics"]["fidelity"]["skipped"]

"""PersonaPlex as it is served, on the CPU for real: NVIDIA's and moshi's server frames against moshi's core, the
persona prefill before the call's first frame, first audio per call apart from the cold start, and the latency
budget (personaplex-tiny, real workers)."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest

from harness.worker.pipeline.server_frame import MOSHI_SERVER_STAGES, SERVER_STAGES
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

SCENARIO = """
name: serving
preset: personaplex-tiny
frames: 12
warmup_frames: 2
torch_threads: 1
telemetry_hz: 0
criteria: {{min_frames: 1, min_seconds: 0}}
persona: {{voice_prompt: voice.wav, text_prompt: "You work for a repair company and your name is Ada.",
          server_wait_ms: 1}}
latency: {{network_rtt_ms: 40}}
defaults: {{device: cpu, dtype: float32}}
matrix:
  serving: [model, moshi-server, personaplex-server]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("serving")
    rate = 24000
    t = np.arange(rate) / rate  # one second of a voice-like tone: 13 frames of 80 ms
    pcm = (0.2 * np.sin(2 * math.pi * 180 * t) * 32767).astype("<i2")
    with wave.open(str(folder / "voice.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    (folder / "serving.yaml").write_text(SCENARIO.format())
    done = run_cli("run", str(folder / "serving.yaml"), "--out", str(folder / "out"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((folder / "out" / "results.json").read_text())


def test_server_frame_times_every_extra_as_its_own_stage(served: dict) -> None:
    runs = {r["name"]: r for r in served["runs"]}
    core, server, moshi = runs["cpu-fp32-eager-core"], runs["cpu-fp32-eager-server"], runs["cpu-fp32-eager"]
    assert core["status"] == server["status"] == moshi["status"] == "ok"
    assert set(core["metrics"]["stage_p50_ms"]) == {"encode", "lm_step", "decode"}
    assert set(moshi["metrics"]["stage_p50_ms"]) == set(MOSHI_SERVER_STAGES), "moshi's server: no second Mimi"
    assert moshi["engine"]["serving"] == "moshi-server"
    stages = server["metrics"]["stage_p50_ms"]
    assert set(stages) == set(SERVER_STAGES)
    # The duplicate Mimi does the same work as the first, in the same frames: a ratio load cannot erase.
    duplicate = stages["other_encode"] + stages["other_decode"]
    assert duplicate > 0.3 * (stages["encode"] + stages["decode"])
    assert server["engine"]["serving"] == "personaplex-server" and core["engine"]["serving"] == "model"


def test_prefill_steps_are_voice_silence_text_silence(served: dict) -> None:
    for run in served["runs"]:
        p = run["metrics"]["prefill"]
        assert p["voice_steps"] == 13, "1 s of .wav voice prompt through Mimi: 13 frames"
        assert p["silence_steps"] == 12 and p["text_tokens_estimated"] is True
        words = len("You work for a repair company and your name is Ada.".split())
        assert p["text_steps"] == 6 + math.ceil(1.3 * words)  # tags + ~1.3 tokens a word without the tokenizer
        assert p["steps"] == p["voice_steps"] + p["silence_steps"] + p["text_steps"] == p["context_frames"]
        assert p["voice_encode_ms"] > 0 and p["wait_s"] > 0
        m = run["metrics"]
        first, cold = m["first_audio"], m["cold_start"]
        assert first["voice_encode_s"] == pytest.approx(p["voice_encode_ms"] / 1e3) and first["prefill_s"] == p["seconds"]
        assert first["per_call_s"] == pytest.approx(first["voice_encode_s"] + p["seconds"] + m["first_frame_ms"] / 1e3)
        assert cold["import_s"] > 0 and cold["total_s"] == pytest.approx(cold["import_s"] + m["load_s"] + m["warmup_s"])
        assert first["synthetic"] and cold["synthetic"]


def test_verdict_compares_serving_and_budgets_latency(served: dict) -> None:
    verdict = served["verdict"]
    pairs = {c["server_run"]: c for c in verdict["serving"]}
    assert set(pairs) == {"cpu-fp32-eager-server", "cpu-fp32-eager"}
    assert all(c["core_run"] == "cpu-fp32-eager-core" and "opus_decode" in c["extras_ms"] for c in pairs.values())
    assert pairs["cpu-fp32-eager-server"]["duplicate_mimi_ms"] > 0 and pairs["cpu-fp32-eager"]["duplicate_mimi_ms"] == 0
    assert any("dropping `other_mimi`" in line for line in verdict["advice"])
    budgets = {b["run"]: b for b in verdict["latency"]}
    for name, budget in budgets.items():
        terms = {t["name"]: t["ms"] for t in budget["terms"]}
        assert budget["total_ms"] == pytest.approx(sum(terms.values()))
        assert terms["network round trip"] == 40 and terms["frame accumulation"] == 80
        assert terms["PersonaPlex input lag"] == (80 if name.endswith("-server") else 0)


def test_persona_off_and_a_missing_interpreter(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: s\npreset: personaplex-tiny\npersona: off\nruns:\n"
                                     "  - device: cpu\n    python: envs/nowhere/bin/python\n")
    done = run_cli("run", str(tmp_path / "s.yaml"))
    assert done.returncode == 2 and "s.yaml:6: runs[0].python: no executable interpreter" in done.stderr

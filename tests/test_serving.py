"""PersonaPlex as it is served, on the CPU for real: the server's frame against moshi's core, the persona prefill
before the call's first frame, time to first audio, and the latency budget (personaplex-tiny, real workers)."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest

from harness.worker.pipeline.server_frame import SERVER_STAGES
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
  serving: [model, personaplex-server]
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
    core, server = runs["cpu-fp32-eager"], runs["cpu-fp32-eager-server"]
    assert core["status"] == server["status"] == "ok"
    assert set(core["metrics"]["stage_p50_ms"]) == {"encode", "lm_step", "decode"}
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
        parts = m["load_s"] + m["warmup_s"] + p["seconds"] + m["first_frame_ms"] / 1e3
        assert m["time_to_first_audio_s"] == pytest.approx(parts)


def test_verdict_compares_serving_and_budgets_latency(served: dict) -> None:
    verdict = served["verdict"]
    [pair] = verdict["serving"]
    assert pair["core_run"] == "cpu-fp32-eager" and pair["server_run"] == "cpu-fp32-eager-server"
    assert pair["duplicate_mimi_ms"] > 0 and "opus_decode" in pair["extras_ms"]
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

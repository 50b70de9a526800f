"""NVIDIA's fork's REAL server (`python -m moshi.server` of moshi-personaplex 0.1.0), persona prefill included, started
by `harness serve --server personaplex` from its own environment, measured by one caller.

The environment is built once per machine under ~/.cache/harness-tests from ../shared/third_party/personaplex-moshi
(torch 2.13.0 from this machine's wheel, the fork --no-deps, its server's sphn<0.2 / aiohttp<3.11 and pyloudnorm
from the package index); the test skips, with the reason, where that folder is absent or the build fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.endpoint.load import CallSettings, closed_loop
from harness.endpoint.protocol import chat_url
from harness.records.endpoint import Slo
from tests.conftest import REPO
from tests.test_endpoint import start_serve, stop_serve

pytestmark = pytest.mark.slow

FORK = REPO.parent / "shared" / "third_party" / "personaplex-moshi"
if not FORK.exists():
    FORK = Path("/work/shared/third_party/personaplex-moshi")
ENV = Path.home() / ".cache" / "harness-tests" / "env-personaplex-fork-torch2.13.0"
PACKAGES = ["torch==2.13.0", "numpy", "safetensors", "sentencepiece", "einops", "huggingface_hub",
            "sphn>=0.1.4,<0.2", "aiohttp>=3.10.5,<3.11", "pyloudnorm"]


def _build() -> str:
    """'' when the environment is ready, else why it could not be built."""
    if (ENV / ".ready").exists():
        return ""
    done = subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENV)], capture_output=True, text=True)
    if done.returncode:
        return f"python -m venv failed: {done.stderr[-500:]}"
    pip = [str(ENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run([*pip, *PACKAGES], capture_output=True, text=True, timeout=3600)
    if done.returncode:
        return f"pip could not install the fork's dependencies (offline?): {done.stderr.strip()[-500:]}"
    with tempfile.TemporaryDirectory() as tmp:  # the shared folder is read-only; pip builds in a copy
        source = Path(tmp) / "personaplex-moshi"
        shutil.copytree(FORK, source)
        for path in [source, *source.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        done = subprocess.run([*pip, "--no-deps", str(source)], capture_output=True, text=True, timeout=1800)
    if done.returncode:
        return f"pip could not install the fork: {done.stderr.strip()[-500:]}"
    (ENV / ".ready").write_text("ok\n")
    return ""


@pytest.fixture(scope="module")
def fork_python() -> Path:
    if not FORK.exists():
        pytest.skip(f"NVIDIA's fork is not on this machine ({FORK} is absent)")
    problem = _build()
    if problem:
        pytest.skip(problem)
    return ENV / "bin" / "python"


def test_personaplex_server_prefills_before_its_handshake(fork_python: Path) -> None:
    served = start_serve("--preset", "personaplex-tiny", "--server", "personaplex", "--python", str(fork_python),
                         "--voice-frames", "6")  # 480 ms: the fork normalises loudness over 400 ms blocks
    try:
        assert "voice_prompt=voice.wav" in served.url  # harness serve tells callers the query the fork needs
        url = chat_url(served.url, "voice.wav", "Hi.")  # a short persona keeps the prefill short here
        run = closed_loop([url], 1, CallSettings(call_seconds=0.24, drain_s=300.0, handshake_timeout_s=900.0), Slo())
        caller = run.callers[0]
        assert caller.status == "ok", caller.reason
        assert caller.raw.audio_s and caller.sent_frames == 3
        assert caller.lock_wait_ms == 0.0 and caller.prefill_ms == caller.handshake_ms > 0.0
        log = served.log.read_text()
        # the handshake came after the fork's own persona prefill (its log says so, in this order)
        assert log.index("done with system prompts") < log.index("sent handshake bytes")
        assert "seed" not in url
    finally:
        assert stop_serve(served) == []

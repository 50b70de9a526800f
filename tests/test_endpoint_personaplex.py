"""NVIDIA's fork's REAL server (`python -m moshi.server` of moshi-personaplex 0.1.0), persona prefill included, started
by `harness serve --server personaplex` from its own environment, measured by one caller.

The environment is built once per machine by tests/fork_env.py from ../shared/third_party/personaplex-moshi (torch
2.13.0 from this machine's wheel, the fork --no-deps, its server's sphn<0.2 / aiohttp<3.11 and pyloudnorm from the
package index); the test skips, with the reason, where that folder is absent or the build fails.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from harness.endpoint.load import CallSettings, closed_loop
from harness.endpoint.protocol import DEFAULT_TEXT_PROMPT, chat_url
from harness.records.endpoint import Slo
from tests import fork_env
from tests.test_endpoint import start_serve, stop_serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fork_python() -> Path:
    """The fork's environment, built once per machine by tests/fork_env.py (shared with test_nvidia_fork)."""
    try:
        return fork_env.ensure()
    except fork_env.ForkUnavailable as exc:
        pytest.skip(str(exc))


def test_personaplex_server_prefills_before_its_handshake(fork_python: Path) -> None:
    served = start_serve("--preset", "personaplex-tiny", "--server", "personaplex", "--python", str(fork_python),
                         "--voice-frames", "6")  # 480 ms: the fork normalises loudness over 400 ms blocks
    try:
        assert "voice_prompt=voice.wav" in served.url  # harness serve tells callers the query the fork needs
        # ... with a persona text: the fork fails a call whose text prompt is empty, before its handshake
        assert f"text_prompt={quote(DEFAULT_TEXT_PROMPT)}" in served.url and DEFAULT_TEXT_PROMPT
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

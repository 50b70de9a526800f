"""The WebSocket protocol of moshi's and PersonaPlex's servers (kyutai-labs/moshi `protocol.md`, both `server.py`).

Each binary message starts with a kind byte: 0 handshake (one byte from the Python servers, nine from Kyutai's Rust
backend: version and model), 1 audio (a continuous Ogg/Opus stream at 24 kHz mono, in pages), 2 text (UTF-8),
3 control, 4 metadata (JSON), 5 error, 6 ping; unknown kinds are ignored. Route `/api/chat`. PersonaPlex's server
reads the query keys `voice_prompt` (a file name in its voice folder) and `text_prompt` (may be empty) and the call
dies without either; it must never get `seed` (its handler reads `request["seed"]`, the wrong object, and dies).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Optional
from urllib.parse import urlencode, urlsplit, urlunsplit

ROUTE = "/api/chat"
SAMPLE_RATE = 24000
FRAME_SAMPLES = 1920  # 80 ms


class Kind(IntEnum):
    HANDSHAKE = 0
    AUDIO = 1
    TEXT = 2
    CONTROL = 3
    METADATA = 4
    ERROR = 5
    PING = 6


class UrlError(ValueError):
    """A URL the load generator cannot call: the message says why, in one line."""


# NVIDIA's server fails a call whose text prompt is empty: it keeps None for the persona's tokens and its prefill
# iterates them (TypeError before the handshake; moshi/server.py and models/lm.py of the fork). A caller that names no
# persona text sends this one, so that a default call is a call.
DEFAULT_TEXT_PROMPT = "You are a helpful assistant. Answer briefly."


def chat_url(url: str, voice_prompt: Optional[str], text_prompt: Optional[str]) -> str:
    """ws:// or wss:// URL of the chat route with the persona query (http(s) accepted and turned into ws(s))."""
    parts = urlsplit(url.strip())
    scheme = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise UrlError(f"{url!r}: the URL must start with ws:// or wss:// (got scheme {parts.scheme or 'none'!r})")
    if not parts.hostname:
        raise UrlError(f"{url!r}: no host in the URL")
    try:
        _ = parts.port  # reading it validates it
    except ValueError:
        raise UrlError(f"{url!r}: the port is not a number between 0 and 65535") from None
    path = parts.path if parts.path not in ("", "/") else ROUTE
    query = [(k, v) for k, v in _query_pairs(parts.query) if k not in ("voice_prompt", "text_prompt", "seed")]
    if voice_prompt is not None:
        query.append(("voice_prompt", voice_prompt))
    if text_prompt is not None:
        query.append(("text_prompt", text_prompt))
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True)


def split_message(message: bytes) -> tuple[int, bytes]:
    """(kind, payload) of one binary message; an empty message has kind -1."""
    if not message:
        return -1, b""
    return message[0], message[1:]


def audio_message(opus_page: bytes) -> bytes:
    return bytes([Kind.AUDIO]) + opus_page


def kind_name(kind: int) -> str:
    try:
        return Kind(kind).name.lower()
    except ValueError:
        return f"unknown-{kind}"

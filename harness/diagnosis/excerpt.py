"""A log of any size read in bounded memory: its head and its tail, with the lines between counted, not kept.

What ends a run is at the end of its log (the final exception), what it ran on is near the start (versions, the
GPU). A 200 MB log read whole took 44 s and 4.2 GB; this reads at most HEAD + TAIL bytes and says what it left out,
and the line numbers it reports are the file's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Optional, Union

HEAD_BYTES = 1 * 2**20
TAIL_BYTES = 7 * 2**20
_CHUNK = 2**20


@dataclass(frozen=True)
class Excerpt:
    text: str
    skipped_lines: int = 0  # lines left out between head and tail
    skipped_bytes: int = 0
    head_lines: int = 0  # lines of the head part (the marker line follows them)
    head_bytes: int = 0
    tail_bytes: int = 0

    @property
    def note(self) -> str:
        if not self.skipped_bytes:
            return ""
        return (f"a large log: read its first {self.head_bytes / 2**20:g} MiB and last {self.tail_bytes / 2**20:g} "
                f"MiB; {self.skipped_bytes / 2**20:.1f} MiB ({self.skipped_lines} lines) between them were not read")

    def file_line(self, number: int) -> int:
        """The file's line number of line `number` (1-based) of `text`."""
        if not self.skipped_bytes or number <= self.head_lines:
            return number
        return number + self.skipped_lines - 1  # the marker line stands for the skipped ones


def _read(stream: IO, size: int) -> bytes:
    chunk: Union[str, bytes] = stream.read(size)
    return chunk.encode("utf-8", "replace") if isinstance(chunk, str) else chunk  # a text stream (tests' stdin)


def read_excerpt(stream: IO, head_bytes: Optional[int] = None, tail_bytes: Optional[int] = None) -> Excerpt:
    head_bytes = HEAD_BYTES if head_bytes is None else head_bytes
    tail_bytes = TAIL_BYTES if tail_bytes is None else tail_bytes
    head = _read(stream, head_bytes)
    # cut the head at a line end so that the marker starts its own line
    cut = head.rfind(b"\n") + 1 if len(head) == head_bytes and b"\n" in head else len(head)
    carry, head = head[cut:], head[:cut]
    tail = bytearray(carry)
    skipped_bytes = skipped_lines = 0
    while True:
        chunk = _read(stream, _CHUNK)
        if not chunk:
            break
        tail += chunk
        if len(tail) > tail_bytes:
            drop = len(tail) - tail_bytes
            skipped_lines += tail.count(b"\n", 0, drop)
            skipped_bytes += drop
            del tail[:drop]
    if skipped_bytes:
        first_end = tail.find(b"\n")  # the tail's first line is partial: count it with the skipped ones
        if first_end >= 0:
            skipped_bytes += first_end + 1
            skipped_lines += 1
            del tail[:first_end + 1]
    head_text = head.decode("utf-8", errors="replace")
    tail_text = bytes(tail).decode("utf-8", errors="replace")
    if not skipped_bytes:
        return Excerpt(head_text + tail_text)
    marker = f"[harness: {skipped_lines} lines ({skipped_bytes} bytes) of this log were not read]\n"
    return Excerpt(head_text + marker + tail_text, skipped_lines, skipped_bytes, head_text.count("\n"), head_bytes,
                   tail_bytes)

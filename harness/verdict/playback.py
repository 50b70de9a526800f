"""Real-time playback simulated from measured step times: a microphone and a speaker at 80 ms per frame.

Frame i's audio is complete at (i + 1) x 80 ms; the model processes frames in order, each when its
audio is there and the previous frame is done. The speaker starts when the first output frame is
ready plus the jitter buffer, then wants one frame every 80 ms. A frame not ready when wanted is an
underrun: the speaker plays silence and resumes when it arrives (the delay stays).
"""

from __future__ import annotations

from typing import Sequence

from harness.records.verdict import BufferOutcome, Playback

# Jitter buffers tried, in frames of audio (0, half a frame, one, two, four): with an 80 ms budget 0-320 ms.
BUFFER_FRAMES = (0.0, 0.5, 1.0, 2.0, 4.0)


def buffers_for(frame_ms: float) -> tuple[float, ...]:
    return tuple(f * frame_ms for f in BUFFER_FRAMES)


def finish_times(step_ms: Sequence[float], frame_ms: float) -> list[float]:
    finish: list[float] = []
    previous = 0.0
    for i, step in enumerate(step_ms):
        start = max((i + 1) * frame_ms, previous)
        previous = start + step
        finish.append(previous)
    return finish


def simulate(step_ms: Sequence[float], frame_ms: float, buffer_ms: float) -> BufferOutcome:
    finish = finish_times(step_ms, frame_ms)
    underruns, silence = 0, 0.0
    play = finish[0] + buffer_ms if finish else 0.0
    for i, ready in enumerate(finish):
        if i:
            play += frame_ms
        if ready > play:
            underruns += 1
            silence += ready - play
            play = ready
    return BufferOutcome(buffer_ms=buffer_ms, underruns=underruns, silence_ms=silence)


def playback(step_ms: Sequence[float], frame_ms: float, buffers: Sequence[float] | None = None) -> Playback:
    outcomes = [simulate(step_ms, frame_ms, b) for b in (buffers or buffers_for(frame_ms))]
    clean = next((o.buffer_ms for o in outcomes if o.underruns == 0), None)
    first = finish_times(step_ms[:1], frame_ms)[0] - frame_ms if step_ms else 0.0
    return Playback(frame_ms=frame_ms, outcomes=outcomes, smallest_clean_buffer_ms=clean,
                    first_frame_latency_ms=first)

"""The harness's measured LM step against a bare `LMGen.step` loop, in the same process and run.

Two identical copies of the model stream side by side, frame by frame: one driven by the harness's
frame loop (stage clock, PersonaPlex's user-stream forcing), the other by a bare loop that times
moshi's stock `LMGen.step` with two perf_counter calls and nothing else. Both do the same work per
frame (Mimi encode -> step -> Mimi decode). Alternating single frames, in alternating order, makes the
drift of a shared machine hit both alike; the overhead is the ratio of the two medians.
"""

from __future__ import annotations

import copy
import statistics
import time

import pytest

torch = pytest.importorskip("torch")

from moshi.models.lm import LMGen  # noqa: E402

from harness.worker.engine.architecture import MIMI_CODEBOOKS  # noqa: E402
from harness.worker.pipeline.audio import speech_like  # noqa: E402
from harness.worker.pipeline.frame_loop import FrameLoop  # noqa: E402
from harness.worker.pipeline.lmgen import FullDuplexLMGen  # noqa: E402
from tests.helpers import synthetic_lm, synthetic_mimi  # noqa: E402

FRAMES = 300
WARMUP = 10
MAX_OVERHEAD = 0.02


def _models(preset: str):
    torch.set_num_threads(2)
    lm, mimi = synthetic_lm(preset), synthetic_mimi()
    return lm, mimi


class BareLoop:
    """What one would write by hand: encode, time LMGen.step, decode."""

    def __init__(self, lm, mimi) -> None:  # noqa: ANN001
        self.gen, self.mimi = LMGen(lm), mimi
        self.audio = speech_like(24000, 1, 0)

    def __enter__(self) -> "BareLoop":
        self._grad = torch.no_grad()
        self._grad.__enter__()
        self.mimi.streaming_forever(1)
        self.gen.streaming_forever(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._grad.__exit__(*exc)

    def frame(self, index: int) -> float:
        i = index % 120
        codes = self.mimi.encode(self.audio[:, :, i * 1920:(i + 1) * 1920])
        start = time.perf_counter()
        tokens = self.gen.step(codes)
        elapsed = time.perf_counter() - start
        if tokens is not None:
            self.mimi.decode(tokens[:, 1:1 + MIMI_CODEBOOKS])
        return elapsed * 1e3


@pytest.mark.parametrize("preset", ["personaplex-tiny", "personaplex-small"])
def test_harness_lm_step_overhead_is_within_two_percent(benchmark, preset: str) -> None:
    lm, mimi = _models(preset)
    bare_loop = BareLoop(copy.deepcopy(lm), copy.deepcopy(mimi))
    harness_loop = FrameLoop(mimi, FullDuplexLMGen(lm), torch.device("cpu"), batch_size=1, seed=0,
                             warmup_frames=WARMUP)
    bare: list[float] = []
    harness: list[float] = []

    def run() -> None:
        with bare_loop, harness_loop:
            for index in range(WARMUP + FRAMES):
                if index % 2:
                    h, b = harness_loop.frame(index)["lm_step"], bare_loop.frame(index)
                else:
                    b, h = bare_loop.frame(index), harness_loop.frame(index)["lm_step"]
                if index >= WARMUP:
                    bare.append(b)
                    harness.append(h)

    benchmark.pedantic(run, rounds=1, iterations=1)
    bare_p50, harness_p50 = statistics.median(bare), statistics.median(harness)
    overhead = harness_p50 / bare_p50 - 1
    benchmark.extra_info.update(bare_lm_step_p50_ms=bare_p50, harness_lm_step_p50_ms=harness_p50,
                                overhead=overhead, frames=len(bare))
    print(f"\n{preset}: bare LMGen.step p50 {bare_p50:.3f} ms, harness lm_step p50 {harness_p50:.3f} ms, "
          f"overhead {overhead:+.2%} over {len(bare)} alternating frames")
    assert overhead <= MAX_OVERHEAD

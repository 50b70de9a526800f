"""Nightly benchmark: the full-duplex frame loop of personaplex-tiny on the CPU (pytest-benchmark).

Saved baselines live in benchmarks/pytest-benchmark/; the nightly job compares against them with
--benchmark-compare-fail. Rounds of 20 frames, so one round is ~2-3 s on 2 cores.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from harness.worker.pipeline.frame_loop import run_frame_loop  # noqa: E402
from harness.worker.pipeline.lmgen import FullDuplexLMGen  # noqa: E402
from tests.helpers import synthetic_lm, synthetic_mimi  # noqa: E402


@pytest.fixture(scope="module")
def tiny():  # noqa: ANN201
    torch.set_num_threads(2)
    lm, mimi = synthetic_lm("personaplex-tiny"), synthetic_mimi()
    return lm, mimi


def test_frame_loop_personaplex_tiny_cpu(benchmark, tiny) -> None:  # noqa: ANN001
    lm, mimi = tiny

    def twenty_frames():  # noqa: ANN202
        return run_frame_loop(mimi, FullDuplexLMGen(lm), torch.device("cpu"), frames=20, warmup_frames=2,
                              batch_size=1, seed=0)

    result = benchmark.pedantic(twenty_frames, rounds=5, iterations=1, warmup_rounds=1)
    assert len(result.total_ms) == 20
    benchmark.extra_info["step_p50_ms"] = sorted(result.total_ms)[10]

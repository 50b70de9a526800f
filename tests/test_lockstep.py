"""A session joining a running lockstep batch: per-slot reset and warm-up, in-process on personaplex-tiny (CPU)."""

from __future__ import annotations

from functools import partial

import pytest

torch = pytest.importorskip("torch")

from harness.worker.pipeline.frame_loop import run_frame_loop  # noqa: E402
from harness.worker.pipeline.lmgen import FullDuplexLMGen  # noqa: E402
from harness.worker.pipeline.lockstep import JoiningLoop, warmup_prefill  # noqa: E402
from tests.helpers import synthetic_lm, synthetic_mimi  # noqa: E402


@pytest.fixture(scope="module")
def models():  # noqa: ANN201 - built once: the two tests only need real modules, not fresh weights
    return synthetic_mimi(), synthetic_lm()


def test_the_last_slot_rejoins_while_the_others_keep_streaming(models) -> None:  # noqa: ANN001
    mimi, lm = models
    gen = FullDuplexLMGen(lm)
    loops: list[JoiningLoop] = []
    offsets: list[list[int]] = []

    def make(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        loops.append(JoiningLoop(*args, join_index=4, warmup_steps=2, **kwargs))
        return loops[-1]

    def after_frame(index: int, *_: object) -> None:
        offsets.append(gen._streaming_state.offsets.tolist())  # LMGen's per-slot step counter

    result = run_frame_loop(mimi, gen, torch.device("cpu"), frames=4, warmup_frames=2, batch_size=3,
                            seed=0, on_frame=after_frame, make_loop=make)
    join = loops[0].join
    assert join.slot == 2 and join.warmup_steps == 2 and len(join.tick_ms) == 1
    # Before the join every slot has taken every step; at frame 4 slot 2 restarts from zero, takes its 2 warm-up
    # steps alone (exec mask) and then the tick's own step, while slots 0 and 1 go on counting.
    assert offsets[3] == [4, 4, 4]
    assert offsets[4] == [5, 5, 3] and offsets[5] == [6, 6, 4]
    # The admitting tick carries the join: its total includes the reset and the warm-up steps.
    assert result.total_ms[2] == pytest.approx(join.tick_ms[0])
    assert join.tick_ms[0] >= join.reset_ms + join.prefill_ms


def test_a_replacement_prefill_is_called_for_the_joining_slot(models) -> None:  # noqa: ANN001
    mimi, lm = models
    calls = []

    def prefill(loop: JoiningLoop, slot: int, steps: int) -> None:  # what a persona prefill would plug in
        calls.append((loop.batch_size, slot, steps))
        warmup_prefill(loop, slot, steps)

    make = partial(JoiningLoop, join_index=2, warmup_steps=3, prefill=prefill)
    gen = FullDuplexLMGen(lm)
    run_frame_loop(mimi, gen, torch.device("cpu"), frames=1, warmup_frames=2, batch_size=2, seed=0,
                   make_loop=make)
    assert calls == [(2, 1, 3)]
    with pytest.raises(ValueError, match="at least 2 warm-up steps"):
        run_frame_loop(mimi, gen, torch.device("cpu"), frames=1, warmup_frames=2, batch_size=2, seed=0,
                       make_loop=partial(JoiningLoop, join_index=2, warmup_steps=1))

"""A session joining a running lockstep batch: per-slot reset and warm-up, in-process on personaplex-tiny (CPU)."""

from __future__ import annotations

from functools import partial

import pytest

torch = pytest.importorskip("torch")

from harness.contract.wire import PersonaJob  # noqa: E402
from harness.worker.pipeline.frame_loop import run_frame_loop  # noqa: E402
from harness.worker.pipeline.lmgen import FullDuplexLMGen  # noqa: E402
from harness.worker.pipeline.lockstep import JoiningLoop, persona_prefill, persona_steps, warmup_prefill  # noqa: E402
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
    # The admitting tick is recorded as itself; the join (reset + warm-up) is the others' stall, kept apart.
    assert result.total_ms[2] == pytest.approx(join.tick_ms[0])
    assert join.persona is None and join.reset_ms > 0 and join.prefill_ms > 0


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


def test_the_joining_caller_runs_the_persona_prefill_alone(models) -> None:  # noqa: ANN001
    """The join steps the server's persona prompt (voice, silence, text, silence) for its slot only: the other
    slots neither step nor have the tokens they last wrote rewritten by the prompt's forced tokens."""
    mimi, lm = models
    persona = PersonaJob(voice_prompt_frames=2, silence_frames=1, text_prompt_tokens=3, server_wait_ms=1.0)
    steps = persona_steps(persona)
    assert steps == 7
    gen = FullDuplexLMGen(lm)
    real = persona_prefill(persona, 0)
    seen: dict[str, object] = {}

    def last_written() -> list:  # noqa: ANN202 - text + agent rows each slot wrote at its current position
        state = gen._streaming_state
        position = state.offsets % state.cache.shape[2]
        return [state.cache[b, :9, int(position[b])].clone() for b in range(state.cache.shape[0])]

    def prefill(loop, slot, n):  # noqa: ANN001, ANN202
        seen["before"], seen["offsets_before"] = last_written(), gen._streaming_state.offsets.tolist()
        samples = real(loop, slot, n)
        seen["after"], seen["offsets_after"] = last_written(), gen._streaming_state.offsets.tolist()
        return samples

    loops: list[JoiningLoop] = []

    def make(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        loops.append(JoiningLoop(*args, join_index=3, warmup_steps=steps, prefill=prefill, **kwargs))
        return loops[-1]

    run_frame_loop(mimi, gen, torch.device("cpu"), frames=3, warmup_frames=2, batch_size=3, seed=0, make_loop=make)
    join = loops[0].join
    assert join.persona is not None and join.warmup_steps == steps == len(join.persona.step_ms)
    assert (join.persona.voice_steps, join.persona.silence_steps, join.persona.text_steps) == (2, 2, 3)
    assert join.persona.wait_s > 0  # the server's wait before each prompt step
    # Slot 2 restarted (reset) and took the 7 prompt steps alone; slots 0 and 1 did not step.
    assert seen["offsets_before"] == [3, 3, 0] and seen["offsets_after"] == [3, 3, steps]
    for b in (0, 1):
        assert torch.equal(seen["before"][b], seen["after"][b])


def test_an_interleaved_join_steps_the_prompt_inside_the_batchs_ticks(models) -> None:  # noqa: ANN001
    """As a batching server admits a caller: its prompt is one step per tick inside the batch's ticks (its text
    and agent tokens forced, the sine as its user tokens), while the other slots stream every tick; nobody stalls
    and the run keeps its live ticks after the join."""
    from harness.worker.pipeline.prefill import _text_tokens

    mimi, lm = models
    persona = PersonaJob(voice_prompt_frames=2, silence_frames=1, text_prompt_tokens=3, server_wait_ms=10.0)
    gen = FullDuplexLMGen(lm)
    loops: list[JoiningLoop] = []
    seen: list[tuple[list[int], int]] = []  # per frame: offsets, and the text token the joiner's slot last wrote

    def make(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        loops.append(JoiningLoop(*args, join_index=3, warmup_steps=7, mode="interleaved", persona=persona,
                                 **kwargs))
        return loops[-1]

    def after_frame(index: int, *_: object) -> None:
        state = gen._streaming_state
        seen.append((state.offsets.tolist(), int(state.cache[2, 0, int(state.offsets[2]) % state.cache.shape[2]])))

    result = run_frame_loop(mimi, gen, torch.device("cpu"), frames=2 + 7, warmup_frames=2, batch_size=3, seed=0,
                            on_frame=after_frame, make_loop=make)
    join = loops[0].join
    assert join.mode == "interleaved" and join.prompt_ticks == 7 == len(join.tick_ms) and join.warmup_steps == 7
    # Every slot stepped once per tick: the others kept counting, the joiner restarted at the join tick.
    assert seen[2][0] == [3, 3, 3] and seen[3][0] == [4, 4, 1] and seen[9][0] == [10, 10, 7] and seen[10][0][2] == 8
    # Its prompt's own tokens: padding during voice and silence, the text prompt's tokens during the text steps.
    pad = int(lm.text_padding_token_id)
    text, _ = _text_tokens(persona, lm.text_card, 0)
    assert [token for _, token in seen[3:10]] == [pad, pad, pad, *text, pad]
    # Measured ticks all (no stall kept apart), the prompt's ticks among them; the joiner's wait recorded.
    assert len(result.total_ms) == 9 and result.total_ms[1:8] == pytest.approx(join.tick_ms)
    assert join.prefill_ms == 0.0 and join.handshake_ms > 0 and join.persona is not None
    assert (join.persona.voice_steps, join.persona.silence_steps, join.persona.text_steps) == (2, 2, 3)
    assert join.persona.wait_s == 0.0 and loops[0].lm_gen is gen  # the stand-in is gone once the prompt is done

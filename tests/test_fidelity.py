"""Output fidelity (harness.worker.fidelity): the trace loop is LMGen's, the reference against itself reads exactly
0, a changed model reads more than 0, and the verdict's rule judges both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.contract.wire import WorkerRun  # noqa: E402
from harness.worker.engine.build import build_models  # noqa: E402
from harness.worker.fidelity.compare import compare, greedy_summary  # noqa: E402
from harness.worker.fidelity.measure import user_tokens  # noqa: E402
from harness.worker.fidelity.trace import trace  # noqa: E402
from harness.worker.pipeline.audio import input_audio  # noqa: E402
from harness.worker.pipeline.lmgen import FullDuplexLMGen  # noqa: E402

FRAMES = 8


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    torch.set_num_threads(1)  # tiny ops: a second thread only waits for the first on a busy machine
    built = build_models(WorkerRun(name="ref", device="cpu", dtype="bfloat16"), "personaplex-tiny", None, 0,
                         tmp_path_factory.mktemp("scratch"))
    audio = input_audio(None, int(built.mimi.sample_rate), 1, 0)
    return built, user_tokens(built.mimi, audio, FRAMES, built.device)


def test_trace_free_run_is_lmgens_greedy_step(reference) -> None:  # noqa: ANN001
    """The loop rebuilds LMGen's token cache itself (delays, initial tokens, the user's rows forced): step for step
    it must choose what moshi's own LMGen chooses when it decodes greedily."""
    built, user = reference
    own = trace(built.lm, user)
    gen = FullDuplexLMGen(built.lm, use_sampling=False)
    chosen = []
    with torch.no_grad(), gen.streaming(1):
        for frame in range(FRAMES):
            gen.step(user[frame][None, :, None])
            state = gen._streaming_state
            chosen.append(state.cache[0, :, state.offsets[0] % state.cache.shape[2]].clone())
    # text and the agent's codebooks (the user's rows are the user's tokens, forced over what the depformer said)
    assert torch.equal(torch.stack(chosen)[:, :9], own.tokens[:, :9])


def test_reference_against_itself_reads_exactly_zero(reference, tmp_path: Path) -> None:
    built, user = reference
    again = build_models(WorkerRun(name="again", device="cpu", dtype="bfloat16"), "personaplex-tiny", None, 0,
                         tmp_path)
    ref = trace(built.lm, user)
    forced, free = trace(again.lm, user, ref.tokens), trace(again.lm, user)
    streams = compare(ref, forced, free)
    assert [s.stream for s in streams] == ["text", "semantic", "acoustic"]
    for s in streams:
        assert s.kl_mean == 0.0 and s.kl_max == 0.0 and s.kl_p99 == 0.0, s
        assert s.top1_agreement == 1.0 and s.greedy_agreement == 1.0, s
        assert len(s.kl_by_frame) == FRAMES
    assert greedy_summary(ref, free) == (1.0, None)


def test_a_changed_model_reads_more_than_zero(reference, tmp_path: Path) -> None:
    """Weights rounded to 8 bits (w8a16): the same tokens in, other logits out; KL > 0 and finite."""
    built, user = reference
    changed = build_models(WorkerRun(name="w8", device="cpu", dtype="bfloat16", quantize="w8a16"),
                           "personaplex-tiny", None, 0, tmp_path)
    ref = trace(built.lm, user)
    streams = compare(ref, trace(changed.lm, user, ref.tokens), trace(changed.lm, user))
    assert all(s.kl_mean > 0 and s.kl_max >= s.kl_p99 >= 0 for s in streams), streams
    assert all(0.0 <= s.top1_agreement <= 1.0 for s in streams)


def test_replay_reads_what_two_copies_side_by_side_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where two copies do not fit (a 7B on one GPU), the candidate is freed, the reference recorded, the candidate
    rebuilt: the same figures as with both in memory."""
    from harness.contract.wire import BenchJob
    from harness.worker.fidelity import measure

    torch.set_num_threads(1)
    run = WorkerRun(name="w8", device="cpu", dtype="bfloat16", quantize="w8a16")
    job = BenchJob(run=run, preset="personaplex-tiny", frames=1, warmup_frames=2, batch_size=1, seed=0,
                   scratch_dir=str(tmp_path), reply_path=str(tmp_path / "reply.json"), fidelity_frames=4)

    def build():  # noqa: ANN202
        return build_models(run, "personaplex-tiny", None, 0, tmp_path)

    beside = measure.measure_fidelity(job, measure.Candidate(built=build(), rebuild=build), "synthetic (seed 0)")
    rebuilt = []
    monkeypatch.setattr(measure, "_fits_beside", lambda lm, device: False)
    replayed = measure.measure_fidelity(
        job, measure.Candidate(built=build(), rebuild=lambda: rebuilt.append(1) or build()), "synthetic (seed 0)")
    assert rebuilt == [1] and "replayed" in replayed.method and "both models in memory" in beside.method
    assert replayed.streams == beside.streams and beside.synthetic and not beside.self_test
    assert beside.frames == 4 and all(s.kl_mean > 0 for s in beside.streams)

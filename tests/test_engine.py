"""The worker's engine and frame loop, in-process on real moshi models at small size (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from moshi.models.lm import LMGen  # noqa: E402

from harness.records.config import DType, Offload, Quantize, RunConfig  # noqa: E402
from harness.records.scenario import RunDefaults  # noqa: E402
from harness.worker.engine.architecture import MIMI_CODEBOOKS  # noqa: E402
from harness.worker.engine.build import build_models  # noqa: E402
from harness.worker.engine.int8 import Int8ScaleDtypeError, check_int8_scales, quantize_block  # noqa: E402
from harness.worker.engine.offload import offload_layers  # noqa: E402
from harness.worker.engine.synthetic import lm_blocks, meta_tensor_names  # noqa: E402
from harness.worker.pipeline.frame_loop import run_frame_loop  # noqa: E402
from harness.worker.pipeline.lmgen import FullDuplexLMGen  # noqa: E402
from tests.helpers import synthetic_lm, synthetic_mimi  # noqa: E402

_tiny_lm = synthetic_lm


def _config(**changes) -> RunConfig:
    return RunConfig(name="t", **{**RunDefaults().model_dump(), "device": "cpu", **changes})


def test_synthetic_weights_are_deterministic_finite_and_complete() -> None:
    a, b = _tiny_lm(seed=3), _tiny_lm(seed=3)
    assert meta_tensor_names(a) == []
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
        assert torch.isfinite(pa).all(), name
    norms = [p for n, p in a.named_parameters() if n.endswith("alpha")]
    assert norms and all(torch.all(p == 1) for p in norms)
    linear = a.transformer.layers[0].gating.linear_in.weight
    assert abs(float(linear.std()) - linear.shape[1] ** -0.5) < 0.2 * linear.shape[1] ** -0.5
    assert not torch.equal(linear[0], linear[1]), "rows must not repeat"


def test_frame_loop_runs_real_mimi_and_lm_with_finite_audio() -> None:
    lm = _tiny_lm()
    mimi = synthetic_mimi()
    calls = []
    result = run_frame_loop(mimi, FullDuplexLMGen(lm), torch.device("cpu"), frames=3, warmup_frames=2,
                            batch_size=1, seed=0, on_frame=lambda *args: calls.append(args))
    assert len(result.total_ms) == 3 and all(v > 0 for v in result.total_ms)
    assert set(result.stage_ms) == {"encode", "lm_step", "decode"}
    for i, total in enumerate(result.total_ms):
        stages = sum(result.stage_ms[s][i] for s in result.stage_ms)
        assert stages == pytest.approx(total, rel=1e-6)
    assert [c[2] for c in calls] == [True, True, False, False, False]
    assert result.first_step_s > 0 and result.warmup_s >= result.first_step_s


def _main_transformer_inputs(lm, gen: LMGen, frames: list) -> list:
    seen = []
    original = lm.forward_text

    def spy(sequence, *rest):
        seen.append(sequence.clone())
        return original(sequence, *rest)

    lm.forward_text = spy
    with torch.no_grad(), gen.streaming(1):
        for codes in frames:
            gen.step(codes)
    return seen


def test_personaplex_user_stream_reaches_the_transformer_like_moshi_does() -> None:
    """dep_q=16: our forcing must feed the user's tokens exactly where moshi's LMGen puts them for dep_q=8."""
    frames = [torch.randint(0, 2048, (1, MIMI_CODEBOOKS, 1)) for _ in range(5)]
    torch.manual_seed(0)
    plex = _main_transformer_inputs(lm := _tiny_lm("personaplex-tiny"), FullDuplexLMGen(lm), frames)
    torch.manual_seed(0)
    moshi = _main_transformer_inputs(lm8 := _tiny_lm("moshi-tiny"), LMGen(lm8), frames)
    assert len(plex) == len(moshi) == 5
    for step, (a, b) in enumerate(zip(plex, moshi)):
        assert torch.equal(a[:, 9:], b[:, 9:]), f"user rows differ at step {step}"
    # and they really are the microphone's tokens: row 9 (delay 0) at step 3 is frame 3's first codebook
    assert int(plex[3][0, 9, 0]) == int(frames[3][0, 0, 0])
    assert int(plex[3][0, 10, 0]) == int(frames[2][0, 1, 0])  # delay 1


def test_int8_quantises_every_linear_and_catches_cast_scales() -> None:
    lm = _tiny_lm(dtype=torch.bfloat16)
    for name, block in list(lm_blocks(lm)):
        quantize_block(lm, name, block)
    assert not [n for n, m in lm.named_modules() if isinstance(m, torch.nn.Linear)]
    check_int8_scales(lm)
    lm.to(torch.bfloat16)  # what the seeds' code did after loading a q8 model
    with pytest.raises(Int8ScaleDtypeError, match="Expected `weight_scb` to have type float, but got bfloat16"):
        check_int8_scales(lm)


def test_offload_to_disk_gives_the_same_tokens_with_weights_on_meta(tmp_path: Path) -> None:
    frames = [torch.randint(0, 2048, (1, MIMI_CODEBOOKS, 1)) for _ in range(4)]

    def tokens(lm) -> list:
        gen, out = FullDuplexLMGen(lm), []
        torch.manual_seed(0)
        with torch.no_grad(), gen.streaming(1):
            for codes in frames:
                step = gen.step(codes)
                out.append(None if step is None else step.clone())
        return out

    reference = tokens(_tiny_lm())
    lm = _tiny_lm()
    tier = offload_layers(lm, ["transformer.layers.1"], "cpu", tmp_path / "offload")
    assert tier == "disk"
    assert all(p.device.type == "meta" for p in lm.transformer.layers[1].parameters())
    assert list((tmp_path / "offload").glob("*.dat")), "weights went to the disk tier"
    offloaded = tokens(lm)
    assert all(p.device.type == "meta" for p in lm.transformer.layers[1].parameters()), "back on meta after use"
    for a, b in zip(reference, offloaded):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.parametrize("changes", [
    {"dtype": DType.bfloat16, "quantize": Quantize.int8},
    {"dtype": DType.float32, "offload": Offload.cpu, "offload_fraction": 0.5},
])
def test_build_models_reports_what_it_applied(tmp_path: Path, changes: dict) -> None:
    built = build_models(_config(**changes), "personaplex-tiny", None, 0, tmp_path)
    info = built.info
    assert info.device == "cpu" and info.weights.startswith("synthetic")
    assert info.lm_parameters > 10_000_000 and info.mimi_parameters == 79_308_609
    if changes.get("quantize") is Quantize.int8:
        assert info.quantized_linears > 50
    else:
        assert info.offloaded_layers == ["transformer.layers.1"] and info.offload_tier == "disk"

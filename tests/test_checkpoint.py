"""Real checkpoint loading on small checkpoints written here, in PersonaPlex's and Moshi's layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from moshi.models import loaders  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from harness.worker.engine.architecture import lm_kwargs, lm_on_meta  # noqa: E402
from harness.worker.engine.checkpoint import CheckpointError, CheckpointWeights, find_checkpoint_files  # noqa: E402
from harness.worker.engine.synthetic import lm_blocks  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.helpers import synthetic_lm  # noqa: E402


def _synthetic_state(preset: str, seed: int = 5) -> dict[str, torch.Tensor]:
    lm = synthetic_lm(preset, torch.bfloat16, seed)
    return {k: v.detach().clone().contiguous() for k, v in lm.state_dict().items()}


def _released_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stack per-step attention weights into `in_proj_weight` / `out_proj.weight` as Kyutai's files do."""
    out: dict[str, torch.Tensor] = {}
    stacked: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for key, value in state.items():
        for kind, target in (("in_projs", "in_proj_weight"), ("out_projs", "out_proj.weight")):
            marker = f".self_attn.{kind}."
            if marker in key:
                prefix, rest = key.split(marker)
                stacked.setdefault(f"{prefix}.self_attn.{target}", []).append((int(rest.split(".")[0]), value))
                break
        else:
            out[key] = value
    for key, parts in stacked.items():
        out[key] = torch.cat([v for _, v in sorted(parts, key=lambda p: p[0])]).contiguous()
    return out


def _load(preset: str, path: Path, dtype=torch.bfloat16) -> tuple[dict[str, torch.Tensor], CheckpointWeights]:
    lm = lm_on_meta(preset, dtype)
    source = CheckpointWeights(path, lm)
    for name, block in lm_blocks(lm):
        source.materialize(name, block, "cpu")
    return dict(lm.state_dict()), source


def test_full_layout_round_trip(tmp_path: Path) -> None:
    state = _synthetic_state("personaplex-tiny")
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded, source = _load("personaplex-tiny", tmp_path / "model.safetensors")
    assert source.expanded == [] and source.unexpected == []
    assert loaded.keys() == state.keys()
    for key in state:
        assert torch.equal(loaded[key].to(state[key].dtype), state[key]), key


def test_dep_q8_checkpoint_expands_to_personaplex_dep_q16_like_nvidia(tmp_path: Path) -> None:
    state8 = _synthetic_state("moshi-tiny")
    save_file(_released_layout(state8), str(tmp_path / "model.safetensors"))
    loaded, source = _load("personaplex-tiny", tmp_path / "model.safetensors")
    assert source.expanded, "steps 8..15 must be filled"
    # Step-specific depformer weights: step s >= 8 is a copy of step s - 8.
    for step in range(16):
        src = step % 8
        for layer in range(2):
            base = f"depformer.layers.{layer}"
            assert torch.equal(loaded[f"{base}.self_attn.in_projs.{step}.weight"],
                               state8[f"{base}.self_attn.in_projs.{src}.weight"])
            assert torch.equal(loaded[f"{base}.gating.{step}.linear_in.weight"],
                               state8[f"{base}.gating.{src}.linear_in.weight"])
        assert torch.equal(loaded[f"linears.{step}.weight"], state8[f"linears.{src}.weight"])
        assert torch.equal(loaded[f"depformer_in.{step}.weight"], state8[f"depformer_in.{src}.weight"])
    # Shared weights are loaded as they are.
    assert torch.equal(loaded["transformer.layers.1.self_attn.in_projs.0.weight"],
                       state8["transformer.layers.1.self_attn.in_projs.0.weight"])
    assert torch.equal(loaded["text_emb.weight"], state8["text_emb.weight"])
    assert len(loaded) == len(dict(lm_on_meta("personaplex-tiny", torch.bfloat16).state_dict()))


def test_same_tensors_as_moshis_own_loader(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(_released_layout(_synthetic_state("moshi-tiny")), str(path))
    ours, _ = _load("moshi-tiny", path)
    theirs = loaders.get_moshi_lm(path, lm_kwargs=lm_kwargs("moshi-tiny"), device="cpu",
                                  dtype=torch.bfloat16).state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key].to(theirs[key].dtype), theirs[key]), key


def test_refuses_pickles_mismatches_and_q8(tmp_path: Path) -> None:
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"not even opened")
    with pytest.raises(CheckpointError, match="only safetensors"):
        find_checkpoint_files(pickle)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        find_checkpoint_files(tmp_path)

    small = tmp_path / "small.safetensors"
    save_file(_synthetic_state("personaplex-small"), str(small))
    with pytest.raises(CheckpointError, match="shape"):
        CheckpointWeights(small, lm_on_meta("personaplex-tiny", torch.bfloat16))

    q8 = tmp_path / "q8.safetensors"
    state = _synthetic_state("personaplex-tiny")
    state["linears.0.weight_scb"] = torch.ones(2048)
    save_file(state, str(q8))
    with pytest.raises(CheckpointError, match="int8-quantised checkpoint"):
        CheckpointWeights(q8, lm_on_meta("personaplex-tiny", torch.bfloat16))

    partial = tmp_path / "partial.safetensors"
    state = _synthetic_state("personaplex-tiny")
    del state["out_norm.alpha"]
    save_file(state, str(partial))
    with pytest.raises(CheckpointError, match="out_norm.alpha"):
        CheckpointWeights(partial, lm_on_meta("personaplex-tiny", torch.bfloat16))


@pytest.mark.slow
def test_harness_run_with_a_local_checkpoint_folder(tmp_path: Path, write_scenario) -> None:
    folder = tmp_path / "personaplex-local"
    folder.mkdir()
    save_file(_released_layout(_synthetic_state("moshi-tiny")), str(folder / "model.safetensors"))
    scenario = write_scenario(f"""
        name: ckpt
        preset: personaplex-tiny
        weights: {folder}
        frames: 3
        warmup_frames: 2
        criteria: {{min_frames: 1, min_seconds: 0}}
        persona: off  # the checkpoint's loading is under test, not the persona prefill (127 LM steps by default)
        torch_threads: 1  # two threads on a loaded 2-core machine wait on each other for minutes
        runs:
          - device: cpu
            dtype: float32
        """)
    done = run_cli("run", str(scenario), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    run = results["runs"][0]
    assert run["status"] == "ok"
    assert results["weights"] == str(folder)
    assert run["engine"]["weights"].startswith(str(folder / "model.safetensors"))
    assert "expanded to dep_q=16" in run["engine"]["weights"] and "Mimi synthetic" in run["engine"]["weights"]

"""`weights: hf://OWNER/REPO`: the local Hugging Face cache, offline; an empty cache is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_cached(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    """A repository as `hf download` leaves it: blobs, refs/main naming the commit, snapshots/<commit>/ linking."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for index, (name, data) in enumerate(files.items()):
        blob = root / "blobs" / f"blob{index}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return snapshot


def test_empty_cache_is_one_line_naming_the_model_and_the_command(tmp_path: Path, write_scenario,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # offline or not, nothing may be fetched
    scenario = write_scenario("""
        name: hub
        preset: personaplex-tiny
        weights: hf://nvidia/personaplex-7b-v1
        runs: [{device: cpu}]
        """)
    done = run_cli("run", str(scenario), "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "nvidia/personaplex-7b-v1" in line]
    assert len(lines) == 1, done.stderr
    assert "weights" in lines[0] and "hf download nvidia/personaplex-7b-v1" in lines[0]
    assert not (tmp_path / "empty-cache" / "models--nvidia--personaplex-7b-v1").exists()  # nothing downloaded


def test_malformed_id_is_refused(tmp_path: Path, write_scenario) -> None:
    scenario = write_scenario("""
        name: hub
        preset: personaplex-tiny
        weights: hf://not-a-repo
        runs: [{device: cpu}]
        """)
    done = run_cli("run", str(scenario), "--out", str(tmp_path / "out"), timeout=120)
    assert done.returncode == 2 and "hf://OWNER/REPO" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_run_on_a_checkpoint_in_the_cache_layout(tmp_path: Path, write_scenario,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save

    from tests.helpers import synthetic_lm

    lm = synthetic_lm("personaplex-tiny", torch.bfloat16, seed=7)
    state = {k: v.detach().clone().contiguous() for k, v in lm.state_dict().items()}
    cache = tmp_path / "hub"
    snapshot = write_cached(cache, "harness-tests/personaplex-tiny", {"model.safetensors": save(state)})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scenario = write_scenario("""
        name: hub
        preset: personaplex-tiny
        weights: hf://harness-tests/personaplex-tiny
        frames: 3
        warmup_frames: 2
        persona: off
        telemetry_hz: 0
        criteria: {min_frames: 1, min_seconds: 0}
        fidelity: {frames: 4}
        torch_threads: 2
        runs:
          - {name: int8-like, device: cpu, dtype: bfloat16, quantize: w8a16, serving: model}
        """)
    done = run_cli("run", str(scenario), "--out", str(tmp_path / "out"))
    assert done.returncode in (0, 3), done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    run = results["runs"][0]
    assert run["status"] == "ok", run["reason"]
    assert run["engine"]["weights"].startswith(str(snapshot / "model.safetensors"))
    fidelity = run["metrics"]["fidelity"]
    # as many fidelity frames as the timed run (3), up to the scenario's 4
    assert fidelity["synthetic"] is False and fidelity["frames"] == 3 and not fidelity["skipped"]
    assert {s["stream"] for s in fidelity["streams"]} == {"text", "semantic", "acoustic"}

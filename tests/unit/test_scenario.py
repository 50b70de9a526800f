"""Scenario validation: valid files expand into runs; invalid ones name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.records.config import Device, DType, Offload, Quantize
from harness.scenario.load import ScenarioError, load_scenario
from tests.conftest import REPO, run_cli

VALID = """
name: unit
preset: personaplex-tiny
frames: 5
warmup_frames: 2
defaults:
  device: cpu
matrix:
  dtype: [float32, bfloat16]
  compile: [off, on]
  exclude:
    - dtype: float32
      compile: on
runs:
  - name: int8
    quantize: int8
  - offload: cpu
    offload_fraction: 0.25
    cuda_graphs: "on"
"""


def test_valid_scenario_expands_matrix_and_runs(write_scenario) -> None:
    loaded = load_scenario(write_scenario(VALID))
    names = [r.name for r in loaded.runs]
    assert names == ["cpu-fp32-eager", "cpu-bf16-eager", "cpu-bf16-compile", "int8", "cpu-bf16-offload-eager-graphs"]
    int8 = loaded.runs[3]
    assert int8.quantize is Quantize.int8 and int8.device is Device.cpu and int8.dtype is DType.bfloat16
    offload = loaded.runs[4]
    assert offload.offload is Offload.cpu and offload.offload_fraction == 0.25 and offload.cuda_graphs is True
    assert loaded.weights_path is None


def test_shipped_scenarios_are_valid() -> None:
    shipped = sorted((REPO / "scenarios").glob("*.yaml"))
    assert {p.name for p in shipped} >= {"cpu-smoke.yaml", "rtx5090.yaml", "gtx1080ti.yaml", "h100.yaml"}
    for path in shipped:
        assert load_scenario(path).runs


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("name: x\npreset: personaplex-tiny\nfrmes: 3\nruns: [{}]\n", 3, "frmes", "unknown field"),
        ("name: x\npreset: personaplex-tiny\nframes: many\nruns: [{}]\n", 3, "frames", "valid integer"),
        ("name: x\npreset: personaplex-tiny\nruns:\n  - device: cpu\n  - dtype: bf17\n", 5, "runs[1].dtype",
         "'bf17'"),
        ("name: x\npreset: personaplex-tiny\nwarmup_frames: 1\nruns: [{}]\n", 3, "warmup_frames", "greater than"),
        ("name: x\npreset: gpt-2\nruns: [{}]\n", 2, "preset", "unknown preset"),
        ("name: x\npreset: personaplex-tiny\nruns:\n  - compile: maybe\n", 4, "runs[0].compile", "boolean"),
        ("name: x\npreset: personaplex-tiny\nruns:\n  - name: a\n  - name: a\n", 5, "runs[1].name", "two runs"),
        ("name: x\npreset: personaplex-tiny\nweights: ./nowhere.safetensors\nruns: [{}]\n", 3, "weights",
         "no such file"),
        ("name: x\npreset: personaplex-tiny\nruns:\n  - offload_fraction: 1.5\n", 4, "runs[0].offload_fraction",
         "less than 1"),
        ("name: x\npreset: personaplex-tiny\ncertify: all\nruns: [{}]\n", 3, "certify", "'every-frame'"),
    ],
)
def test_invalid_scenario_names_line_and_field(write_scenario, text: str, line: int, field: str, words: str) -> None:
    path = write_scenario(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    rendered = caught.value.render()
    assert f"{path}:{line}: {field}:" in rendered, rendered
    assert words in rendered, rendered


def test_bad_yaml_reports_its_line(write_scenario) -> None:
    path = write_scenario("name: x\npreset: personaplex-tiny\nruns:\n  - device: [cpu\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert f"{path}:5:" in caught.value.render() and "not valid YAML" in caught.value.render()


def test_missing_file_and_non_mapping(tmp_path: Path, write_scenario) -> None:
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "absent.yaml")
    with pytest.raises(ScenarioError, match="YAML mapping"):
        load_scenario(write_scenario("- just\n- a list\n"))


def test_no_runs_is_an_error(write_scenario) -> None:
    with pytest.raises(ScenarioError, match="defines no runs"):
        load_scenario(write_scenario("name: x\npreset: personaplex-tiny\n"))


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("name: x\npreset: personaplex-tiny\nruns:\n  - device: cpu\n    colour: red\n",
         ":5: runs[0].colour: unknown field"),
        ("name: x\npreset: personaplex-tiny\nbatch_size: two\nruns: [{}]\n", ":3: batch_size:"),
        ("name: x\npreset: personaplex-tiny\nruns:\n  - quantize: int4\n", ":4: runs[0].quantize:"),
    ],
)
def test_cli_exits_2_with_one_clear_message(write_scenario, text: str, expect: str) -> None:
    path = write_scenario(text)
    done = run_cli("run", str(path), "--out", str(path.parent / "out"))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert f"{path}{expect}" in done.stderr, done.stderr
    assert not (path.parent / "out").exists(), "nothing is created for an invalid scenario"


def test_each_run_measures_the_frame_of_the_server_that_would_deploy_it() -> None:
    """cpu-smoke: NVIDIA's server frame for what it loads (bf16, no int8, no tuned offload), moshi's server frame for
    the rest; the bare core only when a run asks for it."""
    serving = {r.name: r.serving.value for r in load_scenario(REPO / "scenarios" / "cpu-smoke.yaml").runs}
    assert serving["cpu-bf16-eager"] == serving["cpu-bf16-compile"] == "personaplex-server"
    assert serving["cpu-fp16-eager"] == serving["cpu-fp32-eager"] == serving["cpu-bf16-int8-eager"] == "moshi-server"
    assert serving["cpu-bf16-offload-eager"] == "moshi-server"
    assert "model" not in serving.values()


def test_asking_for_another_frame_names_the_run_after_it(write_scenario) -> None:
    path = write_scenario("name: x\npreset: moshi-tiny\ndefaults: {device: cpu}\n"
                          "matrix:\n  serving: [model, moshi-server, personaplex-server]\n")
    assert [(r.name, r.serving.value) for r in load_scenario(path).runs] == [
        ("cpu-bf16-eager-core", "model"), ("cpu-bf16-eager", "moshi-server"),
        ("cpu-bf16-eager-server", "personaplex-server")]


def test_run_fields_agree_across_the_models() -> None:
    """The run's fields are one set: what a scenario may write per run (RunSpec), its defaults (RunDefaults), the
    resolved record (RunConfig); the matrix axes and the worker's record are subsets of it."""
    import dataclasses

    from harness.contract.wire import WorkerRun
    from harness.records.config import RunConfig
    from harness.records.scenario import Matrix, RunDefaults, RunSpec

    spec = set(RunSpec.model_fields) - {"name"}
    assert spec == set(RunDefaults.model_fields)
    assert spec | {"name", "resolved_from"} == set(RunConfig.model_fields)
    assert set(Matrix.model_fields) - {"exclude"} <= spec
    assert {f.name for f in dataclasses.fields(WorkerRun)} <= spec | {"name"}

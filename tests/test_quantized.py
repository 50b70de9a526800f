"""int8, fp8, w8a16 and nf4 LM weights run for real: one `harness run` of personaplex-tiny (real workers, few frames), the
records it writes, the planner's bytes against the worker's, the skip where a GPU lacks the kernels, and the kernels
each layer launches against what the planner counts. No timing assertions: bytes and weight errors are deterministic
(synthetic weights from a fixed seed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from harness.contract.quantized import DEQUANT_MM, SCHEMES, expected_path
from harness.contract.wire import ArchitectureFacts, GpuInfo
from harness.plan.memory import block_bytes
from harness.plan.quantized import quantized_kernels
from harness.records.config import Quantize, RunConfig, Serving
from harness.records.schema import Machine
from harness.session.run_rules import skip_reason
from tests.conftest import cuda_available, run_cli

SCENARIO = """
name: quantized
preset: personaplex-tiny
frames: 2
warmup_frames: 2
torch_threads: 1
telemetry_hz: 0
persona: off
criteria: {min_frames: 1, min_seconds: 0}
defaults: {device: cpu, dtype: bfloat16}
matrix:
  quantize: [none, int8, fp8, w8a16, nf4]
runs:
  - {device: cuda, quantize: fp8, cuda_graphs: on}
  - {device: cuda, quantize: w8a16, cuda_graphs: on}
  - {device: cuda, quantize: nf4, cuda_graphs: on}
"""
SCHEME_NAMES = ("int8", "fp8", "w8a16", "nf4")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("quantized")
    (folder / "quantized.yaml").write_text(SCENARIO)
    done = run_cli("run", str(folder / "quantized.yaml"), "--out", str(folder / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((folder / "out" / "results.json").read_text())


def _runs(session: dict) -> dict[str, dict]:
    return {r["config"]["quantize"] + ":" + r["config"]["device"]: r for r in session["runs"]}


def test_each_scheme_runs_a_real_worker_and_records_its_kernel_path_bytes_and_error(session: dict) -> None:
    runs = _runs(session)
    assert runs["none:cpu"]["status"] == "ok" and runs["none:cpu"]["engine"]["quantization"] is None
    errors = {}
    for name in SCHEME_NAMES:
        run = runs[f"{name}:cpu"]
        assert run["status"] == "ok", run
        if name != "int8":  # moshi's server loads int8 (quantize: true in config.json); no shipped server the others
            assert run["config"]["serving"] == Serving.model.value
        q = run["engine"]["quantization"]
        assert q["scheme"] == name
        # nf4: bitsandbytes' fused CPU kernel comes with its optional `kernels` package; the fallback otherwise
        assert q["kernel_path"] in ({expected_path(name, "cpu").name} | ({"bnb-nf4"} if name == "nf4" else set()))
        assert q["linears"] == run["engine"]["quantized_linears"] > 50
        assert q["linear_bytes_after"] < q["linear_bytes_before"]
        assert q["lm_bytes_after"] < q["lm_bytes_before"]
        errors[name] = q["weight_rel_rms_error"]
    # what each format costs the weights: 8-bit integers (127 levels per row) < e4m3 (3 mantissa bits) < 4 bits
    assert 0 < errors["w8a16"] < errors["fp8"] < errors["nf4"] < 0.2
    assert 0 < errors["int8"] < errors["fp8"]  # LLM.int8's row-wise int8, as w8a16
    nf4, fp8 = runs["nf4:cpu"]["engine"]["quantization"], runs["fp8:cpu"]["engine"]["quantization"]
    assert nf4["linear_bytes_after"] < fp8["linear_bytes_after"]
    assert "kernels" in nf4["kernel_note"] or nf4["kernel_path"] == "bnb-nf4"


def test_the_plan_and_the_worker_agree_on_the_bytes_of_the_lm(session: dict) -> None:
    arch = TypeAdapter(ArchitectureFacts).validate_python(session["architecture"])
    runs = _runs(session)
    bf16 = RunConfig(**runs["none:cpu"]["config"])
    for name in SCHEME_NAMES:
        run = RunConfig(**runs[f"{name}:cpu"]["config"])
        q = runs[f"{name}:cpu"]["engine"]["quantization"]
        assert sum(block_bytes(b, run) for b in arch.blocks) == q["lm_bytes_after"], name
        assert sum(block_bytes(b, bf16) for b in arch.blocks) == q["lm_bytes_before"], name


def test_a_scheme_the_machine_cannot_run_is_skipped_with_the_reason(session: dict) -> None:
    runs = _runs(session)
    skipped = runs["fp8:cuda"]
    if cuda_available():  # a lent GPU runs them, with CUDA graphs: the GPU kernel paths, or the skip's reason
        major, minor = torch.cuda.get_device_capability()
        for name in SCHEME_NAMES[1:]:
            run = runs[f"{name}:cuda"]
            if major + minor / 10 >= SCHEMES[name].min_cc:
                assert run["status"] == "ok", run
                assert run["engine"]["quantization"]["kernel_path"] == expected_path(name, "cuda").name
                assert run["engine"]["cuda_graphs_active"]
            else:
                assert run["status"] == "skipped" and f"< {SCHEMES[name].min_cc:g}" in run["reason"]
    else:
        assert all(runs[f"{n}:cuda"]["status"] == "skipped" and "CUDA" in runs[f"{n}:cuda"]["reason"]
                   for n in SCHEME_NAMES[1:])
    machine = Machine.model_validate(session["machine"]).model_copy(update={
        "cuda_available": True, "gpus": [GpuInfo(index=0, name="NVIDIA GeForce GTX 1080 Ti", compute_capability="6.1")],
        "packages": {**session["machine"]["packages"], "bitsandbytes": "0.49.2"}})
    base = RunConfig(**skipped["config"])
    fp8 = skip_reason(base, machine, None)
    assert fp8 is not None and not fp8.forceable
    assert "fp8 has no kernels on NVIDIA GeForce GTX 1080 Ti: cc 6.1 < 8.9" in fp8.reason
    assert skip_reason(base.model_copy(update={"quantize": Quantize.nf4}), machine, None) is None  # nf4 from cc 6.0
    ada = machine.model_copy(update={"gpus": [GpuInfo(index=0, name="NVIDIA L4", compute_capability="8.9")]})
    assert skip_reason(base, ada, None) is None
    no_bnb = machine.model_copy(update={"packages": {**machine.packages, "bitsandbytes": None}})
    nf4 = skip_reason(base.model_copy(update={"quantize": Quantize.nf4}), no_bnb, None)
    assert nf4 is not None and "needs bitsandbytes" in nf4.reason


def _launched_ops(module: nn.Module, x: torch.Tensor) -> int:
    """Top-level aten ops that launch a kernel (views and layout-only ops launch none)."""
    module(x)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        module(x)
    views = {"aten::reshape", "aten::t", "aten::view", "aten::contiguous", "aten::slice", "aten::unsqueeze"}
    return sum(1 for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")
               and e.name not in views)


def test_the_kernels_each_layer_launches_are_the_ones_the_planner_counts() -> None:
    from harness.worker.engine.quantized import LAYERS

    linear = nn.Linear(256, 512, bias=False).to(torch.bfloat16)
    x = torch.randn(1, 1, 256, dtype=torch.bfloat16)
    assert _launched_ops(linear, x) == 1
    for name in ("fp8", "w8a16"):
        layer = LAYERS[name](linear)
        assert layer.path is SCHEMES[name].gpu_path
        assert _launched_ops(layer, x) - 1 == layer.path.extra_kernels, name
        reference = x.float() @ layer.dequantized().t()
        assert float((layer(x).float() - reference).norm() / reference.norm()) < 0.05
    fallback = LAYERS["w8a16"](linear)
    fallback.path = DEQUANT_MM
    assert _launched_ops(fallback, x) - 1 == DEQUANT_MM.extra_kernels


def test_the_planner_adds_the_kernels_and_bytes_of_the_path_the_worker_runs(session: dict) -> None:
    arch = TypeAdapter(ArchitectureFacts).validate_python(session["architecture"])
    run = RunConfig(**_runs(session)["nf4:cpu"]["config"])
    kernels, extra = quantized_kernels(arch, run)
    assert kernels > 0 and extra > 0  # the CPU dequantises each nf4 weight into a bf16 copy first
    fp8 = run.model_copy(update={"quantize": Quantize.fp8})
    assert quantized_kernels(arch, fp8)[1] == 0 and quantized_kernels(arch, fp8)[0] > kernels


def test_a_scheme_with_a_dtype_it_does_not_run_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\npreset: personaplex-tiny\nruns:\n  - {device: cpu, dtype: float32, quantize: nf4}\n"
                    "  - {device: cpu, quantize: fp8, offload: cpu}\n")
    done = run_cli("run", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{path}:4: runs[0].dtype: quantize: nf4 runs with dtype bfloat16 or float16" in done.stderr

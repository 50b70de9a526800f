"""Memory planner on the real architecture counts: the seeds' GTX 1080 Ti and RTX 5090 stories, formulas."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from harness.knowledge.gpus import find_gpu
from harness.plan.memory import GIB, block_bytes, kv_bytes  # noqa: E402
from harness.plan.planner import alternatives, plan_run  # noqa: E402
from harness.plan.target import PlanTarget, from_spec  # noqa: E402
from harness.records.config import RunConfig  # noqa: E402
from harness.records.scenario import RunDefaults  # noqa: E402
from harness.worker.describe import describe_preset  # noqa: E402

CU128 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # torch 2.9.1+cu128
TORCH_25 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]  # the seeds' torch 2.5.1


@pytest.fixture(scope="module")
def plex():  # noqa: ANN201
    return describe_preset("personaplex-7b")


def _run(**changes) -> RunConfig:
    return RunConfig(name="r", **{**RunDefaults().model_dump(), "device": "cuda", **changes})


def _gpu(name: str, arch: list[str], host_ram_gib: float | None = None) -> PlanTarget:
    spec = find_gpu(name)
    assert spec is not None
    target = from_spec(spec, None, host_ram_gib)
    return PlanTarget(**{**target.__dict__, "arch_list": arch})


def test_architecture_counts_are_personaplex(plex) -> None:  # noqa: ANN001
    assert plex.lm_parameters == 8_371_408_896 and plex.dep_q == 16 and plex.temporal_layers == 32
    assert plex.mimi_parameters == 79_308_609
    temporal = next(k for k in plex.kv if k.name == "temporal")
    assert kv_bytes(temporal, _run(), 1) == 32 * 2 * 3000 * 4096 * 2
    assert kv_bytes(temporal, _run(dtype="float32"), 2) == 2 * 32 * 2 * 3000 * 4096 * 4
    bf16 = sum(block_bytes(b, _run()) for b in plex.blocks)
    assert bf16 == pytest.approx(2 * 8.3714e9, rel=1e-3)
    int8 = sum(block_bytes(b, _run(quantize="int8")) for b in plex.blocks)
    linear = sum(b.linear_params for b in plex.blocks)
    rows = sum(b.linear_out_features for b in plex.blocks)
    assert int8 == linear + 4 * rows + 2 * (plex.lm_parameters - linear - sum(b.float32_params for b in plex.blocks)) \
        + 4 * sum(b.float32_params for b in plex.blocks)


def test_gtx1080ti_tells_the_seeds_story(plex) -> None:  # noqa: ANN001
    target = _gpu("gtx1080ti", TORCH_25, host_ram_gib=16)
    bf16 = plan_run(plex, _run(cuda_graphs=True), target)
    assert not bf16.fits_memory and bf16.device_peak_bytes > 16 * GIB  # "bf16 models need ~14GB VRAM": OOM
    fp16 = plan_run(plex, _run(dtype="float16"), target)
    assert not fp16.fits_memory  # "bf16 model with --half: still OOM"
    compiled = plan_run(plex, _run(dtype="float16", compile=True), target)
    assert any("Triton" in r and "6.1" in r for r in compiled.reasons)  # "Triton requires CUDA 7.0+"
    offload = plan_run(plex, _run(dtype="float16", quantize="int8", offload="cpu", offload_fraction=0.25), target)
    assert offload.fits_memory and offload.feasible and offload.step_floor_ms > 80  # fits, but not real time
    assert any("no bf16 tensor cores" in i.what for i in bf16.issues)
    cpu = plan_run(plex, _run(device="cpu"), target)
    assert not cpu.feasible and "host RAM" in cpu.reasons[0]  # "gpu01 only has 16GB RAM, needs 18-20GB"
    assert 17 * GIB < cpu.host_peak_bytes < 20 * GIB


def test_torch_build_without_the_gpu_architecture_is_a_blocker(plex) -> None:  # noqa: ANN001
    rtx_old = plan_run(plex, _run(), _gpu("rtx5090", TORCH_25))
    assert not rtx_old.feasible and any("sm_120" in r for r in rtx_old.reasons)
    assert "cu128" in next(i.remedy for i in rtx_old.issues if "sm_120" in i.what)
    rtx_new = plan_run(plex, _run(compile=True, cuda_graphs=True), _gpu("rtx5090", CU128))
    assert rtx_new.feasible and rtx_new.fits_memory
    pascal = plan_run(plex, _run(quantize="int8", offload="cpu"), _gpu("gtx1080ti", CU128))
    assert any("sm_61" in r for r in pascal.reasons)
    assert "cu126" in next(i.remedy for i in pascal.issues if "sm_61" in i.what)


def test_rtx5090_fits_bf16_with_room_and_h100_floor(plex) -> None:  # noqa: ANN001
    plan = plan_run(plex, _run(compile=True, cuda_graphs=True), _gpu("rtx5090", CU128, 63))
    assert 16 * GIB < plan.device_peak_bytes < 0.75 * 32 * GIB
    h100 = plan_run(plex, _run(), _gpu("h100", CU128))
    assert h100.step_floor_ms == pytest.approx(h100.bytes_per_step / 3350e9 * 1e3)
    assert h100.step_floor_ms < plan.step_floor_ms < 80


def test_offload_moves_layers_to_the_host_and_pays_the_link(plex) -> None:  # noqa: ANN001
    target = _gpu("rtx5090", CU128, 63)
    full = plan_run(plex, _run(), target)
    half = plan_run(plex, _run(offload="cpu", offload_fraction=0.5), target)
    assert half.device_peak_bytes < full.device_peak_bytes and half.host_peak_bytes > full.host_peak_bytes + 6 * GIB
    assert half.offloaded_bytes_per_step > 6e9 and half.step_floor_ms > full.step_floor_ms + 100


def test_alternatives_find_what_fits(plex) -> None:  # noqa: ANN001
    best = alternatives(plex, _gpu("rtx4090", CU128))[0]
    assert best.feasible and best.fits_memory
    pascal = alternatives(plex, _gpu("gtx1080ti", TORCH_25))
    assert pascal[0].fits_memory and ("int8" in pascal[0].run or "offload" in pascal[0].run)


def test_host_memory_limit_and_cpu_target(plex) -> None:  # noqa: ANN001
    cpu_target = PlanTarget(label="cpu", host_ram_bytes=64 * GIB, host_bandwidth_gbs=20.0)
    plan = plan_run(plex, _run(device="cpu"), cpu_target)
    assert plan.feasible and plan.device_peak_bytes is None and plan.step_floor_ms > 500
    limited = plan_run(plex, _run(device="cpu"), cpu_target, host_memory_limit_bytes=8 * GIB)
    assert not limited.feasible and "8.0 GiB available" in limited.reasons[0]
    graphs = plan_run(plex, _run(device="cpu", cuda_graphs=True), cpu_target)
    assert not graphs.feasible and "CUDA graphs need a CUDA device" in graphs.reasons


@pytest.mark.parametrize(("name", "vram_gib", "bandwidth"), [
    ("NVIDIA L40S", 48, 864), ("NVIDIA L40", 48, 864), ("NVIDIA GeForce RTX 5090 Laptop GPU", 24, 896),
    ("NVIDIA GeForce RTX 4090 Laptop GPU", 16, 576), ("NVIDIA A10G", 24, 600), ("NVIDIA H100 NVL", 94, 3900),
])
def test_exact_gpu_targets(plex, name: str, vram_gib: float, bandwidth: float) -> None:  # noqa: ANN001
    target = _gpu(name, CU128, host_ram_gib=64)
    plan = plan_run(plex, _run(), target)
    spec = find_gpu(name)
    assert spec is not None
    # memory as the card reports it where a log shows it (L40S 46068 MiB, A10G 23028 MiB: ECC on), else nominal
    expected = spec.reported_mib * 2**20 if spec.reported_mib else vram_gib * GIB
    assert plan.device_capacity_bytes == expected
    assert spec.reported_mib is None or spec.reported_mib * 2**20 < vram_gib * GIB
    assert plan.step_floor_ms == pytest.approx(plan.bytes_per_step / (bandwidth * 1e9) * 1e3)


def test_laptop_5090_is_not_the_desktop_card(plex) -> None:  # noqa: ANN001
    laptop = plan_run(plex, _run(), _gpu("NVIDIA GeForce RTX 5090 Laptop GPU", CU128, 32))
    desktop = plan_run(plex, _run(), _gpu("NVIDIA GeForce RTX 5090", CU128, 32))
    assert laptop.device_capacity_bytes == 24 * GIB < desktop.device_capacity_bytes == 32607 * 2**20  # as reported
    assert laptop.step_floor_ms == pytest.approx(desktop.step_floor_ms * 1792 / 896)
    assert "laptop" in laptop.target


def test_unified_memory_is_one_pool(plex) -> None:  # noqa: ANN001
    target = from_spec(find_gpu("dgx-spark"), None)
    assert target.unified and target.vram_bytes == target.host_ram_bytes == 128 * GIB
    offload = plan_run(plex, _run(offload="cpu", offload_fraction=0.5), target)
    assert any("unified memory" in i.what for i in offload.issues)
    assert "unified" in target.label


def test_target_elsewhere_runs_the_pinned_torch(plex) -> None:  # noqa: ANN001
    pascal = plan_run(plex, _run(quantize="int8", offload="cpu"), from_spec(find_gpu("gtx1080ti"), None))
    issue = next(i for i in pascal.issues if "sm_61" in i.what)
    assert "whl/cu126" in issue.remedy and "whl/cu128" not in issue.remedy


def test_measured_bandwidth_is_used_as_measured() -> None:
    from harness.contract.wire import GpuInfo
    from harness.plan.target import from_machine
    from harness.records.machine import Machine

    machine = Machine(hostname="h", os="Linux", os_release="6", platform="x", cpu_model="x", cpu_cores_logical=8,
                      cpu_cores_physical=4, ram_total_bytes=64 * GIB, python="3.11", packages={}, cuda_available=True,
                      gpus=[GpuInfo(index=0, name="NVIDIA L40S", compute_capability="8.9",
                                    memory_total_bytes=48 * GIB, memory_free_bytes=40 * GIB)],
                      cuda_arch_list=CU128, device_bandwidth_gbs=731.0, fingerprint="f")
    target = from_machine(machine)
    assert target.bandwidth_gbs == 731.0 and target.bandwidth_measured  # not halved, not the spec's 864
    assert target.vram_bytes == 40 * GIB  # free memory: another process holds the rest

"""The facts probe, plan and diagnosis share: wheels per architecture, Triton/bf16, drivers, the GPU table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.knowledge import compiler, drivers, wheels
from harness.knowledge.gpus import GPUS, find_gpu


@pytest.mark.parametrize(("name", "vram", "bandwidth"), [
    ("NVIDIA L40S", 48, 864), ("NVIDIA L40", 48, 864), ("NVIDIA L4", 24, 300), ("NVIDIA A10G", 24, 600),
    ("NVIDIA H100 NVL", 94, 3900), ("NVIDIA B200", 180, 7700), ("NVIDIA GeForce RTX 5090", 32, 1792),
    ("NVIDIA GeForce RTX 5090 Laptop GPU", 24, 896), ("NVIDIA GeForce RTX 4090 Laptop GPU", 16, 576),
    ("Tesla T4", 16, 320), ("NVIDIA GB10", 128, 273), ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", 96, 1792),
])
def test_exact_names_never_substrings(name: str, vram: float, bandwidth: float) -> None:
    spec = find_gpu(name)
    assert spec is not None and (spec.vram_gib, spec.bandwidth_gbs) == (vram, bandwidth), spec


def test_no_substring_matches() -> None:
    assert find_gpu("NVIDIA L4").name == "NVIDIA L4" and find_gpu("L40S").name == "NVIDIA L40S"
    assert find_gpu("NVIDIA GeForce RTX 5090 Laptop GPU").laptop
    assert not find_gpu("NVIDIA GeForce RTX 5090").laptop
    assert find_gpu("NVIDIA GeForce RTX 509") is None and find_gpu("RTX") is None and find_gpu("NVIDIA") is None


def test_one_nvml_name_two_memory_sizes() -> None:
    assert find_gpu("NVIDIA GeForce RTX 4060 Ti", 16 * 2**30).vram_gib == 16
    assert find_gpu("NVIDIA GeForce RTX 4060 Ti", 8 * 2**30).vram_gib == 8


def test_every_gpu_is_sourced_and_unique() -> None:
    names = [g.name for g in GPUS]
    assert len(names) == len(set(names))
    keys = [a.lower() for g in GPUS for a in g.aliases]
    assert len(keys) == len(set(keys))
    for gpu in GPUS:
        assert gpu.source.startswith("https://"), gpu.name
        assert gpu.vram_gib > 0 and gpu.bandwidth_gbs > 0 and wheels.parse_cc(gpu.compute_capability)
    unified = {g.name for g in GPUS if g.unified}
    assert {"NVIDIA Jetson AGX Orin 64GB", "NVIDIA Jetson AGX Thor", "NVIDIA DGX Spark (GB10)"} <= unified
    assert all(g.host_ram_gib == g.vram_gib for g in GPUS if g.unified)  # one pool
    required = ["l40s", "l40", "a10g", "a10", "t4", "rtx4080", "rtx4070ti", "rtx4060ti-16gb", "rtx5080", "rtx5070ti",
                "rtx5060ti", "rtx6000-ada", "rtx-pro-6000", "h100-nvl", "gh200", "b200", "gb200", "jetson-agx-orin",
                "jetson-thor", "dgx-spark"]
    assert all(find_gpu(alias) is not None for alias in required)


def test_pinned_torch_has_no_pascal_kernels() -> None:
    assert not wheels.build_covers("6.1", wheels.PINNED_ARCHS)
    assert wheels.build_covers("12.0", wheels.PINNED_ARCHS) and wheels.build_covers("8.9", wheels.PINNED_ARCHS)
    assert wheels.build_covers("8.9", ["sm_80", "sm_86"])  # sm_86 cubins run on sm_89
    assert not wheels.build_covers("9.0", ["sm_80", "sm_86"])
    assert wheels.build_covers("12.0", ["sm_90", "compute_90"]) and wheels.needs_ptx_jit("12.0", ["sm_90", "compute_90"])
    assert wheels.build_covers("6.1", wheels.variant("cu126").archs)
    assert not wheels.build_covers("6.1", wheels.variant("cu128").archs)


def test_wheel_advice_by_architecture() -> None:
    pascal = wheels.wheel_for("6.1")
    assert pascal.tag == "cu126" and "whl/cu126" in pascal.command and "cu118" in pascal.why
    blackwell = wheels.wheel_for("12.0")
    assert blackwell.tag == "cu128" and ">=2.7" in blackwell.command and "2.7" in blackwell.why
    assert wheels.wheel_for("7.0").tag == "cu126"
    assert wheels.wheel_for("8.6").tag == "cu128"
    assert wheels.sm("12.0") == "sm_120" and wheels.parse_cc("sm_120") == (12, 0) and wheels.parse_cc("(6, 1)") == (6, 1)


def test_triton_and_bf16_limits() -> None:
    pascal, windows = compiler.compile_support("linux", "6.1"), compiler.compile_support("windows", "12.0")
    assert not pascal.ok and "compile: off" in pascal.remedy
    assert not windows.ok and "WSL2" in windows.remedy
    assert compiler.compile_support("linux", "7.0").ok
    assert not compiler.bf16_support("7.5").ok and compiler.bf16_support("8.0").ok
    assert not compiler.int8_support("6.1").ok and compiler.int8_support("7.5").ok


def test_driver_minor_version_compatibility() -> None:
    same_major = drivers.check_driver("12.2", "12.8", driver="535.104.05")
    assert same_major.level == "warn" and "minor-version" in same_major.finding and "570" in same_major.remedy
    assert drivers.check_driver("12.2", "12.8", driver="535.104.05", needs_ptx_jit=True).level == "fail"
    assert drivers.check_driver("11.4", "12.8", driver="470.86").level == "fail"
    assert drivers.check_driver("12.8", "12.8", driver="570.86").level == "pass"
    assert drivers.check_driver("13.0", "12.8").level == "pass"
    assert drivers.check_driver("12.0", "12.8", driver="520.61.05").level == "fail"  # below 525.60.13


# -- the GTX 1080 Ti told the same by probe, plan and diagnose --------------------------------------

def _gtx1080ti_facts():  # noqa: ANN202 - fabricated facts to test the interpretation, never a probe record
    from harness.contract.wire import GpuInfo, ProbeCheck, TorchFacts
    from harness.probe.nvml import GpuProcess, NvmlReading

    gpu = GpuInfo(index=0, name="NVIDIA GeForce GTX 1080 Ti", uuid="8a4d7c2e-1111-2222-3333-444455556666",
                  compute_capability="6.1", memory_total_bytes=11 * 2**30, memory_free_bytes=10 * 2**30)
    facts = TorchFacts(torch_version="2.9.1+cu128", torch_cuda_build="12.8", cuda_available=True,
                       arch_list=list(wheels.PINNED_ARCHS), gpus=[gpu], bf16_supported=True)
    twin = replace(gpu, uuid="GPU-8A4D7C2E-1111-2222-3333-444455556666", driver="570.86.15")
    nvml = NvmlReading(True, driver="570.86.15", cuda_driver_version="12.8", gpus=[twin],
                       processes={twin.uuid: [GpuProcess(4242, "Xorg", 300 * 2**20)]})
    raw = [ProbeCheck(name="triton", status="fail",
                      finding="Triton 3.5.1 could not compile and run a kernel on NVIDIA GeForce GTX 1080 Ti (cc 6.1)"),
           ProbeCheck(name="bf16", status="pass", finding="a bf16 matmul ran on NVIDIA GeForce GTX 1080 Ti"),
           ProbeCheck(name="bitsandbytes", status="pass", finding="a QLinear int8 step ran on cuda")]
    return facts, nvml, raw


def test_gtx1080ti_story_is_the_same_in_probe_plan_and_diagnose() -> None:
    from harness.diagnosis.context import Context, gpu_from_spec
    from harness.diagnosis.engine import diagnose_text
    from harness.plan.software import software_issues
    from harness.plan.target import from_spec
    from harness.probe.interpret import gpu_checks
    from harness.records.config import RunConfig
    from harness.records.scenario import RunDefaults

    the_wheel = wheels.arch_remedy("6.1")
    assert "whl/cu126" in the_wheel and "whl/cu128" not in the_wheel

    facts, nvml, raw = _gtx1080ti_facts()
    probe = {c.name: c for c in gpu_checks(facts, nvml, "Linux", raw)}
    assert probe["cuda_arch"].status == "fail" and probe["cuda_arch"].remedy == the_wheel
    assert probe["triton"].status == "fail" and "NO_TORCH_COMPILE=1" in probe["triton"].remedy
    assert probe["bf16"].status == "warn" and "float16" in probe["bf16"].remedy  # it runs, emulated
    assert probe["bitsandbytes"].status == "warn"  # int8 works but has no fast kernel below cc 7.5
    memory = probe["gpu_memory"]
    assert memory.status == "warn" and "quantize: int8" in memory.remedy and "offload: cpu" in memory.remedy
    assert "Xorg" in memory.finding  # another process on the GPU is reported
    assert "no NVML device" not in memory.finding  # matched by UUID, whatever the prefix and case

    run = RunConfig(name="r", **{**RunDefaults().model_dump(), "device": "cuda", "compile": True})
    plan = software_issues(run, from_spec(find_gpu("gtx1080ti"), None))
    assert next(i for i in plan if "sm_61" in i.what).remedy == the_wheel
    assert "NO_TORCH_COMPILE=1" in next(i for i in plan if "Triton" in i.what).remedy
    assert any("bf16" in i.what for i in plan)

    ctx = Context(gpu=gpu_from_spec(find_gpu("gtx1080ti")))
    arch = diagnose_text("RuntimeError: CUDA error: no kernel image is available for execution on the device", ctx)
    assert arch.remedy == the_wheel
    oom = diagnose_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB",
                        Context(gpu=gpu_from_spec(find_gpu("gtx1080ti"))))
    assert "cannot fit in bf16 or fp16" in oom.remedy and "offload" in oom.remedy
    triton = diagnose_text("RuntimeError: Found NVIDIA GeForce GTX 1080 Ti which is too old to be supported by the "
                           "triton GPU compiler")
    assert "NO_TORCH_COMPILE=1" in triton.remedy


def test_driver_check_uses_minor_version_compatibility() -> None:
    from harness.probe.interpret import check_driver

    facts, nvml, _ = _gtx1080ti_facts()
    nvml.cuda_driver_version, nvml.driver = "12.4", "550.54.14"
    verdict = check_driver(facts, nvml, "Linux")
    assert verdict.status == "warn" and "minor-version" in verdict.finding
    nvml.cuda_driver_version, nvml.driver = "11.4", "470.86"
    assert check_driver(facts, nvml, "Linux").status == "fail"


def test_pinned_torch_here_matches_the_knowledge() -> None:
    torch = pytest.importorskip("torch")
    if torch.version.cuda != "12.8":
        pytest.skip("not the pinned cu128 build")
    assert tuple(torch._C._cuda_getArchFlags().split()) == wheels.PINNED_ARCHS


def test_knowledge_is_a_leaf_and_nothing_here_imports_torch() -> None:
    import ast
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in (root / "harness" / "knowledge").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith(
                    ("harness.knowledge", "harness.records", "harness.scenario")), f"{path.name} imports {name}"
    code = ("import sys; import harness.knowledge.gpus, harness.knowledge.wheels, harness.knowledge.drivers, "
            "harness.diagnosis.engine, harness.diagnosis.diagnose, harness.probe.interpret, harness.cli.diagnose; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "False", done.stderr


def test_servers_have_kernels_as_their_packages_pin_torch() -> None:
    """NVIDIA's server (torch<2.5) has Pascal to Hopper kernels and none for Blackwell; PyPI moshi (torch<2.10)
    has both. On a CPU nothing is missing."""
    from harness.knowledge.deploy import archs_below, missing_kernels

    assert "sm_61" in archs_below("2.5") and "sm_120" not in archs_below("2.5")
    assert missing_kernels("personaplex-server", "6.1") is None
    gap = missing_kernels("personaplex-server", "12.0")
    assert gap is not None and "torch<2.5" in gap and "sm_120" in gap and "cu128" in gap
    assert missing_kernels("moshi-server", "12.0") is None and missing_kernels("moshi-server", "6.1") is None
    assert missing_kernels("personaplex-server", None) is None and missing_kernels("model", "12.0") is None

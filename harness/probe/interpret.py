"""What the GPU-side facts mean: torch kernels, driver, CUDA, NVML vs CUDA devices, and the device checks.

The probe worker reports raw facts (what torch saw, whether a Triton kernel ran, whether a bf16
matmul ran); this module judges them with harness.knowledge, the same facts the planner and the
diagnosis use. It never imports torch, so it can be fed any machine's facts (and is tested so).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from harness.contract.wire import GpuInfo, ProbeCheck, TorchFacts
from harness.knowledge import compiler, drivers, wheels
from harness.knowledge.models import needs_gib, weights_gib
from harness.probe.nvml import NvmlReading, uuid_key

GIB = 2**30


def _cc(facts: TorchFacts, nvml: NvmlReading) -> Optional[str]:
    gpus = facts.gpus or nvml.gpus
    return min((g.compute_capability for g in gpus if g.compute_capability),
               key=lambda cc: wheels.parse_cc(cc), default=None)


def check_cuda(facts: TorchFacts, nvml: NvmlReading) -> ProbeCheck:
    if facts.cuda_available:
        return ProbeCheck(name="cuda", status="pass",
                          finding=f"torch sees {len(facts.gpus)} GPU(s): {', '.join(g.name for g in facts.gpus)}")
    if nvml.available and nvml.gpus:
        cc = _cc(facts, nvml)
        remedy = (f"install a CUDA build of torch: {wheels.arch_remedy(cc)}" if not facts.torch_cuda_build
                  else "check the driver (nvidia-smi), CUDA_VISIBLE_DEVICES and, in a container, `--gpus all`")
        return ProbeCheck(name="cuda", status="fail",
                          finding=f"NVIDIA GPU present but torch cannot use it: {facts.cuda_unavailable_reason}",
                          remedy=remedy)
    return ProbeCheck(name="cuda", status="n/a",
                      finding=f"no usable NVIDIA GPU on this machine ({facts.cuda_unavailable_reason or 'none found'}); "
                              "CUDA runs will be skipped")


def check_arch(facts: TorchFacts, nvml: NvmlReading) -> ProbeCheck:
    gpus = facts.gpus or nvml.gpus
    if not gpus or not facts.torch_cuda_build:
        return ProbeCheck(name="cuda_arch", status="n/a",
                          finding="no CUDA GPU or no CUDA torch: nothing to match against the torch build")
    built = " ".join(facts.arch_list) or "none"
    for gpu in gpus:
        if gpu.compute_capability and not wheels.build_covers(gpu.compute_capability, facts.arch_list):
            arch = wheels.sm(gpu.compute_capability)
            return ProbeCheck(name="cuda_arch", status="fail",
                              finding=f"torch {facts.torch_version} has kernels for {built}, not {arch} ({gpu.name}): "
                                      "every kernel launch fails with 'no kernel image is available'",
                              remedy=wheels.arch_remedy(gpu.compute_capability))
    return ProbeCheck(name="cuda_arch", status="pass", finding=f"torch build covers this GPU ({built})")


def check_driver(facts: TorchFacts, nvml: NvmlReading, os_name: str) -> ProbeCheck:
    if not (nvml.available and nvml.cuda_driver_version and facts.torch_cuda_build):
        return ProbeCheck(name="driver", status="n/a", finding="no NVIDIA driver to compare with the torch build")
    cc = _cc(facts, nvml)
    jit = bool(cc) and wheels.needs_ptx_jit(cc, facts.arch_list)  # type: ignore[arg-type]
    verdict = drivers.check_driver(nvml.cuda_driver_version, facts.torch_cuda_build, driver=nvml.driver,
                                   needs_ptx_jit=jit, windows=os_name == "Windows")
    return ProbeCheck(name="driver", status=verdict.level, finding=verdict.finding, remedy=verdict.remedy)


def match_devices(facts: TorchFacts, nvml: NvmlReading) -> list[tuple[GpuInfo, Optional[GpuInfo]]]:
    """Each CUDA device with its NVML device, matched by UUID (CUDA_VISIBLE_DEVICES reorders indices)."""
    by_uuid = {uuid_key(g.uuid): g for g in nvml.gpus if g.uuid}
    return [(gpu, by_uuid.get(uuid_key(gpu.uuid))) for gpu in facts.gpus]


def check_gpu_memory(facts: TorchFacts, nvml: NvmlReading) -> ProbeCheck:
    """Free against total memory per GPU, and who else is on it: a shared GPU changes the answer."""
    if not facts.gpus and not nvml.gpus:
        return ProbeCheck(name="gpu_memory", status="n/a", finding="no GPU")
    pairs = match_devices(facts, nvml) if facts.gpus else [(g, g) for g in nvml.gpus]
    parts, status, remedy, smallest = [], "pass", "", None
    for cuda_gpu, nvml_gpu in pairs:
        total = cuda_gpu.memory_total_bytes or (nvml_gpu.memory_total_bytes if nvml_gpu else None) or 0
        free = cuda_gpu.memory_free_bytes or (nvml_gpu.memory_free_bytes if nvml_gpu else None)
        text = f"cuda:{cuda_gpu.index} {cuda_gpu.name}: {total / GIB:.1f} GiB"
        if free is not None:
            text += f", {free / GIB:.1f} GiB free"
        if facts.gpus and nvml.available and nvml_gpu is None:
            text += " (no NVML device with this UUID)"
            status = "warn"
        others = nvml.processes.get(nvml_gpu.uuid or "", []) if nvml_gpu else []
        if others:
            names = ", ".join(f"{p.name} (pid {p.pid}{f', {p.used_bytes / GIB:.1f} GiB' if p.used_bytes else ''})"
                              for p in others)
            text += f"; in use by {names}"
            status, remedy = "warn", "stop the other processes on this GPU (nvidia-smi) or pick another one " \
                                     "(CUDA_VISIBLE_DEVICES=<uuid>): a shared GPU has less memory and time"
        parts.append(text)
        room = free if free is not None else total
        smallest = room if smallest is None else min(smallest, room)
    if smallest is not None and smallest < needs_gib(2) * GIB:
        fits_int8 = smallest > needs_gib(1) * GIB
        status = "warn"
        remedy = (f"PersonaPlex 7B needs about {needs_gib(2):.1f} GiB in bf16/fp16 ({weights_gib(2):.1f} GiB of "
                  f"weights) and {needs_gib(1):.1f} GiB in int8: use `quantize: int8`"
                  f"{'' if fits_int8 else ' with `offload: cpu`'} here, or a larger GPU (`harness plan SCENARIO "
                  "--here` itemises it)" + ("; " + remedy if remedy else ""))
    return ProbeCheck(name="gpu_memory", status=status, finding="; ".join(parts), remedy=remedy,
                      value=(smallest / GIB) if smallest is not None else None)


def interpret_device_checks(raw: list[ProbeCheck], facts: TorchFacts, os_name: str) -> list[ProbeCheck]:
    """The worker's raw results, judged: statuses and remedies from harness.knowledge."""
    cc = min((g.compute_capability for g in facts.gpus if g.compute_capability), key=wheels.parse_cc, default=None)
    out = []
    for check in raw:
        out.append(_judge(check, cc, facts, os_name))
    return out


def _judge(check: ProbeCheck, cc: Optional[str], facts: TorchFacts, os_name: str) -> ProbeCheck:
    name, update = check.name, {}
    if name == "triton" and facts.cuda_available:
        support = compiler.compile_support(os_name, cc)
        if not support.ok:
            update = {"status": "fail", "finding": f"{support.why}; {check.finding}", "remedy": support.remedy}
        elif check.status == "fail":
            update = {"remedy": f"{compiler.COMPILE_OFF}; or reinstall torch from its index on Linux "
                                f"({wheels.pip_install('cu128')}) to get the Triton it was built with"}
    elif name == "bf16" and facts.cuda_available:
        support = compiler.bf16_support(cc)
        if not support.ok:
            update = {"status": "warn" if check.status == "pass" else "fail",
                      "finding": f"{support.why}; {check.finding}", "remedy": support.remedy}
        elif check.status == "fail":
            update = {"remedy": "use `dtype: float16` or float32 on this GPU"}
    elif name == "bf16" and check.status == "warn":
        update = {"remedy": "prefer `dtype: float32` on this CPU"}
    elif name == "bitsandbytes":
        if check.status == "fail":
            update = {"remedy": "pip install 'bitsandbytes>=0.45,<0.50' (Linux); or set `quantize: none`"}
        elif facts.cuda_available and not compiler.int8_support(cc).ok:
            update = {"status": "warn", "finding": f"{check.finding}; {compiler.int8_support(cc).why}",
                      "remedy": compiler.int8_support(cc).remedy}
    elif name == "accelerate" and check.status == "fail":
        update = {"remedy": "pip install accelerate; or set `offload: none`"}
    elif check.status in {"warn", "fail"} and not check.remedy:
        update = {"remedy": "see the finding; `harness diagnose` explains a pasted error log"}
    return replace(check, **update) if update else check


def gpu_checks(facts: TorchFacts, nvml: NvmlReading, os_name: str, raw: list[ProbeCheck]) -> list[ProbeCheck]:
    """Every GPU-side check of the probe, in the order the table shows them."""
    return [check_driver(facts, nvml, os_name), check_cuda(facts, nvml), check_arch(facts, nvml),
            check_gpu_memory(facts, nvml), *interpret_device_checks(raw, facts, os_name)]


def merged_gpus(facts: TorchFacts, nvml: NvmlReading) -> list[GpuInfo]:
    """The GPUs as CUDA numbers them (cuda:0 first), completed from their NVML twin matched by UUID."""
    if not facts.gpus:
        return list(nvml.gpus)
    merged = []
    for gpu, twin in match_devices(facts, nvml):
        if twin is None:
            merged.append(gpu)
            continue
        merged.append(replace(
            gpu, uuid=twin.uuid, driver=twin.driver,
            memory_free_bytes=gpu.memory_free_bytes if gpu.memory_free_bytes is not None else twin.memory_free_bytes))
    return merged

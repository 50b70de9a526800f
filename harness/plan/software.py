"""Does the software stack fit the target? Torch kernels, Triton vs OS and compute capability, bf16, int8.

Every rule and remedy comes from harness.knowledge, the same facts the probe and the diagnosis use.
"""

from __future__ import annotations

from harness.contract.quantized import cuda_support
from harness.knowledge import compiler, wheels
from harness.knowledge.platforms import WSL_BLACKWELL_GRAPHS, wsl_hazards
from harness.plan.target import PlanTarget
from harness.records.config import Device, DType, Offload, Quantize, RunConfig
from harness.records.plan import PlanIssue


def software_issues(run: RunConfig, target: PlanTarget) -> list[PlanIssue]:
    issues: list[PlanIssue] = []
    on_gpu = run.device is Device.cuda
    if run.cuda_graphs and not on_gpu:
        issues.append(PlanIssue(severity="blocker", what="CUDA graphs need a CUDA device",
                                remedy="set `cuda_graphs: off` for CPU runs", short="CUDA graphs need CUDA"))
    if not on_gpu:
        return issues
    if not target.has_gpu:
        issues.append(PlanIssue(severity="blocker", what=f"no GPU on {target.label}",
                                remedy="set `device: cpu`, or plan for a GPU with --gpu NAME", short="no GPU"))
        return issues
    cc = target.compute_capability or None
    if run.compile:
        support = compiler.compile_support(target.os, cc)
        if not support.ok:
            where = "on Windows" if target.os.startswith("win") else f"on cc {cc}"
            issues.append(PlanIssue(severity="blocker", what=f"torch.compile: {support.why} ({target.gpu_name})",
                                    remedy=support.remedy, short=f"compile: no Triton {where}"))
    if cc and target.arch_list and not wheels.build_covers(cc, target.arch_list):
        arch = wheels.sm(cc)
        built = " ".join(a for a in target.arch_list if a.startswith(("sm_", "compute_")))
        issues.append(PlanIssue(
            severity="blocker",
            what=f"the torch build has kernels for {built}, not {arch} ({target.gpu_name}): 'no kernel image is "
                 "available'",
            remedy=wheels.arch_remedy(cc), short=f"torch has no {arch} kernels"))
    if run.dtype is DType.bfloat16 and cc and not compiler.bf16_support(cc).ok:
        issues.append(PlanIssue(severity="warning", what=f"{target.gpu_name}: {compiler.bf16_support(cc).why}",
                                remedy=compiler.bf16_support(cc).remedy, short="no native bf16"))
    if run.quantize is Quantize.int8 and cc and not compiler.int8_support(cc).ok:
        issues.append(PlanIssue(severity="warning", what=compiler.int8_support(cc).why,
                                remedy=compiler.int8_support(cc).remedy, short="int8 without fast kernels"))
    if run.quantize.harness_only:  # the session skips these runs for the same reason (run_rules.quantize_skip)
        ok, why = cuda_support(run.quantize.value, cc)
        if cc and not ok:
            issues.append(PlanIssue(severity="blocker", what=f"quantize: {run.quantize.value} on {target.gpu_name}: {why}",
                                    remedy="use `quantize: nf4` (cc 6.0+) or `int8`, or a GPU of cc 8.9+",
                                    short=f"no {run.quantize.value} kernels on cc {cc}"))
    if run.cuda_graphs and target.os == "wsl" and WSL_BLACKWELL_GRAPHS in wsl_hazards(target.wsl_release, cc):
        issues.append(PlanIssue(severity="warning", what=f"{WSL_BLACKWELL_GRAPHS.what} ({WSL_BLACKWELL_GRAPHS.source})",
                                remedy=WSL_BLACKWELL_GRAPHS.fix, short="WSL2 < 2.7: graph capture may crash"))
    if run.offload is Offload.cpu and target.unified:
        issues.append(PlanIssue(severity="warning",
                                what=f"{target.gpu_name} has unified memory: offloading to the CPU frees nothing, "
                                     "the host's share comes out of the same pool",
                                remedy="use `offload: none` (and `quantize: int8` if the pool is too small)",
                                short="offload pointless on unified memory"))
    return issues

"""Does the software stack fit the target? Triton vs compute capability and OS, bf16, int8, kernels."""

from __future__ import annotations

from harness.diagnosis.signatures import CU126_WHEEL, CU128_WHEEL
from harness.plan.target import PlanTarget
from harness.records.plan import PlanIssue
from harness.scenario.model import Device, DType, Quantize, RunConfig


def _cc(target: PlanTarget) -> tuple[int, int] | None:
    if not target.compute_capability:
        return None
    major, minor = target.compute_capability.split(".")
    return int(major), int(minor)


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
    cc = _cc(target)
    if run.compile and target.os == "windows":
        issues.append(PlanIssue(severity="blocker", what="torch.compile needs Triton, which is Linux-only",
                                remedy="set `compile: off` (NO_TORCH_COMPILE=1) or run under WSL2/Linux",
                                short="compile: no Triton on Windows"))
    if run.compile and cc is not None and cc < (7, 0):
        issues.append(PlanIssue(severity="blocker",
                                what=f"torch.compile needs Triton, which needs compute capability >= 7.0; "
                                     f"{target.gpu_name} is {target.compute_capability}",
                                remedy="set `compile: off` (NO_TORCH_COMPILE=1) on this GPU",
                                short=f"compile: Triton needs cc >= 7.0, not {target.compute_capability}"))
    if cc is not None and target.arch_list:
        built = [int(a.split("_")[1]) for a in target.arch_list if a.startswith("sm_")]
        if built and not any(sm // 10 == cc[0] for sm in built):
            old = cc < (7, 0)
            issues.append(PlanIssue(
                severity="blocker",
                what=f"the installed torch has kernels for {' '.join(a for a in target.arch_list if a.startswith('sm_'))}"
                     f", not sm_{cc[0]}{cc[1]} ({target.gpu_name}): 'no kernel image is available'",
                remedy=(f"{CU126_WHEEL} (cu128 wheels no longer ship Pascal kernels)" if old
                        else f"{CU128_WHEEL} (Blackwell needs CUDA 12.8 builds)"),
                short=f"installed torch has no sm_{cc[0]}{cc[1]} kernels"))
    if run.dtype is DType.bfloat16 and cc is not None and cc < (8, 0):
        issues.append(PlanIssue(severity="warning",
                                what=f"{target.gpu_name} (cc {target.compute_capability}) has no bf16 tensor cores: "
                                     "bf16 is emulated and slow, or unsupported by some kernels",
                                remedy="use `dtype: float16` on this GPU", short="no native bf16"))
    if run.quantize is Quantize.int8 and cc is not None and cc < (7, 5):
        issues.append(PlanIssue(severity="warning",
                                what=f"bitsandbytes int8 matmul has no fast kernel below cc 7.5 "
                                     f"({target.compute_capability}): it falls back to dequantise + fp16",
                                remedy="expect int8 to save memory, not time, on this GPU",
                                short="int8 without fast kernels"))
    return issues

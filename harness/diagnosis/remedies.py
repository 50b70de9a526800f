"""Causes and remedies for the signature table: each is a function of the match and the context.

Every pip command and every compatibility rule comes from harness.knowledge, so a GTX 1080 Ti is
told cu126 here exactly as the probe and the planner tell it.
"""

from __future__ import annotations

import re
from typing import Callable

from harness.diagnosis.context import Context, Found
from harness.knowledge import compiler, drivers, platforms, wheels
from harness.knowledge.models import needs_gib, weights_gib

GIB = 2**30
Explain = Callable[[Found, Context], str]


def const(text: str) -> Explain:
    return lambda f, ctx: text


def _size(text: str) -> float:
    """'1.50 GiB' / '20.00 MiB' / '4294967296 bytes' -> GiB."""
    number, unit = re.match(r"([\d.]+)\s*(\w+)", text).groups()  # type: ignore[union-attr]
    scale = {"B": 1, "bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}.get(unit, 1)
    return float(number) * scale / GIB


def _gpu_label(ctx: Context) -> str:
    if ctx.gpu.name and ctx.cc:
        return f"{ctx.gpu.name} ({wheels.sm(ctx.cc)})"
    return ctx.gpu.name or (wheels.sm(ctx.cc) if ctx.cc else "this GPU")


# -- architecture ---------------------------------------------------------------------------------

def kernel_cause(f: Found, ctx: Context) -> str:
    built = re.search(r"supports CUDA capabilities ((?:(?:sm|compute)_\d+ ?)+)", f.text)
    have = f" (the installed torch has kernels for {built.group(1).strip()})" if built else ""
    if not built and ctx.gpu.arch_list:
        have = f" (the installed torch has kernels for {' '.join(ctx.gpu.arch_list)})"
    cause = f"the installed torch has no kernels for {_gpu_label(ctx)}{have}"
    if ctx.symptom:
        cause += (f"; the '{ctx.symptom}' that followed is a symptom of the missing kernels (every CUDA kernel launch "
                  "fails), not the problem itself")
    return cause


def kernel_remedy(f: Found, ctx: Context) -> str:
    if ctx.cc:
        return wheels.arch_remedy(ctx.cc)
    return (f"install a torch wheel with kernels for this GPU: Blackwell (RTX 50xx, B200, sm_100/sm_120) needs "
            f"{wheels.pip_install('cu128')} (torch >= 2.7); Pascal (GTX 10xx, sm_6x) needs "
            f"{wheels.pip_install('cu126')}; `harness diagnose --gpu NAME` gives the exact command")


# -- compile toolchain ----------------------------------------------------------------------------

def triton_cause(f: Found, ctx: Context) -> str:
    if re.search(r"is not defined for option 'gpu-name'", f.quote):
        return "this Triton's ptxas predates the GPU's architecture (Blackwell needs Triton 3.3+, torch >= 2.7)"
    if ctx.cc and not compiler.compile_support("linux", ctx.cc).ok:
        return f"torch.compile needs Triton, which needs compute capability >= 7.0; {_gpu_label(ctx)} is {ctx.cc}"
    if ctx.os == "windows" or "Windows" in f.quote:
        return "torch.compile's CUDA backend needs Triton, which is Linux-only (no official Windows release)"
    return "torch.compile needs a working Triton installation, which is missing or broken"


def triton_remedy(f: Found, ctx: Context) -> str:
    if re.search(r"is not defined for option 'gpu-name'", f.quote):
        return f"{wheels.pip_install('cu128')} (its Triton knows sm_120), or {compiler.COMPILE_OFF}"
    if ctx.cc and not compiler.compile_support("linux", ctx.cc).ok:
        return compiler.compile_support("linux", ctx.cc).remedy
    if ctx.os == "windows" or "Windows" in f.quote:
        return compiler.compile_support("windows", ctx.cc).remedy
    return (f"{compiler.COMPILE_OFF}; or reinstall torch from the official index on Linux ({wheels.pip_install('cu128')}), "
            "which brings the Triton it was built with")


def toolchain_cause(f: Found, ctx: Context) -> str:
    quote = f.quote
    if "cl is not found" in quote or "cl.exe" in quote:
        return "torch.compile (inductor) needs the MSVC compiler `cl` on PATH on Windows, and it is not there"
    if "lcuda" in quote or "libcuda" in quote:
        return ("Triton links its launcher against libcuda.so (the driver library) and the linker cannot find it "
                "(WSL keeps it in /usr/lib/wsl/lib; containers and CUDA installs often ship only libcuda.so.1)")
    return "torch.compile (inductor/Triton) needs a C/C++ compiler and none works here (a slim container image?)"


def toolchain_remedy(f: Found, ctx: Context) -> str:
    quote = f.quote
    if "cl is not found" in quote or "cl.exe" in quote:
        return ("install Visual Studio Build Tools (C++ workload) and start from the 'x64 Native Tools Command Prompt' "
                "(or call vcvarsall.bat x64 first); or " + compiler.COMPILE_OFF)
    if "lcuda" in quote or "libcuda" in quote:
        return ("point Triton at the driver library: export TRITON_LIBCUDA_PATH=/usr/lib/wsl/lib on WSL, or the "
                "folder of libcuda.so.1 (ldconfig -p | grep libcuda) elsewhere, and run `sudo ldconfig`; or "
                "symlink libcuda.so.1 to libcuda.so there; or " + compiler.COMPILE_OFF)
    return f"apt-get install -y gcc g++ (build-essential) in the image; or {compiler.COMPILE_OFF}"


# -- driver, libraries, CPU-only torch ------------------------------------------------------------

def driver_cause(f: Found, ctx: Context) -> str:
    found = re.search(r"found version (\d+)", f.text)
    if found:
        version = int(found.group(1))
        return (f"the NVIDIA driver supports CUDA {version // 1000}.{(version % 1000) // 10} but this torch was built "
                "for a newer CUDA runtime (minor-version compatibility does not cross major versions)")
    if "PTX" in f.quote:
        return "the driver is older than the CUDA toolkit that produced this PTX, so it cannot JIT-compile it"
    return "the NVIDIA driver is older than the CUDA runtime of this torch build"


def driver_remedy(f: Found, ctx: Context) -> str:
    windows = ctx.os == "windows"
    cu128, cu126 = drivers.driver_for("12.8", windows), drivers.driver_for("12.6", windows)
    return (f"update the NVIDIA driver (cu128 wheels need {cu128} or newer, cu126 wheels {cu126}; check with "
            "nvidia-smi); if the driver cannot change, install a torch wheel whose CUDA the driver supports "
            "(`harness probe` compares them)")


def library_cause(f: Found, ctx: Context) -> str:
    quote = f.quote
    if "nccl" in quote.lower():
        return ("libtorch_cuda was loaded with a different NCCL than the one it was built with (another NCCL on "
                "LD_LIBRARY_PATH or installed by another package)")
    if "cudnn" in quote.lower():
        return "cuDNN could not be loaded: missing, or a different cuDNN version shadows the one torch expects"
    if re.search(r"\.so\.13", quote) or "cu13" in quote:
        return "CUDA 12 and CUDA 13 libraries are mixed in one environment (cu12 and cu13 wheels)"
    return ("a CUDA library from elsewhere (system CUDA, LD_LIBRARY_PATH, another wheel) shadows the one this "
            "torch ships in its nvidia-* wheels: " + quote[:160])


def library_remedy(f: Found, ctx: Context) -> str:
    quote = f.quote.lower()
    base = ("reinstall torch so its nvidia-* wheels match (pip install --force-reinstall the same torch version "
            "from its index) and keep other CUDA copies off LD_LIBRARY_PATH (unset LD_LIBRARY_PATH to test)")
    if "nccl" in quote:
        return ("remove the other NCCL (pip list | grep -i nccl; system libnccl on LD_LIBRARY_PATH) so torch loads "
                "its own nvidia-nccl-cu12; " + base)
    if "cudnn" in quote:
        return ("let torch load the cuDNN of its nvidia-cudnn-cu12 wheel: drop other cuDNN folders from "
                "LD_LIBRARY_PATH; a missing libcudnn*.so.8 means the program needs cuDNN 8 (CUDA 11 builds); " + base)
    return ("keep one CUDA major per environment (pip list | grep -E 'nvidia-.*-cu1[23]'), " + base)


def no_cuda_cause(f: Found, ctx: Context) -> str:
    quote = f.quote
    if "not compiled with CUDA" in quote:
        return "this torch cannot use a GPU: it is a CPU-only build (a '+cpu' wheel or the default macOS/Windows wheel)"
    if ctx.machine and ctx.machine.cuda_unavailable_reason:
        return "this torch cannot use a GPU here: " + ctx.machine.cuda_unavailable_reason
    if "NVIDIA driver" in quote:
        return ("torch found no NVIDIA driver: none is installed, or the process cannot see it (a container started "
                "without the GPU, a VM without passthrough)")
    return "this torch cannot use a GPU here: " + quote[:200]


def no_cuda_remedy(f: Found, ctx: Context) -> str:
    harness_hint = "; or set `device: cpu`" if ctx.run is not None else ""
    if "not compiled with CUDA" in f.quote or (ctx.run is not None and "torch.cuda.is_available" not in f.quote
                                                 and "NVIDIA driver" not in f.quote):
        return f"install a CUDA build of torch: {wheels.arch_remedy(ctx.cc)}{harness_hint}"
    return ("install the NVIDIA driver (nvidia-smi must list the GPU); in Docker pass the GPU with `--gpus all` "
            "(NVIDIA Container Toolkit); check CUDA_VISIBLE_DEVICES" + harness_hint)


def bf16_cause(f: Found, ctx: Context) -> str:
    if ctx.cc:
        return compiler.bf16_support(ctx.cc).why if not compiler.bf16_support(ctx.cc).ok else \
            "cuBLAS refused this matmul's data type on this GPU"
    return "the GPU has no bf16 support in the kernels that were called (bf16 needs compute capability 8.0)"


def bf16_remedy(f: Found, ctx: Context) -> str:
    return "use float16 on this GPU (`dtype: float16` in the harness; torch_dtype=torch.float16 elsewhere)"


# -- memory ---------------------------------------------------------------------------------------

def cuda_oom_cause(f: Found, ctx: Context) -> str:
    text = f.text
    asked = re.search(r"Tried to allocate ([\d.]+ \w+)|Requested\s*: ([\d.]+ \w+)", text)
    total = re.search(r"total capacity of ([\d.]+ \w+)|\(GPU \d+; ([\d.]+ \w+) total capacity|Device limit\s*: ([\d.]+ \w+)",
                      text)
    free = re.search(r"of which ([\d.]+ \w+) is free|([\d.]+ \w+) free;|Free \(according to CUDA\): ([\d.]+ \w+)", text)
    parts = []
    for found, label in ((asked, "asked for"), (free, "with"), (total, "of")):
        if found:
            value = next(g for g in found.groups() if g)
            parts.append(f"{label} {_size(value):.2f} GiB{' free' if label == 'with' else ''}")
    cause = "the GPU ran out of memory" + (": " + ", ".join(parts) if parts else "")
    spec = ctx.gpu.spec
    if spec is not None:
        cause += (f"; {spec.name} has {spec.vram_gib:g} GiB and PersonaPlex 7B needs about {needs_gib(2):.1f} GiB in "
                  f"bf16/fp16 ({weights_gib(2):.1f} GiB of weights), {needs_gib(1):.1f} GiB in int8")
    if "cudaMallocAsync" in text or "would exceed allowed memory" in text:
        cause += " (the cudaMallocAsync allocator backend)"
    return cause


def cuda_oom_remedy(f: Found, ctx: Context) -> str:
    run = ctx.run
    spec = ctx.gpu.spec
    allocator = ("; drop backend:cudaMallocAsync from PYTORCH_CUDA_ALLOC_CONF and use expandable_segments:True"
                 if "cudaMallocAsync" in f.text or "would exceed allowed memory" in f.text
                 else "; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True helps fragmentation")
    others = "; stop other processes on the GPU (nvidia-smi)" if run is None else ""
    if spec is not None and needs_gib(2) > spec.vram_gib:
        alias = spec.aliases[0] if spec.aliases else "NAME"
        return (f"on {spec.name} ({spec.vram_gib:g} GiB) PersonaPlex cannot fit in bf16 or fp16 at all: use int8 with "
                "part of the layers offloaded to the CPU (`quantize: int8` with `offload: cpu`, `offload_fraction: "
                "0.25`; moshi's q8 weights with PersonaPlex's --cpu-offload), which fits but is slower than real time "
                f"over PCIe (`harness plan SCENARIO --gpu {alias}` itemises it), or a GPU with more memory"
                + others + allocator)
    steps = []
    if run is None or run.quantize.value == "none":
        steps.append("int8 weights (`quantize: int8` in the harness; moshi's q8 checkpoints)")
    if run is None or run.offload.value == "none":
        steps.append("offload part of the layers to the CPU (`offload: cpu` with `offload_fraction: 0.5`; "
                     "PersonaPlex's server: --cpu-offload)")
    steps.append("a GPU with more memory (`harness plan SCENARIO --gpu NAME` tells which fit)")
    return "use " + ", or ".join(steps) + others + allocator


def host_oom_cause(f: Found, ctx: Context) -> str:
    asked = re.search(r"allocate (\d+) bytes", f.text)
    what = f": asked for {int(asked.group(1)) / GIB:.2f} GiB more" if asked else ""
    return f"host memory ran out{' in the worker' if ctx.run is not None else ''}{what}"


def host_oom_remedy(f: Found, ctx: Context) -> str:
    return ("give the process more RAM (close other programs, raise host_memory_limit_gib), use `quantize: int8`, "
            "or run on a GPU; `harness plan` predicts host memory per run")


def killed_cause(f: Found | None, ctx: Context) -> str:
    peak = f" after reaching {ctx.peak_rss_bytes / GIB:.1f} GiB" if ctx.peak_rss_bytes else ""
    return f"the process was killed with SIGKILL{peak}: most likely the kernel's out-of-memory killer (host RAM)"


# -- graphs, meta tensors, packages ---------------------------------------------------------------

def capture_cause(f: Found, ctx: Context) -> str:
    cause = ("an operation that CUDA graphs cannot capture ran inside the graphed step (a host sync, a copy to or "
             "from the CPU, work on another device, or weights copied in by CPU offload hooks)")
    if "bitsandbytes" in f.text or (ctx.run is not None and ctx.run.quantize.value == "int8"):
        cause += "; bitsandbytes int8 layers are not capturable"
    return cause


def capture_remedy(f: Found, ctx: Context) -> str:
    remedy = ("set `cuda_graphs: off` for this configuration (moshi: NO_CUDA_GRAPH=1); keep host syncs, CPU offload "
              "and bitsandbytes layers out of graphed code")
    if _on_wsl(f, ctx):
        return f"under WSL2 graph capture itself is the weak point: {platforms.WSL_BLACKWELL_GRAPHS.fix}; else {remedy}"
    return f"{remedy}; a model split across GPUs cannot be captured: {platforms.MULTI_GPU_GRAPHS.fix}"


def _on_wsl(f: Found, ctx: Context) -> bool:
    return ctx.os == "wsl" or "microsoft-standard-WSL" in f.text or "WSL" in f.text


def wsl_unknown_cause(f: Found, ctx: Context) -> str:
    if _on_wsl(f, ctx):
        return (f"{platforms.WSL_BLACKWELL_GRAPHS.what}; this log runs under WSL and failed with cudaErrorUnknown "
                f"({platforms.WSL_BLACKWELL_GRAPHS.source})")
    return "an unknown CUDA error (cudaErrorUnknown): the driver gave no reason; often a driver or virtualisation fault"


def wsl_unknown_remedy(f: Found, ctx: Context) -> str:
    if _on_wsl(f, ctx):
        return platforms.WSL_BLACKWELL_GRAPHS.fix
    return ("run `nvidia-smi` and the failing step again with CUDA_LAUNCH_BLOCKING=1; update the NVIDIA driver; if it "
            "happens only with CUDA graphs, set `cuda_graphs: off` (NO_CUDA_GRAPH=1)")


def short_audio_cause(f: Found, ctx: Context) -> str:
    if re.search(r"load_voice_prompt|moshi|personaplex", f.text, re.IGNORECASE):
        return f"{platforms.SHORT_VOICE_PROMPT.what} ({platforms.SHORT_VOICE_PROMPT.source})"
    return ("pyloudnorm measured a clip shorter than its 400 ms block (the loudness standard's gating block); "
            "NVIDIA's server fails the same way on a voice prompt under 400 ms")


def missing_package_cause(f: Found, ctx: Context) -> str:
    name = "accelerate" if "accelerate" in f.quote.lower() else "bitsandbytes" if "bitsandbytes" in f.quote.lower() \
        else (re.search(r"No module named '([\w.]+)'", f.quote) or [None, "a package"])[1]
    use = {"accelerate": " (needed for CPU offload / device_map)", "bitsandbytes": " (needed for int8)"}.get(name, "")
    return f"{name} is not installed in the environment that ran this{use}"


def missing_package_remedy(f: Found, ctx: Context) -> str:
    quote = f.quote.lower()
    if "accelerate" in quote:
        return "pip install accelerate in the same environment (python -m pip, not another pip); or `offload: none`"
    if "bitsandbytes" in quote:
        return "pip install 'bitsandbytes>=0.45,<0.50' in the same environment (Linux + CUDA); or `quantize: none`"
    found = re.search(r"No module named '([\w.]+)'", f.quote)
    if found and found.group(1) == "torch":
        return f"install torch in the environment that runs it: {wheels.arch_remedy(ctx.cc)}"
    return f"pip install {found.group(1).split('.')[0] if found else 'the missing package'} in the same environment"

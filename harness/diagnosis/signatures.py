"""Known failures of PersonaPlex / Moshi deployments: one table, matched against the worker's error.

Each signature is a regular expression over the error text (exception type and message, then the
stderr tail) and functions that turn the match and the run's context into a cause and an exact
remedy. Add a failure by adding a row; the first matching row wins, so specific rows come first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from harness.records.machine import Machine
from harness.scenario.model import RunConfig

# moshi 0.2.13 needs torch < 2.10; cu128 builds cover Blackwell (sm_120), cu126 builds still carry Pascal (sm_61).
CU128_WHEEL = "pip install 'torch>=2.7,<2.10' --index-url https://download.pytorch.org/whl/cu128"
CU126_WHEEL = "pip install 'torch>=2.7,<2.10' --index-url https://download.pytorch.org/whl/cu126"
CUDA_WHEEL = CU128_WHEEL
GIB = 2**30


@dataclass(frozen=True)
class Context:
    run: RunConfig
    machine: Optional[Machine]
    peak_rss_bytes: Optional[int] = None


Explain = Callable[[re.Match, Context], str]


@dataclass(frozen=True)
class Signature:
    kind: str
    pattern: re.Pattern
    cause: Explain
    remedy: Explain


def _size(text: str) -> float:
    """'1.50 GiB' / '20.00 MiB' / '4294967296 bytes' -> GiB."""
    number, unit = re.match(r"([\d.]+)\s*(\w+)", text).groups()  # type: ignore[union-attr]
    scale = {"B": 1, "bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}.get(unit, 1)
    return float(number) * scale / GIB


def _cuda_oom_cause(m: re.Match, ctx: Context) -> str:
    text = m.string
    asked = re.search(r"Tried to allocate ([\d.]+ \w+)", text)
    total = re.search(r"total capacity of ([\d.]+ \w+)|\(GPU \d+; ([\d.]+ \w+) total capacity", text)
    free = re.search(r"of which ([\d.]+ \w+) is free|([\d.]+ \w+) free;", text)
    parts = ["the GPU ran out of memory"]
    if asked:
        parts.append(f"asked for {_size(asked.group(1)):.2f} GiB")
    if free:
        parts.append(f"with {_size(free.group(1) or free.group(2)):.2f} GiB free")
    if total:
        parts.append(f"of {_size(total.group(1) or total.group(2)):.2f} GiB")
    return " ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if parts[1:] else "")


def _oom_remedy(m: re.Match, ctx: Context) -> str:
    steps = []
    if ctx.run.quantize.value == "none":
        steps.append("`quantize: int8` (halves the weights)")
    if ctx.run.offload.value == "none":
        steps.append("`offload: cpu` with `offload_fraction: 0.5`")
    steps.append("a GPU with more memory (`harness plan SCENARIO --gpu NAME` tells which fit)")
    return "use " + ", or ".join(steps) + "; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True helps fragmentation"


def _host_oom_cause(m: re.Match, ctx: Context) -> str:
    asked = re.search(r"allocate (\d+) bytes", m.string)
    what = f": asked for {int(asked.group(1)) / GIB:.2f} GiB more" if asked else ""
    return f"host memory ran out in the worker{what}"


def _host_oom_remedy(m: re.Match, ctx: Context) -> str:
    return ("give the worker more RAM (close other programs, raise host_memory_limit_gib), use `quantize: int8`, "
            "or run on a GPU; `harness plan` predicts host memory per run")


def _kernel_cause(m: re.Match, ctx: Context) -> str:
    sm = re.search(r"capability (sm_\d+)", m.string)
    gpu = sm.group(1) if sm else "this GPU's architecture"
    built = re.search(r"supports CUDA capabilities ([\w ]+)\.", m.string)
    have = f" (it has {built.group(1)})" if built else ""
    return f"the installed torch has no kernels for {gpu}{have}"


def _triton_cause(m: re.Match, ctx: Context) -> str:
    cc = re.search(r"CUDA capability (\d+\.\d+)", m.string)
    if cc:
        return f"torch.compile needs Triton, which needs compute capability >= 7.0; this GPU is {cc.group(1)}"
    if "Windows" in m.string:
        return "torch.compile needs Triton, which is Linux-only"
    return "torch.compile needs a working Triton installation, which is missing or broken"


def _killed_cause(m: re.Match, ctx: Context) -> str:
    peak = f" after reaching {ctx.peak_rss_bytes / GIB:.1f} GiB" if ctx.peak_rss_bytes else ""
    return f"the worker was killed with SIGKILL{peak}: most likely the kernel's out-of-memory killer (host RAM)"


def _const(text: str) -> Explain:
    return lambda m, ctx: text


SIGNATURES: list[Signature] = [
    Signature("int8_scale_dtype",
              re.compile(r"Expected `?weight_scb`? to have type float, but got (\w+)"),
              lambda m, ctx: f"the int8 scales (weight_scb) were cast to {m.group(1)} after quantisation: moshi's "
                             "QLinear needs them in float32 (the q8 dtype bug)",
              _const("quantise last and never cast the model afterwards: in the harness use `quantize: int8` "
                     "with any dtype; in your own code call replace_linear_with_qlinear after .to(dtype), or load "
                     "the q8 checkpoint without converting its dtype")),
    Signature("cuda_oom",
              re.compile(r"CUDA out of memory|OutOfMemoryError: CUDA|CUDA error: out of memory"),
              _cuda_oom_cause, _oom_remedy),
    Signature("oom",
              re.compile(r"DefaultCPUAllocator: (?:not enough memory|can't allocate memory)|\bMemoryError\b|"
                         r"Cannot allocate memory"),
              _host_oom_cause, _host_oom_remedy),
    Signature("no_kernel_image",
              re.compile(r"no kernel image is available for execution on the device|"
                         r"with CUDA capability sm_\d+ is not compatible with the current PyTorch installation"),
              _kernel_cause,
              _const(f"{CUDA_WHEEL} (Blackwell sm_120 needs a torch built with CUDA 12.8 or newer; check with "
                     "`harness probe`)")),
    Signature("triton",
              re.compile(r"triton GPU compiler|Triton only supports devices of CUDA Capability|"
                         r"Cannot find a working triton installation|No module named 'triton'|"
                         r"Windows not yet supported for torch\.compile|TritonMissing"),
              _triton_cause,
              _const("set `compile: off` (NO_TORCH_COMPILE=1): moshi then runs eager, CUDA graphs still work")),
    Signature("cuda_graph_shape",
              re.compile(r"every call must be done with exactly the same shapes|had shape .* but got shape"),
              _const("a CUDA-graphed function was called with a new input shape (batch size or sequence changed "
                     "after capture)"),
              _const("keep the batch size fixed for the session, or set `cuda_graphs: off` (NO_CUDA_GRAPH=1)")),
    Signature("cuda_graph_capture",
              re.compile(r"operation not permitted when stream is capturing|"
                         r"cudaErrorStreamCaptureUnsupported|CUDA graph capture"),
              _const("an operation that CUDA graphs cannot capture ran inside the graphed step (for example "
                     "weights copied in by CPU offload hooks)"),
              _const("set `cuda_graphs: off` (NO_CUDA_GRAPH=1) for this configuration")),
    Signature("meta_tensor",
              re.compile(r"Cannot copy out of meta tensor|is not on the expected device meta|"
                         r"cannot be called on meta tensors|Tensor\.item\(\) cannot be called on meta"),
              _const("a tensor was still on the `meta` device: an offloaded layer's weights or its streaming state "
                     "(moshi allocates the KV cache on the device of the layer's weights)"),
              _const("create moshi's streaming state with the layer's weights loaded (the harness's offload does); "
                     "dispatch with preload_module_classes=['StreamingTransformerLayer']; or `offload: none`")),
    Signature("no_cuda",
              re.compile(r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|CudaUnavailableError|"
                         r"no CUDA-capable device is detected|CUDA driver version is insufficient"),
              lambda m, ctx: "this torch cannot use a GPU here: "
                             + (ctx.machine.cuda_unavailable_reason if ctx.machine and ctx.machine.cuda_unavailable_reason
                                else m.group(0)),
              _const(f"install a CUDA build of torch ({CUDA_WHEEL}) and an NVIDIA driver, or set `device: cpu`")),
    Signature("nonfinite",
              re.compile(r"NonFiniteAudioError|non-finite|probability tensor contains either `inf`, `nan`"),
              lambda m, ctx: f"the model produced NaN/Inf in {ctx.run.dtype.value}: numerical overflow",
              _const("use `dtype: bfloat16` (or float32); float16 overflows where bf16 does not")),
    Signature("bf16_unsupported",
              re.compile(r"CUBLAS_STATUS_NOT_SUPPORTED|bf16 is not supported|BFloat16 is not supported"),
              _const("this GPU has no bf16 support in the kernels torch called"),
              _const("set `dtype: float16` on this GPU (compute capability below 8.0)")),
    Signature("bitsandbytes",
              re.compile(r"bitsandbytes.*(?:compiled without GPU support|CUDA Setup failed)|"
                         r"No module named 'bitsandbytes'"),
              _const("bitsandbytes cannot run int8 on this device"),
              _const("pip install 'bitsandbytes>=0.45,<0.50' (Linux, CUDA); or set `quantize: none`")),
    Signature("checkpoint",
              re.compile(r"CheckpointError|SafetensorError|HeaderTooLarge|InvalidHeader"),
              lambda m, ctx: "the checkpoint could not be read as the scenario's preset: "
                             + m.string.split("\n", 1)[0][:300],
              _const("point `weights:` at PersonaPlex's model.safetensors (or its folder) and use the preset of "
                     "that checkpoint (personaplex-7b); only safetensors files are read")),
]

TIMEOUT = "timeout"
KILLED = "killed_by_os"
UNKNOWN = "unknown"
KILLED_CAUSE = _killed_cause

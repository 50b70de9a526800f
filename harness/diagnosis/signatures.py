"""Known failures of PersonaPlex / Moshi / PyTorch deployments: one table, matched against any log.

Each row is a kind, the regular expressions that recognise it (written for the plain message; the
engine matches them with whitespace ignored, so terminal-wrapped lines still match), whether the
message is a warning by nature, and the functions that turn a match into a cause and an exact remedy.
Rows that are the root of other failures (a torch build without the GPU's architecture) say which
kinds they explain. Add a failure by adding a row; tests/data/diagnosis/ holds the real logs each
row is tested on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from harness.diagnosis import remedies as r
from harness.diagnosis.text import squash_pattern
from harness.knowledge import platforms

Role = Literal["error", "warning"]


@dataclass(frozen=True)
class Signature:
    kind: str
    patterns: tuple[re.Pattern, ...]
    cause: r.Explain
    remedy: r.Explain
    role: Role = "error"
    explains: frozenset[str] = frozenset()  # kinds that are only symptoms of this one


def _sig(kind: str, patterns: tuple[str, ...], cause: r.Explain, remedy: r.Explain, role: Role = "error",
         explains: tuple[str, ...] = (), flags: int = 0) -> Signature:
    compiled = tuple(re.compile(squash_pattern(p), flags) for p in patterns)
    return Signature(kind, compiled, cause, remedy, role, frozenset(explains))


_NO_KERNEL = "no_kernel_image"
SIGNATURES: list[Signature] = [
    _sig("int8_scale_dtype",
         (r"Expected `?weight_scb`? to have type float, but got ((?:torch\.)?(?:bfloat16|float16|half))",),
         lambda f, ctx: f"the int8 scales (weight_scb) were cast to {f.match.group(1)} after quantisation: moshi's "
                        "QLinear needs them in float32 (the q8 dtype bug)",
         r.const("quantise last and never cast the model afterwards: in the harness use `quantize: int8` with any "
                 "dtype; in your own code call replace_linear_with_qlinear after .to(dtype), or load the q8 "
                 "checkpoint without converting its dtype")),
    _sig("moshi_package",
         (r"KeyError: '(dep_q|demux_second_stream|depformer_\w+?|text_card_out|extra_heads_\w+?)'",
          r"size mismatch for (depformer[\w.]*?|linears\.\d+\.weight|depformer_in[\w.]*?)[:,] copying a param",
          r"(?:Unexpected|Missing) key\(s\) in state_dict(?: for LMModel)?: \"(depformer[\w.]*?)\""),
         lambda f, ctx: "the moshi package does not match the checkpoint: PersonaPlex's weights (dep_q=16, NVIDIA's "
                        f"layout) loaded by PyPI moshi, or a Moshi checkpoint by NVIDIA's fork ({f.match.group(1)})",
         r.const("run PersonaPlex with the moshi it ships: clone https://github.com/NVIDIA/personaplex and "
                 "`pip install ./moshi` in its own venv (moshi-personaplex, torch<2.5: no sm_120 kernels); or let "
                 "the harness load it with PyPI moshi 0.2.13 (`preset: personaplex-7b`, `weights: /path/to/model."
                 "safetensors`), which maps NVIDIA's dep_q=16 layout")),
    _sig(_NO_KERNEL, (r"with CUDA capability (sm_\d+) is not compatible with the current PyTorch installation",),
         r.kernel_cause, r.kernel_remedy, role="warning",
         explains=("cuda_oom", _NO_KERNEL, "bf16_unsupported", "cuda_graph_capture")),
    _sig(_NO_KERNEL, (r"no kernel image is available for execution on the device", r"cudaErrorNoKernelImageForDevice",
                      r"CUDA_ERROR_NO_BINARY_FOR_GPU"),
         r.kernel_cause, r.kernel_remedy),
    _sig("driver_too_old",
         (r"The NVIDIA driver on your system is too old \(found version (\d+)\)",
          r"CUDA driver version is insufficient for CUDA runtime version", r"cudaErrorInsufficientDriver",
          r"the provided PTX was compiled with an unsupported toolchain", r"CUDA_ERROR_UNSUPPORTED_PTX_VERSION"),
         r.driver_cause, r.driver_remedy, explains=("no_cuda",)),
    _sig("no_cuda", (r"Torch not compiled with CUDA enabled", r"Found no NVIDIA driver on your system",
                     r"CudaUnavailableError", r"no CUDA-capable device is detected",
                     r"torch\.cuda\.is_available\(\)`? (?:is|returns) `?False"),
         r.no_cuda_cause, r.no_cuda_remedy),
    _sig("triton", (r"too old to be supported by the triton GPU compiler",
                    r"Triton only supports devices of CUDA Capability >= 7\.0",
                    r"Cannot find a working triton installation", r"TritonMissing", r"No module named 'triton'",
                    r"Windows not yet supported for torch\.compile", r"No matching distribution found for triton",
                    r"Value 'sm_\d+a?' is not defined for option 'gpu-name'", r"Triton not found"),
         r.triton_cause, r.triton_remedy),
    _sig("inductor_toolchain", (r"InvalidCxxCompiler", r"No working C\+\+ compiler found",
                                r"Failed to find C compiler", r"Compiler: cl is not found",
                                r"libcuda\.so cannot found", r"cannot find -lcuda"),
         r.toolchain_cause, r.toolchain_remedy),
    _sig("library_mismatch",
         (r"undefined symbol: ?(nccl\w+)", r"undefined symbol: ?(\w+), version (lib\w+\.so\.\d+)",
          r"undefined symbol in (lib\w+\.so\.\d+)", r"Could not load library (libcudnn\w*\.so\.\d+)",
          r"Unable to load any of \{(libcudnn\w*\.so[\w.]*)", r"Cannot load symbol (cudnn\w+)",
          r"(lib(?:cudart|cublas\w*|cufft|cusparse\w*|curand|nvrtc|nvJitLink|cupti|nccl|cudnn\w*)\.so\.\d+): cannot "
          r"open shared object file"),
         r.library_cause, r.library_remedy, flags=re.IGNORECASE),
    _sig("bf16_unsupported",
         (r"CUBLAS_STATUS_NOT_SUPPORTED when calling `?cublas\w*\(.{0,400}?CUDA_R_16BF",
          r"Feature '\.bf16' requires \.target sm_80", r"Feature 'cvt(?: with)? ?\.f32\.bf16' requires",
          r"Feature 'cvt\.bf16\.f32' requires", r"(?:bf16|BFloat16) is not supported",
          r"CUBLAS_STATUS_NOT_SUPPORTED"),
         r.bf16_cause, r.bf16_remedy),
    _sig("cuda_oom", (r"CUDA out of memory", r"OutOfMemoryError: CUDA", r"CUDA error: out of memory",
                      r"CUDA_ERROR_OUT_OF_MEMORY", r"cudaErrorMemoryAllocation",
                      r"Allocation on device \d+ would exceed allowed memory", r"torch\.OutOfMemoryError",
                      r"cuda\.OutOfMemoryError"),
         r.cuda_oom_cause, r.cuda_oom_remedy),
    _sig("oom", (r"DefaultCPUAllocator: (?:not enough memory|can't allocate memory)", r"(?<![A-Za-z])MemoryError",
                 r"Cannot allocate memory", r"Out of memory: Killed process"),
         r.host_oom_cause, r.host_oom_remedy),
    _sig("cuda_graph_shape", (r"every call must be done with exactly the same shapes", r"had shape .{1,80}? but got shape"),
         r.const("a CUDA-graphed function was called with a new input shape (batch size or sequence changed after "
                 "capture)"),
         r.const("keep the batch size fixed for the session, or set `cuda_graphs: off` (NO_CUDA_GRAPH=1)")),
    _sig("cuda_graph_capture", (r"operation not permitted when stream is capturing", r"cudaErrorStreamCaptureUnsupported",
                                r"operation failed due to a previous error during capture",
                                r"cudaErrorStreamCaptureInvalidated", r"ERROR_STREAM_CAPTURE_\w+",
                                r"capturing stream has unjoined work", r"CUDA graph capture"),
         r.capture_cause, r.capture_remedy),
    _sig("wsl_graph_capture", (r"cudaErrorUnknown",),
         r.wsl_unknown_cause, r.wsl_unknown_remedy),
    _sig("empty_text_prompt",
         (r"_step_text_prompt_core.{0,1500}?TypeError: 'NoneType' object is not iterable",),
         r.const(f"{platforms.EMPTY_TEXT_PROMPT.what} ({platforms.EMPTY_TEXT_PROMPT.source})"),
         r.const(platforms.EMPTY_TEXT_PROMPT.fix)),
    _sig("short_voice_prompt", (r"Audio must have length greater than the block size",),
         r.short_audio_cause, r.const(f"{platforms.SHORT_VOICE_PROMPT.fix}; outside PersonaPlex: skip or pad clips "
                                      "under 400 ms before measuring their loudness")),
    _sig("meta_tensor", (r"Cannot copy out of meta tensor", r"is not on the expected device meta",
                         r"cannot be called on meta tensors", r"Tensor\.item\(\) cannot be called on meta",
                         r"is on the meta device", r"weight is on the meta device"),
         r.const("a tensor was still on the `meta` device: an offloaded layer's weights or its streaming state "
                 "(moshi allocates the KV cache on the device of the layer's weights)"),
         r.const("create moshi's streaming state with the layer's weights loaded (the harness's offload does); "
                 "dispatch with preload_module_classes=['StreamingTransformerLayer']; or `offload: none` where the "
                 "model fits")),
    _sig("bitsandbytes", (r"bitsandbytes.{0,200}?(?:compiled without GPU support|CUDA Setup failed)",
                          r"CUDA Setup failed despite GPU being available"),
         r.const("bitsandbytes cannot run int8 or nf4 on this device (its CUDA library did not load)"),
         r.const("pip install 'bitsandbytes>=0.45,<0.50' (Linux, CUDA); or set `quantize: none`")),
    _sig("missing_package", (r"requires Accelerate", r"requires `accelerate`", r"requires the 'accelerate' package",
                             r"No module named 'accelerate'",
                             r"requires the latest version of bitsandbytes", r"Please install bitsandbytes",
                             r"No module named 'bitsandbytes'",
                             r"No module named '(torch|moshi|sphn|sentencepiece|rustymimi)'"),
         r.missing_package_cause, r.missing_package_remedy),
    _sig("transformers_api", (r"_unmask_unattended expects a float expanded_mask",
                              r"'StaticSlidingWindowLayer' object has no attribute",
                              r"'(?:DynamicCache|StaticCache|\w*Layer)' object has no attribute 'max_batch_size'"),
         r.const("the Hugging Face Transformers port of Moshi/PersonaPlex breaks on transformers 5.0 (attention-mask "
                 "and cache classes changed)"),
         r.const("pin pip install 'transformers<5', or run the native moshi package (moshi.models.loaders: what the "
                 "harness measures) instead of the Transformers port")),
    _sig("build_toolchain", (r"nvcc not found", r"nvcc: command not found", r"Could not find nvcc",
                             r"No CUDA toolkit found", r"CUDA_HOME environment variable is not set"),
         r.const("building a CUDA extension from source (moshi's Rust/CUDA parts, rustymimi) needs the CUDA "
                 "toolkit's nvcc, which is not on PATH"),
         r.const("install the prebuilt wheels instead of building (pip install moshi rustymimi), or install the CUDA "
                 "toolkit (e.g. apt install cuda-toolkit-12-8) so that nvcc is on PATH "
                 "(export PATH=/usr/local/cuda/bin:$PATH "
                 "CUDA_HOME=/usr/local/cuda)")),
    _sig("nonfinite", (r"NonFiniteAudioError", r"non-finite", r"probability tensor contains either `inf`, `nan`"),
         lambda f, ctx: "the model produced NaN/Inf"
                        + (f" in {ctx.run.dtype.value}" if ctx.run is not None else "") + ": numerical overflow",
         r.const("use `dtype: bfloat16` (or float32); float16 overflows where bf16 does not")),
    _sig("checkpoint", (r"CheckpointError", r"SafetensorError", r"HeaderTooLarge", r"InvalidHeader"),
         lambda f, ctx: "the checkpoint could not be read as the scenario's preset: " + f.quote[:300],
         r.const("point `weights:` at PersonaPlex's model.safetensors (or its folder) and use the preset of that "
                 "checkpoint (personaplex-7b); only safetensors files are read")),
]

TIMEOUT = "timeout"
KILLED = "killed_by_os"
UNKNOWN = "unknown"

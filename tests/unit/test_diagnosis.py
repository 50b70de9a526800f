"""Every failure signature, matched against the real error text as users saw it (seeds, torch, moshi)."""

from __future__ import annotations

import pytest

from harness.diagnosis.diagnose import diagnose
from harness.scenario.model import RunConfig, RunDefaults


def _run(**changes) -> RunConfig:
    return RunConfig(name="r", **{**RunDefaults().model_dump(), "device": "cuda", **changes})


# (error type, message, stderr tail, expected kind, words in cause, words in remedy)
CASES = [
    ("RuntimeError", "Expected weight_scb to have type float, but got bfloat16", "",  # seed 001/002, verbatim
     "int8_scale_dtype", "bfloat16", "never cast"),
    ("RuntimeError", "Expected `weight_scb` to have type float, but got bfloat16. When using quantized models, care "
     "should be taken not to change the dtype of the model once initialized.", "",  # moshi 0.2.13's own text
     "int8_scale_dtype", "float32", "quantize: int8"),
    ("OutOfMemoryError", "CUDA out of memory. Tried to allocate 128.00 MiB. GPU 0 has a total capacity of 10.90 GiB of "
     "which 17.38 MiB is free. Including non-PyTorch memory, this process has 10.88 GiB memory in use. Of the allocated "
     "memory 10.51 GiB is allocated by PyTorch, and 189.73 MiB is reserved by PyTorch but unallocated.", "",
     "cuda_oom", "asked for 0.12 GiB, with 0.02 GiB free, of 10.90 GiB", "quantize: int8"),
    ("RuntimeError", "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 10.92 GiB total capacity; 10.13 GiB "
     "already allocated; 17.38 MiB free; 10.27 GiB reserved in total by PyTorch)", "",  # torch < 2.1 wording
     "cuda_oom", "of 10.92 GiB", "offload: cpu"),
    ("", "", "torch.OutOfMemoryError: CUDA out of memory.", "cuda_oom", "GPU ran out of memory", "GPU with more memory"),
    ("RuntimeError", "[enforce fail at alloc_cpu.cpp:124] err == 0. DefaultCPUAllocator: can't allocate memory: you "
     "tried to allocate 8192256 bytes. Error code 12 (Cannot allocate memory)", "", "oom", "host memory", "RAM"),
    ("RuntimeError", "DefaultCPUAllocator: not enough memory: you tried to allocate 4294967296 bytes.", "",
     "oom", "4.00 GiB", "int8"),
    ("RuntimeError", "CUDA error: no kernel image is available for execution on the device\nCUDA kernel errors might "
     "be asynchronously reported at some other API call",
     "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch "
     "installation.\nThe current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90.",
     "no_kernel_image", "sm_120", "cu128"),
    ("BackendCompilerFailed", "backend='inductor' raised:\nRuntimeError: Found NVIDIA GeForce GTX 1080 Ti which is too "
     "old to be supported by the triton GPU compiler, which is used as the backend. Triton only supports devices of "
     "CUDA Capability >= 7.0, but your device is of CUDA capability 6.1", "", "triton", "6.1", "NO_TORCH_COMPILE=1"),
    ("BackendCompilerFailed", "backend='inductor' raised:\nRuntimeError: Cannot find a working triton installation. "
     "Either the package is not installed or it is too old.", "", "triton", "missing or broken", "compile: off"),
    ("RuntimeError", "Windows not yet supported for torch.compile", "", "triton", "Linux-only", "compile: off"),
    ("ValueError", "Argument #0 had shape torch.Size([1, 17, 1]), but got shape torch.Size([2, 17, 1])When using "
     "CUDAGraph, every call must be done with exactly the same shapes. Feel free to deactivate with the env variable "
     "NO_CUDA_GRAPH=1, or the decorator `with no_cuda_graph():`", "", "cuda_graph_shape", "new input shape",
     "NO_CUDA_GRAPH=1"),
    ("RuntimeError", "CUDA error: operation not permitted when stream is capturing", "", "cuda_graph_capture",
     "cannot capture", "cuda_graphs: off"),
    ("RuntimeError", "Tensor on device cpu is not on the expected device meta!", "", "meta_tensor", "meta", "offload"),
    ("NotImplementedError", "Cannot copy out of meta tensor; no data!", "", "meta_tensor", "KV cache",
     "preload_module_classes"),
    ("AssertionError", "Torch not compiled with CUDA enabled", "", "no_cuda", "cannot use a GPU", "cu128"),
    ("CudaUnavailableError", "run asks for CUDA but torch.cuda.is_available() is False (no usable CUDA device)", "",
     "no_cuda", "cannot use a GPU", "device: cpu"),
    ("RuntimeError", "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a "
     "driver from http://www.nvidia.com/Download/index.aspx", "", "no_cuda", "NVIDIA driver", "driver"),
    ("NonFiniteAudioError", "Mimi decoded non-finite audio (NaN/Inf) at frame 12", "", "nonfinite", "float16",
     "bfloat16"),
    ("RuntimeError", "probability tensor contains either `inf`, `nan` or element < 0", "", "nonfinite", "NaN",
     "bfloat16"),
    ("RuntimeError", "CUDA error: CUBLAS_STATUS_NOT_SUPPORTED when calling `cublasGemmEx(...)`", "",
     "bf16_unsupported", "bf16", "float16"),
    ("RuntimeError", "The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers and "
     "GPU quantization are unavailable.", "", "bitsandbytes", "int8", "bitsandbytes"),
    ("CheckpointError", "/m/model.safetensors: 12 weights of the preset are not in the checkpoint", "",
     "checkpoint", "12 weights", "personaplex-7b"),
]


@pytest.mark.parametrize(("etype", "message", "stderr", "kind", "cause_words", "remedy_words"), CASES)
def test_signature(etype: str, message: str, stderr: str, kind: str, cause_words: str, remedy_words: str) -> None:
    run = _run(dtype="float16") if kind == "nonfinite" else _run()
    diagnosis = diagnose(run, error_type=etype, error_message=message, stderr_tail=stderr, exit_code=1)
    assert diagnosis.kind == kind
    assert cause_words in diagnosis.cause, diagnosis.cause
    assert remedy_words in diagnosis.remedy, diagnosis.remedy


def test_timeout_names_the_phase_and_the_fix() -> None:
    d = diagnose(_run(compile=True), timed_out=True, timeout_s=900, last_phase="frames")
    assert d.kind == "timeout" and "900 s while frames" in d.cause and "timeout_s" in d.remedy
    assert "torch.compile" in d.remedy


def test_killed_without_error_is_the_oom_killer() -> None:
    d = diagnose(_run(), signal_name="SIGKILL", peak_rss_bytes=15 * 2**30)
    assert d.kind == "killed_by_os" and "15.0 GiB" in d.cause and "dmesg" in d.remedy


def test_native_crash_and_unknown_keep_what_they_know() -> None:
    assert diagnose(_run(), signal_name="SIGSEGV").kind == "crashed"
    d = diagnose(_run(), error_type="ZeroDivisionError", error_message="division by zero", stderr_tail="tb")
    assert d.kind == "unknown" and "ZeroDivisionError: division by zero" in d.cause and "stderr" in d.remedy


def test_oom_remedy_only_suggests_what_the_run_does_not_do_yet() -> None:
    text = "CUDA out of memory. Tried to allocate 1.00 GiB"
    d = diagnose(_run(quantize="int8", offload="cpu"), error_type="OutOfMemoryError", error_message=text)
    assert "quantize: int8" not in d.remedy and "offload: cpu" not in d.remedy and "more memory" in d.remedy

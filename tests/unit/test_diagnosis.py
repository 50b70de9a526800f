"""Every failure signature, matched against the real error text as users saw it (seeds, torch, moshi)."""

from __future__ import annotations

import pytest

from harness.diagnosis.diagnose import diagnose
from harness.records.config import RunConfig
from harness.records.scenario import RunDefaults


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


# -- the corpus: real logs from public threads, each with the fix its thread found ------------------

from pathlib import Path  # noqa: E402

from harness.diagnosis.context import Context, gpu_from_spec  # noqa: E402
from harness.diagnosis.engine import diagnose_text  # noqa: E402
from harness.knowledge.gpus import find_gpu  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "data" / "diagnosis"


def _corpus_entry(path: Path) -> tuple[dict[str, str], str]:
    _, head, body = path.read_text().split("---\n", 2)
    meta = dict(line.split(": ", 1) for line in head.strip().splitlines())
    return meta, body


def test_corpus_is_real_and_large_enough() -> None:
    files = sorted(CORPUS.glob("*.md"))
    assert len(files) >= 40
    sources = set()
    for path in files:
        meta, body = _corpus_entry(path)
        assert meta["source"].startswith("https://"), path.name
        assert meta["kind"] and meta["remedy"] and meta["fix"] and body.strip(), path.name
        sources.add(meta["source"])
    assert len(sources) == len(files)  # one log per thread


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.md")), ids=lambda p: p.stem)
def test_corpus_log(path: Path) -> None:
    meta, body = _corpus_entry(path)
    ctx = Context()
    if "gpu" in meta:
        spec = find_gpu(meta["gpu"])
        assert spec is not None, meta["gpu"]
        ctx.gpu = gpu_from_spec(spec)
    finding = diagnose_text(body, ctx)
    assert finding.kind == meta["kind"], (finding.kind, finding.cause)
    assert meta["remedy"].lower() in finding.remedy.lower(), finding.remedy
    assert finding.lines, "a finding quotes the lines it rests on"


# -- the seeds' verbatim messages -----------------------------------------------------------------

SEEDS = [
    ("ERROR: AttentionMaskConverter._unmask_unattended expects a float expanded_mask, got a BoolTensor",
     "transformers_api", "transformers<5"),
    ("ERROR: 'StaticSlidingWindowLayer' object has no attribute 'max_batch_size'", "transformers_api", "transformers<5"),
    ("`torch.OutOfMemoryError`", "cuda_oom", "offload"),
    ("`RuntimeError: Expected weight_scb to have type float, but got bfloat16`", "int8_scale_dtype", "never cast"),
    ("- `RuntimeError: CUDA out of memory`", "cuda_oom", "quantize: int8"),
    ("- `nvcc not found`", "build_toolchain", "nvcc"),
    ('### "No module named \'torch\'"', "missing_package", "download.pytorch.org/whl/cu128"),
    ('### "Triton not found"', "triton", "NO_TORCH_COMPILE=1"),
    ("- `torch.cuda.is_available()` returns `False`", "no_cuda", "nvidia-smi"),
]


@pytest.mark.parametrize(("line", "kind", "remedy"), SEEDS)
def test_seed_messages(line: str, kind: str, remedy: str) -> None:
    finding = diagnose_text(line)
    assert finding.kind == kind and remedy in finding.remedy, (finding.kind, finding.remedy)


# -- the engine's rules ---------------------------------------------------------------------------

def _log(name: str) -> str:
    return _corpus_entry(CORPUS / name)[1]


def test_a_warning_never_outranks_the_error_that_killed_the_process() -> None:
    triton_warning = _log("003-chattts-1080ti-triton.md")  # dynamo [WARNING], the process went on
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    finding = diagnose_text(triton_warning + "\n" + oom)
    assert finding.kind == "cuda_oom" and "triton" in finding.also
    assert diagnose_text(oom + "\n" + triton_warning).kind == "cuda_oom"  # a warning printed later still loses


def test_the_final_exception_wins_over_earlier_errors() -> None:
    text = _log("035-pytorch-119932-nccl-symbol.md") + "\n" + _log("012-nunchaku-cuda-error-oom.md")
    assert diagnose_text(text).kind == "cuda_oom"


def test_oom_after_an_architecture_warning_is_an_architecture_problem() -> None:
    finding = diagnose_text(_log("043-yourtts-sm86-then-oom.md"))
    assert finding.kind == "no_kernel_image" and "symptom" in finding.cause and "cuda_oom" in finding.also
    assert any("out of memory" in line for _, line in finding.lines)


def test_terminal_wrapped_lines_still_match() -> None:
    wrapped = ("RuntimeError: CUDA error: no kernel image is avail\nable for execution on the de\nvice\n")
    assert diagnose_text(wrapped).kind == "no_kernel_image"
    boxed = ("│ RuntimeError: Found NVIDIA GeForce GTX 1080 Ti which is too old to be │\n"
             "│ supported by the triton GPU compiler │")
    assert diagnose_text(boxed).kind == "triton"


def test_remedy_depends_on_the_gpu() -> None:
    warning = ("UserWarning: {name} with CUDA capability {sm} is not compatible with the current PyTorch installation.\n"
               "The current PyTorch install supports CUDA capabilities sm_70 sm_75 sm_80 sm_86 sm_90 sm_100 sm_120.\n")
    pascal = diagnose_text(warning.format(name="NVIDIA GeForce GTX 1080 Ti", sm="sm_61"))
    assert pascal.kind == "no_kernel_image" and "whl/cu126" in pascal.remedy and "whl/cu128" not in pascal.remedy
    assert "going away" in pascal.remedy or "retiring" in pascal.remedy
    blackwell = diagnose_text("RuntimeError: CUDA error: no kernel image is available for execution on the device",
                              Context(gpu=gpu_from_spec(find_gpu("rtx5090"))))
    assert "whl/cu128" in blackwell.remedy and ">=2.7" in blackwell.remedy
    told = diagnose_text("CUDA error: no kernel image is available for execution on the device",
                         Context(gpu=gpu_from_spec(find_gpu("gtx1080ti"))))
    assert "whl/cu126" in told.remedy and "whl/cu128" not in told.remedy


def test_unknown_keeps_the_lines_it_looked_at() -> None:
    finding = diagnose_text("starting\nTraceback (most recent call last):\n  File 'a.py'\n"
                            "ZeroDivisionError: division by zero\n")
    assert finding.kind == "unknown" and "ZeroDivisionError" in finding.cause
    assert any("ZeroDivisionError" in line for _, line in finding.lines)


def test_worker_diagnosis_uses_the_probed_gpu() -> None:
    from harness.contract.wire import GpuInfo
    from harness.records.machine import Machine

    machine = Machine(hostname="gpu01", os="Linux", os_release="6", platform="x", cpu_model="x", cpu_cores_logical=8,
                      cpu_cores_physical=4, ram_total_bytes=16 * 2**30, python="3.11", packages={}, cuda_available=True,
                      gpus=[GpuInfo(index=0, name="NVIDIA GeForce GTX 1080 Ti", compute_capability="6.1",
                                    memory_total_bytes=11 * 2**30)],
                      cuda_arch_list=["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], fingerprint="f")
    d = diagnose(_run(), error_type="AcceleratorError",
                 error_message="CUDA error: no kernel image is available for execution on the device", machine=machine)
    assert d.kind == "no_kernel_image" and "whl/cu126" in d.remedy and "sm_61" in d.cause

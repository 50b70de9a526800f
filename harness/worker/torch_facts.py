"""Torch-side machine facts, gathered in a worker so a broken CUDA install is a finding, not a crash.

Raw facts only (what torch says): the parent interprets them with harness.knowledge.
"""

from __future__ import annotations

import platform
import sys
import traceback
import warnings

from harness.contract.wire import GpuInfo, TorchFacts, WorkerError
from harness.worker.flavour import moshi_flavour


def compiled_arch_list(torch) -> list[str]:  # noqa: ANN001 - the torch module
    """The GPU architectures the torch build has kernels for, known even without a GPU."""
    archs = list(torch.cuda.get_arch_list()) if torch.cuda.is_available() else []
    if not archs and torch.version.cuda is not None and hasattr(torch._C, "_cuda_getArchFlags"):
        archs = torch._C._cuda_getArchFlags().split()
    return archs


def _gpu(torch, index: int) -> GpuInfo:  # noqa: ANN001 - the torch module
    props = torch.cuda.get_device_properties(index)
    free = None
    try:
        free, _total = torch.cuda.mem_get_info(index)  # what this process could still allocate (others' use counted)
    except Exception:  # noqa: BLE001 - a device that cannot report it is still a device
        pass
    uuid = str(getattr(props, "uuid", "") or "") or None
    return GpuInfo(index=index, name=props.name, uuid=uuid, compute_capability=f"{props.major}.{props.minor}",
                   memory_total_bytes=int(props.total_memory), memory_free_bytes=int(free) if free is not None else None)


def gather_torch_facts() -> TorchFacts:
    env = {"python": platform.python_version(), "python_executable": sys.executable}
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return TorchFacts(import_error=WorkerError(type=type(exc).__name__, message=str(exc),
                                                   traceback=traceback.format_exc(), phase="import torch"), **env)
    version, flavour = moshi_flavour()
    facts = TorchFacts(torch_version=torch.__version__, torch_cuda_build=torch.version.cuda,
                       arch_list=compiled_arch_list(torch), moshi_version=version, moshi_flavour=flavour, **env)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    facts.cuda_available = available
    if not available:
        if torch.version.cuda is None:
            facts.cuda_unavailable_reason = "this torch build is CPU-only (no CUDA runtime in the wheel)"
        else:
            try:
                torch.cuda.init()
            except Exception as exc:  # noqa: BLE001 - the message is the diagnosis
                facts.cuda_unavailable_reason = str(exc).strip().splitlines()[0]
            else:
                facts.cuda_unavailable_reason = "; ".join(str(w.message) for w in caught) or "no CUDA device"
        return facts
    facts.bf16_supported = bool(torch.cuda.is_bf16_supported())
    facts.gpus = [_gpu(torch, index) for index in range(torch.cuda.device_count())]
    return facts

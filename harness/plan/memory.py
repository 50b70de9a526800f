"""Peak memory of one run, itemised, from the architecture's exact counts (pure functions).

Constants that are not counts were measured on the harness's own workers (a 2-core CPU machine)
and are estimates elsewhere; each says where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.contract.offload import offloaded_layer_names
from harness.contract.quantized import SCHEMES
from harness.contract.wire import ArchitectureFacts, BlockFacts, KVFacts
from harness.records.config import DType, Offload, Quantize, RunConfig, Serving
from harness.records.plan import MemoryItem

MIB, GIB = 2**20, 2**30
DTYPE_BYTES = {DType.bfloat16: 2, DType.float16: 2, DType.float32: 4}
LOOKUP_BLOCKS = {"emb", "text_emb", "depformer_emb", "depformer_text_emb"}  # embedding tables: rows are gathered
FRAME_WORKING_SET = 80 * MIB  # Mimi activations and codebook caches, input audio: measured on CPU workers
# Each further lockstep session on a CPU, beyond its KV caches: measured on personaplex-tiny bf16 workers, peak-RSS
# slope from 2 to 8 sessions 27.1 MiB per session, of which 18.6 MiB are KV caches (issue 11; fp32 runs gave ~5).
SESSION_WORKING_SET = 8 * MIB
COMPILE_HOST = 110 * MIB  # inductor's modules and caches in the worker: measured on CPU compile runs
CUDA_CONTEXT = 512 * MIB  # CUDA context + cuBLAS workspace, outside torch's allocator: typical, not measured here
CUDA_HOST = 1 * GIB  # host RSS that CUDA's libraries add once initialised: typical, not measured here
GPU_ACTIVATIONS = 64 * MIB  # per stream: step activations, logits, sampling buffers (B=1 is small)
ALLOCATOR_OVERHEAD = 0.05  # reserved beyond allocated (fragmentation), on top of the allocated peak
DEFAULT_BASELINE = 720 * MIB  # worker after imports and a meta build, when no probe measured it


@dataclass(frozen=True)
class HostFacts:
    baseline_rss_bytes: int = DEFAULT_BASELINE
    bitsandbytes_import_bytes: int = 60 * MIB


def block_bytes(block: BlockFacts, run: RunConfig) -> int:
    size = DTYPE_BYTES[run.dtype]
    other = block.params - block.float32_params
    if run.quantize is not Quantize.none:
        # Every matmul weight quantized with its scales (harness.contract.quantized: the bytes the worker's tensors
        # take); embeddings stay in dtype, norms in float32.
        linear = SCHEMES[run.quantize.value].linear_bytes(block.linear_params, block.linear_out_features, size)
        return linear + size * (other - block.linear_params) + 4 * block.float32_params
    return size * other + 4 * block.float32_params


def kv_bytes(kv: KVFacts, run: RunConfig, batch: int) -> int:
    size = 4 if kv.float32 else (2 if run.quantize is Quantize.int8 else DTYPE_BYTES[run.dtype])
    return 2 * kv.layers * batch * kv.capacity * kv.kv_heads * kv.head_dim * size


def offloaded_blocks(arch: ArchitectureFacts, run: RunConfig, device_free: Optional[int] = None) -> set[str]:
    if run.offload is Offload.cpu:
        return set(offloaded_layer_names(arch.temporal_layers, run.offload_fraction))
    if run.offload is Offload.auto and run.device.value == "cuda" and device_free:
        return auto_offloaded_blocks(arch, run, device_free)
    return set()  # auto off CUDA: NVIDIA's loader offloads nothing


def auto_offloaded_blocks(arch: ArchitectureFacts, run: RunConfig, device_free: int) -> set[str]:
    """What accelerate's `infer_auto_device_map(max_memory=None, no_split_module_classes=[
    "StreamingTransformerLayer"])` does with PersonaPlex's LM (its `--cpu-offload`): blocks in module order fill
    the GPU's free memory, less room for the largest block (loaded there when an offloaded one runs); from the first
    block that does not fit, the rest go to the CPU, the depformer included. It counts weights only: the KV
    caches, Mimi and activations still need room afterwards, which is why 16 GB cards run out of memory."""
    sizes = [(b.name, block_bytes(b, run)) for b in arch.blocks]
    budget = device_free - max(size for _, size in sizes)
    used, offloaded, spilled = 0, set(), False
    for name, size in sizes:
        if spilled or used + size > budget:
            spilled = True
            offloaded.add(name)
        else:
            used += size
    return offloaded


def mimi_bytes(arch: ArchitectureFacts) -> int:
    return 4 * arch.mimi_parameters + arch.mimi_buffer_bytes


def predict_items(arch: ArchitectureFacts, run: RunConfig, batch: int, host: HostFacts,
                  checkpoint_bytes: int = 0, device_free: Optional[int] = None) -> list[MemoryItem]:
    on_gpu = run.device.value == "cuda"
    main = "device" if on_gpu else "host"
    offloaded = offloaded_blocks(arch, run, device_free)
    resident = sum(block_bytes(b, run) for b in arch.blocks if b.name not in offloaded)
    moved = sum(block_bytes(b, run) for b in arch.blocks if b.name in offloaded)
    items = [MemoryItem(name="worker baseline (python, torch, moshi)", bytes=host.baseline_rss_bytes, where="host")]
    if run.quantize in (Quantize.int8, Quantize.nf4):
        items.append(MemoryItem(name="bitsandbytes", bytes=host.bitsandbytes_import_bytes, where="host"))
    if run.compile and not on_gpu:
        items.append(MemoryItem(name="torch.compile (inductor)", bytes=COMPILE_HOST, where="host"))
    scheme = f", {run.quantize.value}" if run.quantize is not Quantize.none else ""
    items.append(MemoryItem(name=f"LM weights ({run.dtype.value}{scheme})",
                            bytes=resident, where=main))
    if offloaded:
        items.append(MemoryItem(name=f"offloaded LM layers ({len(offloaded)})", bytes=moved, where="host"))
    items.append(MemoryItem(name="Mimi (float32 weights and codebooks)", bytes=mimi_bytes(arch), where=main))
    for kv in arch.kv:
        items.append(MemoryItem(name=f"{kv.name} KV cache", bytes=kv_bytes(kv, run, batch), where=main))
    if run.serving is Serving.personaplex_server:  # NVIDIA's server keeps a second Mimi (and its caches)
        second = mimi_bytes(arch) + sum(kv_bytes(kv, run, batch) for kv in arch.kv if kv.name == "mimi")
        items.append(MemoryItem(name="second Mimi (PersonaPlex's server)", bytes=second, where=main))
    if on_gpu:
        activations = batch * GPU_ACTIVATIONS * (2 if run.cuda_graphs else 1)  # graphs keep a private pool
        items.append(MemoryItem(name="activations" + (" (x2: CUDA graph pool)" if run.cuda_graphs else ""),
                                bytes=activations, where="device"))
        if offloaded:
            largest = max(block_bytes(b, run) for b in arch.blocks if b.name in offloaded)
            items.append(MemoryItem(name="offloaded layer in flight", bytes=largest, where="device"))
        items.append(MemoryItem(name="CUDA runtime libraries (host)", bytes=CUDA_HOST, where="host"))
    else:
        items.append(MemoryItem(name="frame working set", bytes=FRAME_WORKING_SET + (batch - 1) * SESSION_WORKING_SET,
                                 where="host"))
        if run.quantize in (Quantize.int8, Quantize.nf4):  # both dequantise each weight before its CPU matmul
            text_linear = next((b.linear_params for b in arch.blocks if b.name == "text_linear"), 0)
            items.append(MemoryItem(name=f"{run.quantize.value} dequantised matmul (CPU)", bytes=2 * text_linear,
                                    where="host"))
    if checkpoint_bytes:
        items.append(MemoryItem(name="checkpoint pages while loading", bytes=checkpoint_bytes, where="host"))
    return items


def device_peaks(items: list[MemoryItem]) -> tuple[int, int]:
    """(allocator peak, device total with context and fragmentation)."""
    allocated = sum(i.bytes for i in items if i.where == "device")
    return allocated, int(allocated * (1 + ALLOCATOR_OVERHEAD)) + CUDA_CONTEXT


def host_peak(items: list[MemoryItem]) -> int:
    return sum(i.bytes for i in items if i.where == "host")


def bytes_per_step(arch: ArchitectureFacts, run: RunConfig, batch: int,
                   device_free: Optional[int] = None) -> tuple[int, int]:
    """(bytes read from the executing device's memory, bytes crossing the host link) per step."""
    offloaded = offloaded_blocks(arch, run, device_free)
    read = [b for b in arch.blocks if b.name not in LOOKUP_BLOCKS]
    local = sum(block_bytes(b, run) for b in read if b.name not in offloaded)
    moved = sum(block_bytes(b, run) for b in read if b.name in offloaded)
    # moshi's ring KV cache attends over its whole capacity every step (masked), so all of it is read.
    kv = sum(kv_bytes(k, run, batch) for k in arch.kv)
    return local + kv + mimi_bytes(arch), moved

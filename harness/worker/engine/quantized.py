"""fp8, w8a16 and nf4 LM weights, run for real (harness.contract.quantized has the table of facts).

Every nn.Linear of the LM is replaced, block by block right after it is materialised (the set moshi's own int8
`replace_linear_with_qlinear` touches); Mimi, embeddings and norms are untouched. Two things in moshi 0.2.13 shape
the modules:
- its gating FFN calls `F.linear` on `linear_in.weight` directly when the layer is an nn.Linear, so a quantized
  layer there must not be one: moshi then calls it as a module (its generic path, as for its own QLinear);
- its attention sizes the KV cache from `in_projs[0].weight.dtype/.device` and accepts only nn.Linear, LoRALinear or
  QLinear, so inside attention the quantized layer is also an nn.Linear whose `weight` is an empty tensor of the
  activation dtype on the device (the cache dtype; the depformer rebuilds its cache every step, so dequantising
  there would cost a full weight per step). Nothing in a PersonaPlex step reads that weight otherwise (only
  cross-attention does, which PersonaPlex has not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from moshi.modules.transformer import StreamingMultiheadAttention
from torch import nn

from harness.contract.quantized import (
    BNB_NF4,
    BNB_NF4_DEQUANT,
    DEQUANT_MM,
    FP8_MAX,
    FP8_SCALED_MM,
    INT8PACK_MM,
    NF4_BLOCK,
    SCHEMES,
    KernelPath,
)
from harness.contract.wire import QuantizationInfo


class QuantizationUnavailableError(RuntimeError):
    """The device has no kernel for the scheme (the session normally skips such a run before it starts)."""


def _has_kernel(op: str, device: torch.device) -> bool:
    key = {"cuda": "CUDA", "cpu": "CPU", "mps": "MPS"}.get(device.type, device.type.upper())
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{op}", key)


class QuantizedLinear(nn.Module):
    """A matmul weight stored quantized. Not an nn.Linear (see the module docstring); `dequantized()` is the weight
    the kernel effectively multiplies by."""

    path: KernelPath

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None:
            raise ValueError("moshi's LM matmuls have no bias; a biased nn.Linear is not quantized")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.compute_dtype = linear.weight.dtype
        self.register_buffer("_cache_probe", torch.empty(0, dtype=linear.weight.dtype, device=linear.weight.device),
                             persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # what moshi's attention reads to size its KV cache: dtype and device only
        return self._cache_probe

    def dequantized(self) -> torch.Tensor:
        raise NotImplementedError

    def stored_tensors(self) -> list[torch.Tensor]:
        """The quantized data and its scales: the bytes this weight now takes."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, {self.path.name}"


class Fp8Linear(QuantizedLinear):
    """e4m3 weights, one float32 scale per output row. The activation is cast to e4m3 with one dynamic scale per
    call and `torch._scaled_mm` multiplies on fp8 tensor cores (per-tensor scales: the form the CPU and cc 8.9 both
    run; the row scales are applied to its output)."""

    path = FP8_SCALED_MM

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        if linear.weight.device.type == "cuda" and (self.in_features % 16 or self.out_features % 16):
            # cuBLASLt's fp8 GEMM needs 16-byte aligned K and N (any M: torch relaxed the leading dimension)
            raise QuantizationUnavailableError(
                f"fp8: torch._scaled_mm on CUDA needs both dimensions of each weight divisible by 16, not "
                f"{self.out_features} x {self.in_features}")
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp(min=1e-12)
        self.register_buffer("qweight", (w / scale).to(torch.float8_e4m3fn))
        self.register_buffer("row_scale", scale.reshape(1, -1).contiguous())  # float32, [1, out]
        self.register_buffer("_one", torch.ones((), dtype=torch.float32, device=w.device), persistent=False)

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.row_scale.reshape(-1, 1)

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.qweight, self.row_scale]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        amax = torch.linalg.vector_norm(flat, float("inf"), dtype=torch.float32)  # one kernel: max |x|, in fp32
        x_scale = (amax * (1.0 / FP8_MAX)).clamp_(min=1e-12)
        x8 = (flat / x_scale).to(torch.float8_e4m3fn)
        y = torch._scaled_mm(x8, self.qweight.t(), scale_a=x_scale, scale_b=self._one, out_dtype=x.dtype)
        return (y * self.row_scale).to(x.dtype).reshape(*x.shape[:-1], self.out_features)


class Int8WeightOnlyLinear(QuantizedLinear):
    """w8a16: int8 weights, one scale per output row in the activation dtype. `torch._weight_int8pack_mm` where the
    device has it (CPU, CUDA in torch 2.9), else dequantise-then-matmul; `path` says which this layer runs."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(self.compute_dtype))
        self.path, self.note = self._choose_path(linear.weight.device)

    def _choose_path(self, device: torch.device) -> tuple[KernelPath, str]:
        if not _has_kernel("_weight_int8pack_mm", device):
            return DEQUANT_MM, f"torch {torch.__version__} has no _weight_int8pack_mm for {device.type}"
        try:  # the kernel has shape and dtype limits per device: try it once on this layer's shapes
            probe = torch.zeros(1, self.in_features, dtype=self.compute_dtype, device=device)
            torch._weight_int8pack_mm(probe, self.qweight, self.scale)
        except RuntimeError as exc:
            return DEQUANT_MM, f"_weight_int8pack_mm refused this layer: {str(exc).splitlines()[0][:200]}"
        return INT8PACK_MM, ""

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale.float()[:, None]

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.qweight, self.scale]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if self.path is INT8PACK_MM:
            y = torch._weight_int8pack_mm(flat.contiguous(), self.qweight, self.scale)
        else:
            y = nn.functional.linear(flat, self.qweight.to(x.dtype) * self.scale[:, None])
        return y.reshape(*x.shape[:-1], self.out_features)


class Nf4Linear(QuantizedLinear):
    """bitsandbytes Linear4bit, quant_type nf4, blocksize 64, compute dtype the run's dtype, no double quant."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        import bitsandbytes as bnb  # an optional dependency: imported only for nf4 runs

        device = linear.weight.device
        inner = bnb.nn.Linear4bit(self.in_features, self.out_features, bias=False, compute_dtype=self.compute_dtype,
                                  compress_statistics=False, quant_type="nf4", device="meta")
        inner.weight = bnb.nn.Params4bit(linear.weight.detach().to("cpu" if device.type == "meta" else device),
                                         requires_grad=False, quant_type="nf4", blocksize=NF4_BLOCK,
                                         compress_statistics=False)
        self.inner = inner.to(device)  # Params4bit quantizes when moved to its device
        state = self.inner.weight.quant_state
        if state is None:
            raise QuantizationUnavailableError(f"bitsandbytes did not quantize to nf4 on {device}")
        fused = device.type == "cuda" or getattr(state, "packing_format_for_cpu", False)
        self.path = BNB_NF4 if fused else BNB_NF4_DEQUANT
        self.note = ("fused for one row per call; sessions in lockstep (batch > 1) dequantise then multiply"
                     if fused else f"bitsandbytes {bnb.__version__} has no fused 4-bit kernel for {device.type} here "
                                   "(its optional `kernels` package is absent): torch fallback")

    def dequantized(self) -> torch.Tensor:
        from bitsandbytes import functional as bnb_functional

        return bnb_functional.dequantize_4bit(self.inner.weight.data, self.inner.weight.quant_state).float()

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.inner.weight.data, self.inner.weight.quant_state.absmax]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


LAYERS: dict[str, type[QuantizedLinear]] = {"fp8": Fp8Linear, "w8a16": Int8WeightOnlyLinear, "nf4": Nf4Linear}
_PROJECTIONS: dict[type, type] = {}


def _projection_class(cls: type[QuantizedLinear]) -> type:
    """The same layer, also an nn.Linear, for attention's in/out projections (see the module docstring)."""
    if cls not in _PROJECTIONS:
        _PROJECTIONS[cls] = type(f"{cls.__name__}Projection", (cls, nn.Linear), {"forward": cls.forward})
    return _PROJECTIONS[cls]


def check_device(scheme: str, device: torch.device) -> None:
    """Raise a named error where this device lacks what the scheme runs with (the session skips these runs first;
    this is the worker's own word when it is started anyway)."""
    facts = SCHEMES[scheme]
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major + minor / 10 < facts.min_cc:
            raise QuantizationUnavailableError(f"{scheme} on cc {major}.{minor}: {facts.why}")
    if scheme == "fp8" and not _has_kernel("_scaled_mm", device):
        raise QuantizationUnavailableError(f"torch {torch.__version__} has no _scaled_mm for {device.type}")
    if facts.needs_bitsandbytes:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise QuantizationUnavailableError(f"{scheme} needs bitsandbytes: {exc}") from exc


@dataclass
class QuantizationTally:
    """What quantizing did, summed over the blocks as they are quantized."""

    scheme: str
    linears: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    error_sq: float = 0.0
    norm_sq: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)  # kernel path -> note (why)

    def info(self, lm: nn.Module) -> QuantizationInfo:
        after = lm_bytes(lm)
        path = " + ".join(sorted(self.paths)) or "none"
        notes = "; ".join(n for n in self.paths.values() if n)
        return QuantizationInfo(
            scheme=self.scheme, kernel_path=path, kernel_note=notes, linears=self.linears,
            linear_bytes_before=self.bytes_before, linear_bytes_after=self.bytes_after,
            lm_bytes_before=after - self.bytes_after + self.bytes_before, lm_bytes_after=after,
            weight_rel_rms_error=math.sqrt(self.error_sq / self.norm_sq) if self.norm_sq else 0.0)


def _tensor_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def lm_bytes(lm: nn.Module) -> int:
    """The memory the LM's tensors hold: every storage behind a parameter or buffer, once (views of one storage
    count it once, and a storage larger than its views counts whole: that is what stays allocated). The layers'
    private helpers (`_cache_probe`, empty; `_one`, fp8's unit scale) are no weights and are not counted."""
    buffers = [t for name, t in lm.named_buffers() if not name.rpartition(".")[2].startswith("_")]
    tensors = [*lm.parameters(), *buffers]
    tensors += [m.inner.weight.quant_state.absmax for m in lm.modules() if isinstance(m, Nf4Linear)]  # not a buffer
    storages: dict[int, int] = {}
    for t in tensors:
        if t.numel() == 0 or t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def compact_block(block: nn.Module) -> None:
    """Give every tensor left in `block` its own storage. Synthetic weights are one allocation per block and dtype;
    the matmul weights just replaced are views of it, and the embeddings or norms left beside them would otherwise
    keep the whole allocation, bf16 weights included, alive: quantizing would save no memory at all."""
    for module in block.modules():
        for store in (module._parameters, module._buffers):
            for name, tensor in list(store.items()):
                if tensor is None or tensor.numel() == 0 or tensor.device.type == "meta":
                    continue
                if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size():
                    copy = tensor.detach().clone()
                    store[name] = nn.Parameter(copy, requires_grad=False) if isinstance(tensor, nn.Parameter) \
                        else copy


def _replace(owner: nn.Module, attr: str, linear: nn.Linear, scheme: str, tally: QuantizationTally,
             in_attention: bool) -> None:
    layer = LAYERS[scheme](linear)
    if in_attention:
        layer.__class__ = _projection_class(type(layer))
    original = linear.weight.detach().float()
    tally.error_sq += float((layer.dequantized() - original).pow(2).sum())
    tally.norm_sq += float(original.pow(2).sum())
    tally.linears += 1
    tally.bytes_before += linear.weight.numel() * linear.weight.element_size()
    tally.bytes_after += _tensor_bytes(layer.stored_tensors())
    tally.paths.setdefault(layer.path.name, getattr(layer, "note", ""))
    setattr(owner, attr, layer)


def quantize_block(lm: nn.Module, name: str, block: nn.Module, scheme: str, tally: QuantizationTally) -> None:
    """Replace every nn.Linear of `block` (or `block` itself) by the scheme's layer, in place."""
    if isinstance(block, nn.Linear):
        owner_name, _, attr = name.rpartition(".")
        _replace(lm.get_submodule(owner_name) if owner_name else lm, attr, block, scheme, tally, False)
        return
    attention = {id(m) for a in block.modules() if isinstance(a, StreamingMultiheadAttention) for m in a.modules()}
    targets = [(owner, attr, child) for owner in block.modules() for attr, child in owner.named_children()
               if isinstance(child, nn.Linear) and not isinstance(child, QuantizedLinear)]
    for owner, attr, child in targets:
        _replace(owner, attr, child, scheme, tally, id(child) in attention)


def quantized_layers(model: nn.Module) -> list[QuantizedLinear]:
    return [m for m in model.modules() if isinstance(m, QuantizedLinear)]


def check_unchanged(model: nn.Module, expected: Optional[str] = None) -> None:
    """A later `.to(dtype)` casts float8 weights (a floating dtype) and float32 scales silently: name it instead."""
    for m in quantized_layers(model):
        if isinstance(m, Fp8Linear) and (m.qweight.dtype != torch.float8_e4m3fn or m.row_scale.dtype != torch.float32):
            raise RuntimeError(f"fp8 weights were cast after quantization ({m.qweight.dtype}, scales "
                               f"{m.row_scale.dtype}): quantize last and never call .to(dtype) on the model")

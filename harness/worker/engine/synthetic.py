"""Synthetic weights for a model built on the meta device, materialised at memory speed.

The compute of a step does not depend on weight values, but the values must keep activations
finite. A plain `normal_` init of the full personaplex-7b in bf16 takes minutes on a 2-core CPU
(moshi's `_init_weights` runs trunc_normal_ in float32, then copies back). Instead each block gets
one contiguous allocation per dtype, and every weight is tiled from a small seeded N(0, 1) bank
scaled by 1/sqrt(fan_in) (the same scale moshi's init uses), by doubling memcpy. The bank length is
prime so that rows of a weight matrix are not copies of one another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

_BANK_LEN = 65_537  # prime (2**16 + 1): rows of a weight never repeat exactly
_MIMI_LAYER_SCALE = 0.01  # moshi.models.loaders._transformer_kwargs["layer_scale"]


@dataclass
class _Slot:
    owner: nn.Module
    name: str
    tensor: torch.Tensor
    is_buffer: bool


class SyntheticWeights:
    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self._bank = torch.randn(_BANK_LEN, generator=generator)
        self._scaled: dict[tuple[float, torch.dtype, str], torch.Tensor] = {}

    def _bank_for(self, scale: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (scale, dtype, str(device))
        if key not in self._scaled:
            self._scaled[key] = (self._bank * scale).to(device=device, dtype=dtype)
        return self._scaled[key]

    def _tile(self, flat: torch.Tensor, scale: float) -> None:
        bank = self._bank_for(scale, flat.dtype, flat.device)
        n = flat.numel()
        first = min(n, bank.numel())
        flat[:first].copy_(bank[:first])
        done = first
        while done < n:  # doubling: each copy reads what is already written
            step = min(done, n - done)
            flat[done:done + step].copy_(flat[:step])
            done += step

    def _fill(self, slot: _Slot, view: torch.Tensor) -> None:
        owner, name, flat = slot.owner, slot.name, view.view(-1)
        kind = type(owner).__name__
        if slot.is_buffer:
            # Mimi's EuclideanCodebook: mark it initialised, unit usage, random code vectors.
            if name in {"_initialized", "cluster_usage"}:
                flat.fill_(1)
            elif name == "embedding_sum":
                self._tile(flat, 1.0)
            else:
                raise RuntimeError(f"no synthetic rule for buffer {kind}.{name}; extend harness synthetic weights")
        elif kind == "RMSNorm" and name == "alpha":
            flat.fill_(1.0)
        elif isinstance(owner, (nn.LayerNorm, nn.GroupNorm)):
            flat.fill_(1.0 if name == "weight" else 0.0)
        elif kind == "LayerScale" and name == "scale":
            flat.fill_(_MIMI_LAYER_SCALE)
        elif name == "bias":
            flat.zero_()
        elif view.dim() >= 2:
            fan_in = view.numel() // view.shape[0]
            self._tile(flat, 1.0 / math.sqrt(fan_in))
        else:
            raise RuntimeError(f"no synthetic rule for parameter {kind}.{name} {tuple(view.shape)}")

    def materialize(self, block: nn.Module, device: torch.device | str) -> None:
        """Replace every meta tensor of `block` by a filled tensor on `device`."""
        device = torch.device(device)
        slots: list[_Slot] = []
        for owner in block.modules():
            for name, param in owner.named_parameters(recurse=False):
                slots.append(_Slot(owner, name, param, False))
            for name, buf in owner.named_buffers(recurse=False):
                if buf is not None:
                    slots.append(_Slot(owner, name, buf, True))
        by_dtype: dict[torch.dtype, list[_Slot]] = {}
        for slot in slots:
            if slot.tensor.device.type == "meta":
                by_dtype.setdefault(slot.tensor.dtype, []).append(slot)
        for dtype, group in by_dtype.items():
            storage = torch.empty(sum(s.tensor.numel() for s in group), dtype=dtype, device=device)
            offset = 0
            for slot in group:
                count = slot.tensor.numel()
                view = storage[offset:offset + count].view(slot.tensor.shape)
                offset += count
                self._fill(slot, view)
                if slot.is_buffer:
                    slot.owner._buffers[slot.name] = view
                else:
                    slot.owner._parameters[slot.name] = nn.Parameter(view, requires_grad=False)


def lm_blocks(lm: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    """The LM split into disjoint blocks small enough to materialise (and quantise) one at a time."""
    for name, child in lm.named_children():
        if name == "transformer":
            for index, layer in enumerate(child.layers):
                yield f"transformer.layers.{index}", layer
        else:
            yield name, child


def meta_tensor_names(model: nn.Module) -> list[str]:
    """Names of parameters and buffers still on the meta device (should be none once built)."""
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, tensor in tensors if tensor is not None and tensor.device.type == "meta"]

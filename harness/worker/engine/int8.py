"""int8 weights through moshi's own bitsandbytes QLinear (`moshi.utils.quantize`).

The seeds hit `Expected weight_scb to have type float, but got bfloat16`: QLinear keeps its
per-row scales (`weight_scb`) in float32 and any later `.to(dtype)` of the model casts them.
Blocks are quantised right after they are materialised and never cast afterwards; the scales are
checked before the first step so the failure is named instead of raised mid-frame.
"""

from __future__ import annotations

import torch
from moshi.utils.quantize import QLinear, replace_linear_with_qlinear
from torch import nn

from harness.contract.quantized import BNB_INT8
from harness.worker.engine.quantized import QuantizationTally


class Int8ScaleDtypeError(RuntimeError):
    pass


def quantize_block(parent: nn.Module, name: str, block: nn.Module) -> None:
    """Replace every nn.Linear of `block` (or `block` itself) by QLinear, in place."""
    if isinstance(block, nn.Linear):
        owner_name, _, attr = name.rpartition(".")
        owner = parent.get_submodule(owner_name) if owner_name else parent
        setattr(owner, attr, QLinear(block))
    else:
        replace_linear_with_qlinear(block)


def tally_block(block: nn.Module, originals: dict[str, torch.Tensor], dtype_bytes: int,
                tally: QuantizationTally) -> None:
    """Add what int8 did to `block` to the run's record: bytes, and the weights' error (CB * SCB / 127 against the
    weights before). `originals`: the weights before, keyed by module name within the block."""
    for name, weight in originals.items():
        original = weight.float()
        layer = block if name == "" else block.get_submodule(name)
        assert isinstance(layer, QLinear)
        restored = layer.weight.float() * layer.weight_scb.float()[:, None] / 127.0
        tally.error_sq += float((restored - original).pow(2).sum())
        tally.norm_sq += float(original.pow(2).sum())
        tally.linears += 1
        tally.bytes_before += original.numel() * dtype_bytes
        tally.bytes_after += layer.weight.numel() * layer.weight.element_size() + layer.weight_scb.numel() * 4
    tally.paths.setdefault(BNB_INT8.name, "")


def linear_weights(block: nn.Module) -> dict[str, torch.Tensor]:
    """Every nn.Linear weight of `block` (names within it), held before quantisation: no copy (QLinear quantises a
    float16 copy and leaves these untouched), released once tallied."""
    return {name: m.weight.detach() for name, m in block.named_modules() if isinstance(m, nn.Linear)}


def count_qlinear(model: nn.Module) -> int:
    return sum(isinstance(m, QLinear) for m in model.modules())


def check_int8_scales(model: nn.Module) -> None:
    wrong = [(name, m.weight_scb.dtype) for name, m in model.named_modules()
             if isinstance(m, QLinear) and m.weight_scb.dtype != torch.float32]
    if wrong:
        name, dtype = wrong[0]
        raise Int8ScaleDtypeError(
            f"Expected `weight_scb` to have type float, but got {str(dtype).removeprefix('torch.')} "
            f"({len(wrong)} QLinear layers, first {name}): the int8 scales were cast after quantisation. "
            "Quantise last and never call .to(dtype) on a quantised model.")

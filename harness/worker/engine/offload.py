"""CPU offload through accelerate's `dispatch_model`, as PersonaPlex's `--cpu-offload` does.

The last `fraction` of the temporal transformer layers leave the device: on a CUDA machine to
accelerate's CPU tier (executed on the GPU), on a machine without CUDA to its disk tier, so that
the same hook path runs (weights on `meta` between calls, loaded by the hook at each forward).

Two moshi details need care:
- ActivationGating reads `linear_in.weight` directly instead of calling the Linear, so the hook
  must load a whole StreamingTransformerLayer at once (`preload_module_classes`).
- moshi allocates a layer's streaming state (KV cache, offsets) on the device of that layer's
  weights, which is `meta` for an offloaded layer. Each streaming module under an offloaded layer
  gets its `_init_streaming_state` run with the layer's weights loaded by the hook.
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
from moshi.modules.streaming import StreamingModule
from torch import nn


def _device_map(lm: nn.Module, offloaded: set[str], main: str, tier: str) -> dict[str, str]:
    device_map: dict[str, str] = {}
    for name, _ in lm.named_children():
        if name == "transformer":
            for index in range(len(lm.transformer.layers)):
                layer = f"transformer.layers.{index}"
                device_map[layer] = tier if layer in offloaded else main
        else:
            device_map[name] = main
    return device_map


def _init_state_with_weights(owner: nn.Module, module: StreamingModule) -> None:
    hook = owner._hf_hook
    original = module._init_streaming_state

    def init_streaming_state(self: StreamingModule, batch_size: int):  # noqa: ANN202 - moshi's State
        hook.pre_forward(owner)
        try:
            return original(batch_size)
        finally:
            hook.post_forward(owner, None)

    module._init_streaming_state = types.MethodType(init_streaming_state, module)


def offload_layers(lm: nn.Module, layers: list[str], main_device: str, offload_dir: Path) -> str:
    """Dispatch `lm` with `layers` offloaded; returns the accelerate tier used ("cpu" or "disk")."""
    from accelerate import dispatch_model  # only offloading runs need accelerate in the worker's environment

    tier = "disk" if main_device == "cpu" else "cpu"
    device_map = _device_map(lm, set(layers), "cpu" if main_device == "cpu" else main_device, tier)
    dispatch_model(lm, device_map=device_map, main_device=main_device, offload_dir=str(offload_dir),
                   preload_module_classes=["StreamingTransformerLayer"])
    for layer_name in layers:
        layer = lm.get_submodule(layer_name)
        if not getattr(getattr(layer, "_hf_hook", None), "offload", False):
            raise RuntimeError(f"accelerate did not attach an offloading hook to {layer_name}")
        for module in layer.modules():
            if isinstance(module, StreamingModule):
                _init_state_with_weights(layer, module)
    return tier


def auto_offload(lm: nn.Module, dtype: "torch.dtype", device: "torch.device", offload_dir: Path) -> tuple[list[str], str]:
    """PersonaPlex's `--cpu-offload`: accelerate's automatic device map from the GPU's free memory, whole
    StreamingTransformerLayers kept together (as NVIDIA's loader asks), then `dispatch_model`. Off CUDA it
    offloads nothing, as NVIDIA's loader does. Returns (offloaded module names, tier)."""
    if device.type != "cuda":
        return [], "none (not on CUDA: NVIDIA's loader offloads nothing there)"
    from accelerate import dispatch_model, infer_auto_device_map

    device_map = infer_auto_device_map(lm, max_memory=None, no_split_module_classes=["StreamingTransformerLayer"],
                                       dtype=dtype)
    offloaded = [name for name, where in device_map.items() if where in ("cpu", "disk")]
    dispatch_model(lm, device_map=device_map, offload_dir=str(offload_dir))
    for name in offloaded:
        owner = lm.get_submodule(name)
        if getattr(getattr(owner, "_hf_hook", None), "offload", False):
            for module in owner.modules():
                if isinstance(module, StreamingModule):
                    _init_state_with_weights(owner, module)
    return offloaded, "cpu"

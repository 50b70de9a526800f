"""Observe whether moshi really captured CUDA graphs (rather than trusting NO_CUDA_GRAPH).

moshi wraps the LM step, the depformer step and Mimi's transformers in `CUDAGraphed` objects kept in the
streaming state; a wrapper that captured holds a `torch.cuda.CUDAGraph` in `_graph`. On a CPU, or with
NO_CUDA_GRAPH=1, the wrappers are disabled and hold none.
"""

from __future__ import annotations

from typing import Any, Iterable

from torch import nn

try:
    from moshi.utils.compile import CUDAGraphed
except ImportError:  # a moshi without the wrapper captures nothing
    CUDAGraphed = None  # type: ignore[assignment,misc]


def _states(root: Any) -> Iterable[Any]:
    state = getattr(root, "_streaming_state", None)
    if state is not None:
        yield state
    if isinstance(root, nn.Module):
        for module in root.modules():
            inner = getattr(module, "_streaming_state", None)
            if inner is not None and inner is not state:
                yield inner


def count_captured_graphs(*roots: Any) -> int:
    if CUDAGraphed is None:
        return 0
    seen: set[int] = set()
    for root in roots:
        for state in _states(root):
            for value in vars(state).values() if hasattr(state, "__dict__") else ():
                if isinstance(value, CUDAGraphed) and getattr(value, "_graph", None) is not None:
                    seen.add(id(value))
    return len(seen)

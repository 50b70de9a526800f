"""Which temporal layers a fraction-based CPU offload moves off the device.

Standard library only: the planner (parent) and the worker (which must run where pydantic is absent) both
import this, so that the layers predicted to move are the layers that move.
"""

from __future__ import annotations

import math


def offloaded_layer_count(num_layers: int, fraction: float) -> int:
    """The last ceil(fraction x layers) layers, at least one (offload was asked for), at most all."""
    return min(num_layers, max(1, math.ceil(num_layers * fraction)))


def offloaded_layer_names(num_layers: int, fraction: float) -> list[str]:
    count = offloaded_layer_count(num_layers, fraction)
    return [f"transformer.layers.{i}" for i in range(num_layers - count, num_layers)]

"""Default GPU-hour prices, for a cost per conversation-hour when the scenario and the command line give none.

Prices move every month and differ tenfold between providers, commitments and spot markets: a default is a
starting point that the report always labels with its source and date; `capacity.gpu_hour_usd` in the scenario
or `harness run --gpu-hour-usd` replace it with what the reader actually pays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# RunPod on-demand, one GPU, as quoted by deploybase.ai, "NVIDIA L40S Cloud Pricing" (article of 2025-07-08,
# prices stated as of March 2026): https://deploybase.ai/articles/nvidia-l40s-price
_RUNPOD = "RunPod on-demand per GPU, quoted by deploybase.ai/articles/nvidia-l40s-price (as of 2026-03)"


@dataclass(frozen=True)
class GpuPrice:
    match: tuple[str, ...]  # lower-case fragments of the device name
    usd_per_hour: float
    source: str


PRICES: tuple[GpuPrice, ...] = (
    GpuPrice(("h100",), 1.99, _RUNPOD),
    GpuPrice(("l40s",), 0.79, _RUNPOD),
    GpuPrice(("4090",), 0.34, _RUNPOD),
)


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    source: str


def default_price(device_name: str) -> Optional[Price]:
    """The table's price for a device name as torch/NVML report it; None when the table has none (CPUs)."""
    name = device_name.lower().replace(" ", "")
    for entry in PRICES:
        if any(fragment in name for fragment in entry.match):
            return Price(entry.usd_per_hour, entry.source)
    return None


def resolve_price(device_name: str, scenario_usd: Optional[float], option_usd: Optional[float]) -> Optional[Price]:
    """The command line over the scenario over the table."""
    if option_usd is not None:
        return Price(option_usd, "harness run --gpu-hour-usd")
    if scenario_usd is not None:
        return Price(scenario_usd, "the scenario's capacity.gpu_hour_usd")
    return default_price(device_name)

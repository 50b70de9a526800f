"""Which nodes a scenario goes to: every alive node with the resources it asks for, or the nodes named.

Torch-free and Ray-free: it works on the node list Ray reports (`ray.nodes()`), so it is tested on plain data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from harness.records.config import Device


class PlacementError(ValueError):
    pass


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    hostname: str
    address: str
    alive: bool
    resources: dict[str, float]

    @classmethod
    def from_ray(cls, entry: dict[str, Any]) -> "NodeInfo":
        return cls(node_id=str(entry.get("NodeID", "")), hostname=str(entry.get("NodeManagerHostname", "")),
                   address=str(entry.get("NodeManagerAddress", "")), alive=bool(entry.get("Alive", False)),
                   resources={k: float(v) for k, v in (entry.get("Resources") or {}).items()})

    @property
    def accelerator_types(self) -> list[str]:
        prefix = "accelerator_type:"
        return [k[len(prefix):] for k in self.resources if k.startswith(prefix)]


@dataclass(frozen=True)
class Requirement:
    """What one fleet task reserves on its node, in Ray's terms."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    accelerator_type: Optional[str] = None
    resources: dict[str, float] = field(default_factory=dict)

    def ray_resources(self) -> dict[str, float]:
        """Custom resources for `.options(resources=...)`; an accelerator type is Ray's own resource name."""
        wanted = dict(self.resources)
        if self.accelerator_type:
            # Ray exposes an accelerator type as the resource `accelerator_type:<T>` (1 per node); a
            # fraction is how Ray's own `accelerator_type=` option asks for it.
            wanted[f"accelerator_type:{self.accelerator_type}"] = 0.001
        return wanted

    def describe(self) -> str:
        parts = [f"{self.num_cpus:g} CPU"]
        if self.num_gpus:
            parts.append(f"{self.num_gpus:g} GPU")
        if self.accelerator_type:
            parts.append(f"accelerator type {self.accelerator_type}")
        parts += [f"{name}={amount:g}" for name, amount in sorted(self.resources.items())]
        return ", ".join(parts)

    def fits(self, node: NodeInfo) -> bool:
        have = node.resources
        if have.get("CPU", 0.0) < self.num_cpus or have.get("GPU", 0.0) < self.num_gpus:
            return False
        return all(have.get(name, 0.0) >= amount for name, amount in self.ray_resources().items())


def gpus_needed(runs_devices: Iterable[Device]) -> int:
    """A scenario with a CUDA run needs a GPU on its node; `auto` and CPU runs go anywhere."""
    return 1 if any(device is Device.cuda for device in runs_devices) else 0


def parse_resources(items: Iterable[str]) -> dict[str, float]:
    """`NAME=AMOUNT` (or `NAME`, meaning 1) as given on the command line."""
    wanted: dict[str, float] = {}
    for item in items:
        name, _, amount = item.partition("=")
        name = name.strip()
        if not name:
            raise PlacementError(f"--resources {item!r}: expected NAME=AMOUNT, e.g. bench_gpu=1")
        try:
            value = float(amount) if amount.strip() else 1.0
        except ValueError:
            raise PlacementError(f"--resources {item!r}: {amount!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise PlacementError(f"--resources {item!r}: the amount must be a positive number")
        wanted[name] = value
    return wanted


def choose_nodes(nodes: list[NodeInfo], need: Requirement, node_ids: Optional[list[str]] = None) -> list[NodeInfo]:
    """Every alive node that fits `need`, or the nodes named by id (a unique prefix is enough).

    A named node that is dead, unknown or too small is still returned: its task is submitted and Ray's
    refusal (or the placement timeout) becomes that machine's failed record, with the reason."""
    if not node_ids:
        return [n for n in nodes if n.alive and need.fits(n)]
    chosen: list[NodeInfo] = []
    for wanted in node_ids:
        matches = [n for n in nodes if n.node_id.startswith(wanted)]
        if len(matches) > 1:
            raise PlacementError(f"--nodes {wanted}: matches {len(matches)} nodes; give more of the id")
        if not matches:
            # Still submitted: Ray refuses it (or it waits out the placement timeout), and that is the record.
            chosen.append(NodeInfo(node_id=wanted, hostname="", address="", alive=False, resources={}))
            continue
        chosen.append(matches[0])
    return chosen

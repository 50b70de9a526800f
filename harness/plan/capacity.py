"""Sessions per machine, predicted: memory and bandwidth per lockstep session, the memory bound, the tick floor.

One more session in a lockstep batch adds its KV caches (temporal, depformer, Mimi), its activations and its
share of the step's reads (moshi's ring KV cache is read whole every step). Everything here is the planner's own
item list (`predict_items`) evaluated at two batch sizes and its own fit rule (`plan_run`), so the sessions a GPU
"holds by memory" are exactly the batches the planner would call feasible by memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from harness.contract.wire import ArchitectureFacts
from harness.knowledge.gpus import find_gpu, gpu_names
from harness.plan.memory import bytes_per_step, predict_items
from harness.plan.planner import plan_run, resolve_for
from harness.plan.predict import processes_by_memory
from harness.plan.target import PlanTarget, from_spec
from harness.records.config import RunConfig
from harness.records.machine import Machine
from harness.records.scenario import Criteria

if TYPE_CHECKING:
    from rich.table import Table

SEARCH_LIMIT = 4096  # no GPU in the table holds more sessions of any preset


@dataclass(frozen=True)
class SessionCost:
    """What one more session adds, per item, where it lives."""

    items: dict[str, int]  # item name -> bytes per added session
    where: str  # "device" or "host": where the sessions' state lives for this run
    bytes_read_per_step: int  # per added session, per tick

    @property
    def bytes(self) -> int:
        return sum(self.items.values())


@dataclass(frozen=True)
class SessionBound:
    target: str
    gpu: Optional[str]
    capacity_bytes: Optional[int]
    fixed_bytes: int  # the batch-1 peak less one session: weights, Mimi, context, baseline
    per_session: SessionCost
    max_sessions: int  # largest batch that fits by memory (0: not even one)
    floor_ms_at_max: Optional[float]  # bandwidth roofline of one tick at that batch
    floor_ms_one: Optional[float]  # ... and at one session
    realtime_by_floor: Optional[int]  # largest batch whose floor stays under the deadline (None: no bandwidth)
    processes_by_memory: Optional[int] = None  # one-call server processes (batch 1 each, own weights) that fit


def session_cost(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget) -> SessionCost:
    run = resolve_for(run, target)
    where = "device" if run.device.value == "cuda" else "host"
    one = {i.name: i.bytes for i in predict_items(arch, run, 1, target.host) if i.where == where}
    two = {i.name: i.bytes for i in predict_items(arch, run, 2, target.host) if i.where == where}
    items = {name: two[name] - one.get(name, 0) for name in two if two[name] != one.get(name, 0)}
    read = bytes_per_step(arch, run, 2)[0] - bytes_per_step(arch, run, 1)[0]
    return SessionCost(items=items, where=where, bytes_read_per_step=read)


def _fits(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, batch: int,
          host_memory_limit_bytes: Optional[int]) -> bool:
    return plan_run(arch, run, target, batch=batch, host_memory_limit_bytes=host_memory_limit_bytes).fits_memory


def memory_bound(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, *,
                 host_memory_limit_bytes: Optional[int] = None, limit: int = SEARCH_LIMIT) -> int:
    """Largest batch the planner says fits in memory (0 when one session does not), by bisection: memory grows
    with the batch, so the fitting batches are 1..n."""
    if not _fits(arch, run, target, 1, host_memory_limit_bytes):
        return 0
    low, high = 1, 2
    while high <= limit and _fits(arch, run, target, high, host_memory_limit_bytes):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        if _fits(arch, run, target, mid, host_memory_limit_bytes):
            low = mid
        else:
            high = mid
    return low


def session_bound(arch: ArchitectureFacts, run: RunConfig, target: PlanTarget, *, deadline_ms: float,
                  host_memory_limit_bytes: Optional[int] = None,
                  memory_headroom: float = Criteria().memory_headroom) -> SessionBound:
    cost = session_cost(arch, run, target)
    n = memory_bound(arch, run, target, host_memory_limit_bytes=host_memory_limit_bytes)
    one = plan_run(arch, run, target, batch=1, host_memory_limit_bytes=host_memory_limit_bytes)
    at_max = plan_run(arch, run, target, batch=max(n, 1), host_memory_limit_bytes=host_memory_limit_bytes)
    peak_one = one.device_peak_bytes if cost.where == "device" else one.host_peak_bytes
    capacity = one.device_capacity_bytes if cost.where == "device" else one.host_capacity_bytes
    realtime = None
    if one.step_floor_ms is not None:
        # The floor is linear in the batch: fixed reads + batch x per-session reads, over the bandwidth.
        per_ms = one.step_floor_ms * cost.bytes_read_per_step / one.bytes_per_step
        fixed_ms = one.step_floor_ms - per_ms
        realtime = max(0, int((deadline_ms - fixed_ms) // per_ms)) if per_ms > 0 else None
    # The stock deployment: each server process holds its own weights, Mimi and CUDA context (its batch-1 peak),
    # in the memory less the criteria's headroom (the rule a measured capacity run applies).
    processes = processes_by_memory(capacity, peak_one, memory_headroom) if capacity and peak_one else None
    return SessionBound(target=target.label, gpu=target.gpu_name, capacity_bytes=capacity,
                        fixed_bytes=(peak_one or 0) - cost.bytes, per_session=cost, max_sessions=n,
                        floor_ms_at_max=at_max.step_floor_ms if n else None, floor_ms_one=one.step_floor_ms,
                        realtime_by_floor=realtime, processes_by_memory=processes)


def gpu_table_bounds(arch: ArchitectureFacts, run: RunConfig, machine: Optional[Machine], *,
                     deadline_ms: float, extra: tuple[PlanTarget, ...] = (),
                     memory_headroom: float = Criteria().memory_headroom) -> list[SessionBound]:
    """The memory-bound sessions on every GPU of the table, and on `extra` targets with a GPU that the table does
    not know (a scenario's `target:`): predicted, for the report and `harness plan`."""
    gpu_run = run.model_copy(update={"device": run.device.cuda, "offload": run.offload.none})
    targets = [from_spec(spec, machine) for spec in (find_gpu(name) for name in gpu_names()) if spec is not None]
    known = {t.gpu_name for t in targets}
    # By exact name: find_gpu's loose match would take an L40S for the table's L4.
    targets += [t for t in extra if t.has_gpu and t.vram_bytes and t.gpu_name not in known]
    return [session_bound(arch, gpu_run, target, deadline_ms=deadline_ms, memory_headroom=memory_headroom)
            for target in targets]


def sessions_table(arch: ArchitectureFacts, run: RunConfig, machine: Optional[Machine], *, deadline_ms: float,
                   only_gpu: Optional[str] = None, extra: tuple[PlanTarget, ...] = (),
                   memory_headroom: float = Criteria().memory_headroom) -> "Table":
    """`harness plan SCENARIO --sessions`: how many sessions each GPU holds by memory, and the floor per tick."""
    from rich.table import Table

    bounds = gpu_table_bounds(arch, run, machine, deadline_ms=deadline_ms, extra=extra,
                              memory_headroom=memory_headroom)
    if only_gpu is not None:
        wanted = find_gpu(only_gpu)
        bounds = [b for b in bounds if wanted is not None and b.gpu == wanted.name]
    gib = 2**30
    first = bounds[0].per_session if bounds else None
    detail = (", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in first.items.items())
              if first is not None else "")
    table = Table(title=f"server processes (one call each, as shipped) and sessions in lockstep (a batching server) "
                        f"for {run.name}, predicted, not measured: per session {detail}; "
                        f"reads {first.bytes_read_per_step / 1e9:.2f} GB more per tick" if first else run.name,
                  title_justify="left")
    for column in ("GPU", "GiB", "server processes by memory", "fixed GiB", "GiB per session", "sessions by memory",
                   "floor ms/tick at that size", f"sessions with floor <= {deadline_ms:g} ms"):
        table.add_column(column, justify="left" if column == "GPU" else "right")
    for b in bounds:
        floor = "-" if b.floor_ms_at_max is None else f"{b.floor_ms_at_max:.1f}"
        table.add_row(b.gpu or b.target, f"{(b.capacity_bytes or 0) / gib:.0f}",
                      "-" if b.processes_by_memory is None else str(b.processes_by_memory), f"{b.fixed_bytes / gib:.2f}",
                      f"{b.per_session.bytes / gib:.3f}", str(b.max_sessions), floor,
                      "-" if b.realtime_by_floor is None else str(b.realtime_by_floor))
    return table

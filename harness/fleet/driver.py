"""The fleet driver: one Ray task per (machine, scenario), merged into fleet.json / fleet.html.

The caller has connected to Ray (`ray.init`). Each chosen node runs its scenarios one after the other
(two benchmarks sharing a GPU would measure each other), all nodes at once. A task that is not placed
within the placement timeout is cancelled; a task whose worker or node dies comes back as a Ray error;
both become failed machine records with the reason. The driver never imports torch.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Union

import ray
import yaml
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from harness import __version__
from harness.fleet.node_task import NodeJob, NodeOutcome, Started, run_on_node
from harness.fleet.placement import NodeInfo, Requirement, choose_nodes, gpus_needed
from harness.fleet.render import write_fleet_html
from harness.fleet.summary import buyer_order, exit_reason, machine_from_session
from harness.records.fleet import Fleet, FleetMachine, write_fleet
from harness.records.store import ResultsFileError, load_session
from harness.scenario.load import LoadedScenario

MACHINES_DIR = "machines"


@dataclass(frozen=True)
class FleetOptions:
    out_dir: Path
    requirement: Requirement = field(default_factory=Requirement)  # GPUs are added per scenario
    node_ids: Optional[list[str]] = None
    placement_timeout_s: float = 60.0
    shared_dir: bool = False  # out_dir is on a filesystem every node mounts at the same path
    scratch_root: Optional[str] = None  # node-local folder for results before they are copied back
    harness_args: tuple[str, ...] = ()
    cluster: str = ""
    command: tuple[str, ...] = ()
    poll_s: float = 0.5


@dataclass
class FleetEvent:
    kind: str  # "submitted" | "started" | "finished"
    scenario: str
    node: str
    detail: str = ""
    started: Optional[Started] = None
    machine: Optional[FleetMachine] = None


EventHandler = Callable[[FleetEvent], None]


@dataclass
class _Task:
    loaded: LoadedScenario
    node: Optional[NodeInfo]  # None: placed by resources alone (no node had them when we looked)
    slug: str
    need: Requirement
    gen: Any = None
    submitted_at: float = 0.0
    started: Optional[Started] = None


def scenario_text(loaded: LoadedScenario) -> str:
    """The YAML shipped to the node: the scenario as loaded, every path already absolute (nodes do not share our
    cwd, and the file may not be beside them)."""
    return yaml.safe_dump(loaded.scenario.model_dump(mode="json", exclude_none=True), sort_keys=False)


def fleet_task(job: NodeJob):  # noqa: ANN201 - a Ray generator task (streams Started, then NodeOutcome)
    yield from run_on_node(job, ray.get_runtime_context().get_node_id())


def _slug(node: Optional[NodeInfo]) -> str:
    if node is None:
        return "unplaced"
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in node.hostname) or "node"
    return f"{host}-{node.node_id[:8]}"


def _ray_error_reason(exc: BaseException, task: _Task) -> str:
    where = f"node {task.started.node_id[:12]} ({task.started.hostname})" if task.started else "its node"
    exceptions = ray.exceptions
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]
    if isinstance(exc, getattr(exceptions, "NodeDiedError", ())):
        return f"{where} died while running the scenario: {first}"
    if isinstance(exc, (exceptions.WorkerCrashedError, getattr(exceptions, "LocalRayletDiedError", ()))):
        return (f"the Ray worker running `harness run` on {where} died mid-run (killed, out of memory, or the node "
                f"went away); `harness run` died with it: {first}")
    if isinstance(exc, getattr(exceptions, "TaskUnschedulableError", ())):
        return f"Ray cannot place the task ({task.need.describe()}): {first}"
    if isinstance(exc, exceptions.TaskCancelledError):
        return f"the task was cancelled: {first}"
    if isinstance(exc, exceptions.RayTaskError):
        return f"the fleet task failed on {where}: {first}"
    return f"{type(exc).__name__} on {where}: {first}"


class FleetRun:
    def __init__(self, scenarios: list[LoadedScenario], options: FleetOptions,
                 on_event: Optional[EventHandler] = None) -> None:
        self.scenarios = scenarios
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.machines: list[FleetMachine] = []
        self.created_at = datetime.now(timezone.utc)
        self.t0 = time.monotonic()
        # No retries: a benchmark that died is a result to report, not something to run again silently.
        self._remote = ray.remote(max_retries=0)(fleet_task)

    # -- planning -------------------------------------------------------------------------------------------
    def _plan(self) -> list[deque[_Task]]:
        nodes = [NodeInfo.from_ray(entry) for entry in ray.nodes()]
        queues: dict[str, deque[_Task]] = {}
        for loaded in self.scenarios:
            base = self.options.requirement
            need = Requirement(base.num_cpus, max(base.num_gpus, gpus_needed(r.device for r in loaded.runs)),
                               base.accelerator_type, base.resources)
            chosen = choose_nodes(nodes, need, self.options.node_ids)
            if not chosen:
                # Submitted anyway, without a node: an autoscaler may bring one up within the timeout;
                # otherwise it becomes a failed record saying which resources nobody had.
                queues.setdefault(f"unplaced:{loaded.scenario.name}", deque()).append(
                    _Task(loaded, None, _slug(None), need))
            for node in chosen:
                queues.setdefault(node.node_id, deque()).append(_Task(loaded, node, _slug(node), need))
        return list(queues.values())

    def _results_dir(self, task: _Task) -> Path:
        return self.options.out_dir / MACHINES_DIR / task.slug / task.loaded.scenario.name

    def _submit(self, task: _Task) -> None:
        opts = self.options
        job = NodeJob(scenario_name=task.loaded.scenario.name, scenario_text=scenario_text(task.loaded),
                      harness_args=opts.harness_args,
                      shared_out_dir=str(self._results_dir(task).resolve()) if opts.shared_dir else None,
                      scratch_root=opts.scratch_root)
        options: dict[str, Any] = {"num_cpus": task.need.num_cpus, "num_gpus": task.need.num_gpus,
                                   "resources": task.need.ray_resources()}
        if task.node is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(task.node.node_id, soft=False)
        task.submitted_at = time.monotonic()
        task.gen = self._remote.options(**options).remote(job)
        self.on_event(FleetEvent("submitted", task.loaded.scenario.name, task.slug, task.need.describe()))

    # -- outcomes -------------------------------------------------------------------------------------------
    def _base(self, task: _Task, status: str, reason: str) -> FleetMachine:
        started = task.started
        node_id = started.node_id if started else (task.node.node_id if task.node else None)
        hostname = started.hostname if started else (task.node.hostname if task.node else "")
        return FleetMachine(node_id=node_id, hostname=hostname, scenario=task.loaded.scenario.name,
                            status=status, reason=reason)  # type: ignore[arg-type]

    def _with_results(self, machine: FleetMachine, folder: Path) -> FleetMachine:
        """Attach the machine's results folder (and what its results.json says) when there is one."""
        try:
            session = load_session(folder)
        except ResultsFileError:
            return machine
        machine = machine_from_session(session, machine)
        rel = folder.resolve().relative_to(self.options.out_dir.resolve()).as_posix()
        report = folder / "report.html"
        return machine.model_copy(update={"results_dir": rel,
                                          "report": f"{rel}/report.html" if report.is_file() else None})

    def _from_outcome(self, task: _Task, outcome: NodeOutcome) -> FleetMachine:
        folder = self._results_dir(task) if not outcome.shared else Path(outcome.out_dir)
        if not outcome.shared:
            for rel, content in outcome.files.items():
                target = folder / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        reason = exit_reason(outcome.exit_code, outcome.signal_name, outcome.wall_s, outcome.log_tail)
        machine = self._base(task, "failed" if reason else "ok", reason)
        machine = machine.model_copy(update={"exit_code": outcome.exit_code, "wall_s": round(outcome.wall_s, 2)})
        machine = self._with_results(machine, folder)
        if not reason and machine.results_dir is None:
            machine = machine.model_copy(update={
                "status": "failed", "reason": f"harness run exited {outcome.exit_code} but left no readable "
                                              f"results.json ({outcome.note or 'see harness-run.log'})"})
        if machine.status == "ok" and machine.runs_failed:
            machine = machine.model_copy(update={"reason": f"{machine.runs_failed} run(s) failed; see its report"})
        return machine

    def _failed(self, task: _Task, reason: str) -> FleetMachine:
        machine = self._base(task, "failed", reason)
        if task.started is not None:
            # On a shared filesystem the runs measured before the failure are still readable.
            folder = Path(task.started.out_dir)
            if folder.is_dir() and self.options.shared_dir:
                machine = self._with_results(machine, folder)
            elif not self.options.shared_dir:
                machine = machine.model_copy(update={
                    "reason": f"{reason} (what it measured before stays on that node in {task.started.out_dir})"})
        return machine

    def _finish(self, task: _Task, machine: FleetMachine) -> None:
        self.machines.append(machine)
        self.on_event(FleetEvent("finished", task.loaded.scenario.name, task.slug, machine.reason, machine=machine))
        self.write()

    # -- the loop -------------------------------------------------------------------------------------------
    def run(self) -> Fleet:
        self.options.out_dir.mkdir(parents=True, exist_ok=True)
        queues = self._plan()
        running: list[tuple[_Task, deque[_Task]]] = []

        def next_of(queue: deque[_Task]) -> None:
            while queue:
                task = queue.popleft()
                try:
                    self._submit(task)
                except (ValueError, TypeError, ray.exceptions.RayError) as exc:
                    self._finish(task, self._failed(task, f"could not submit the task: {exc}"))
                    continue
                running.append((task, queue))
                return

        for queue in queues:
            next_of(queue)
        try:
            self._loop(running, next_of)
        except KeyboardInterrupt:
            for task, _ in running:  # do not leave benchmarks running on the cluster behind us
                ray.cancel(task.gen, force=True)
            self.write()
            raise
        return self.write()

    def _loop(self, running: list[tuple[_Task, deque[_Task]]], next_of: Callable[[deque[_Task]], None]) -> None:
        while running:
            ready, _ = ray.wait([t.gen for t, _ in running], num_returns=1, timeout=self.options.poll_s)
            ready_ids = {id(gen) for gen in ready}
            for entry in list(running):
                task, queue = entry
                if id(task.gen) in ready_ids:
                    result = self._receive(task)
                    if isinstance(result, Started):
                        continue
                    running.remove(entry)
                    self._finish(task, result)
                    next_of(queue)
                elif task.started is None and time.monotonic() - task.submitted_at > self.options.placement_timeout_s:
                    ray.cancel(task.gen, force=True)
                    running.remove(entry)
                    where = f"on node {task.node.node_id[:12]} ({task.node.hostname})" if task.node else \
                        "on any alive node"
                    self._finish(task, self._failed(task, (
                        f"not placed within {self.options.placement_timeout_s:g} s: no node offered "
                        f"{task.need.describe()} {where} (see `ray status` for the cluster's resources)")))
                    for left in queue:  # the node cannot take the first; do not wait out the rest too
                        self._finish(left, self._failed(left, f"not attempted: {task.slug} could not place "
                                                              f"{task.loaded.scenario.name} before it"))
                    queue.clear()

    def _receive(self, task: _Task) -> Union[Started, FleetMachine]:
        try:
            payload = ray.get(next(task.gen))
        except StopIteration:
            return self._failed(task, "the fleet task ended without a result")
        except ray.exceptions.RayError as exc:
            return self._failed(task, _ray_error_reason(exc, task))
        if isinstance(payload, Started):
            task.started = payload
            self.on_event(FleetEvent("started", task.loaded.scenario.name, task.slug,
                                     f"node {payload.node_id[:12]} ({payload.hostname}), harness run pid "
                                     f"{payload.harness_pid}", started=payload))
            return payload
        return self._from_outcome(task, payload)

    def write(self) -> Fleet:
        fleet = Fleet(harness_version=__version__, created_at=self.created_at, command=list(self.options.command),
                      cluster=self.options.cluster, scenarios=[s.scenario.name for s in self.scenarios],
                      wall_s=round(time.monotonic() - self.t0, 2), machines=buyer_order(self.machines))
        write_fleet(fleet, self.options.out_dir)
        write_fleet_html(fleet, self.options.out_dir)
        return fleet


def run_fleet(scenarios: list[LoadedScenario], options: FleetOptions,
              on_event: Optional[EventHandler] = None) -> Fleet:
    return FleetRun(scenarios, options, on_event).run()

"""`harness fleet run`: one scenario (or several) on every machine of a Ray cluster, one comparison report."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, load_or_explain
from harness.records.exits import UserError

_DESCRIPTION = """\
Run scenarios on many machines at once through Ray, and compare the machines in one report.

One Ray task per (machine, scenario): on its node the task runs `python -m harness run SCENARIO`
as a subprocess (each configuration still gets its own worker process there) and hands back that
machine's results. A node runs its scenarios one after the other (two benchmarks on one GPU would
measure each other); all nodes run at once. Results: DIR/fleet.json (one entry per machine and
scenario: fingerprint, GPU, driver, torch, verdict, best configuration, its p99, server processes per
machine and their cost per conversation-hour, sessions in lockstep apart (they need a batching server),
and the folder of its own results) and DIR/fleet.html (machines side by side, GO first, then cost per
conversation-hour as deployed, then p99, each machine's report.html linked).
"""

_EPILOG = """\
where it runs:
  --address ADDR          an existing Ray cluster (e.g. `ray start --head` on one GPU node and
                          `ray start --address HEAD:6379` on the others; ADDR is HEAD:6379 or `auto`
                          on a node of it). Every node needs harness (and Ray) installed. With Ray's
                          token authentication on, export RAY_AUTH_TOKEN (or have ~/.ray/auth_token).
  --local-cluster N       start N Ray nodes on this machine (127.0.0.1 only), run, tear them down:
                          to try a fleet or test it without a cluster.

which machines:
  by default every alive node with the resources a task asks for: 1 CPU, 1 GPU when the scenario
  has a `device: cuda` run, plus --gpus, --accelerator-type and --resources. --nodes ID... names
  nodes instead (a unique prefix of Ray's node id, as fleet.json records it; `ray status` shows
  the resources each node offers). A task that is not placed within --placement-timeout seconds, or whose worker or
  node dies, is a failed machine record with the reason; the fleet never hangs on it.

results on the nodes:
  by default each node writes into its own temp folder and the driver copies the results back into
  DIR/machines/<host>-<node>/<scenario>/. With --shared-dir (DIR is on a filesystem every node mounts
  at the same path, e.g. NFS) the nodes write there directly, and a killed run keeps what it measured.

exit status: 0 every machine ran its scenarios (runs ok or skipped), 1 a machine failed or a run
failed, 2 invalid input or Ray missing, 130 interrupted.

examples:
  harness fleet run scenarios/h100.yaml --address auto --out reports/fleet-today
  harness fleet run scenarios/rtx5090.yaml scenarios/h100.yaml --address 10.0.0.1:6379 --gpus 1
  harness fleet run scenarios/h100.yaml --address auto --accelerator-type H100
  harness fleet run scenarios/fleet-smoke.yaml --local-cluster 2
"""


def _default_out() -> Path:
    return Path("reports") / f"fleet-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def _print_event(console: Console):  # noqa: ANN202
    def show(event) -> None:  # noqa: ANN001
        if event.kind == "started":
            console.print(f"  {escape(event.scenario)} on {escape(event.node)}: started ({escape(event.detail)})")
        elif event.kind == "finished" and event.machine is not None:
            m = event.machine
            mark = {"GO": "[green]GO[/]", "NO-GO": "[red]NO-GO[/]", "INCONCLUSIVE": "[yellow]INCONCLUSIVE[/]",
                    "RE-RUN": "[yellow]RE-RUN[/]"}.get(m.verdict or "", "[dim]-[/]")
            line = f"  {escape(event.scenario)} on {escape(event.node)}: {m.status} {mark}"
            if m.best:
                line += f" best {escape(m.best)} p99 {m.p99_ms:.1f} ms" if m.p99_ms is not None else ""
            if m.reason:
                line += f"\n    {escape(m.reason)}"
            console.print(line, highlight=False)
    return show


def cmd_fleet_run(args: argparse.Namespace, console: Console) -> int:
    from harness.fleet import INSTALL_HINT, ray_available

    if not ray_available():
        raise UserError(INSTALL_HINT)
    from harness.fleet.placement import PlacementError, Requirement, parse_resources

    loaded = [load_or_explain(path) for path in args.scenarios]
    names = [item.scenario.name for item in loaded]
    if len(set(names)) != len(names):
        raise UserError(f"two scenarios share a name ({', '.join(names)}); their results would collide")
    try:
        requirement = Requirement(num_cpus=args.cpus, num_gpus=args.gpus, accelerator_type=args.accelerator_type,
                                  resources=parse_resources(args.resources or []))
    except PlacementError as exc:
        raise UserError(str(exc)) from None
    out_dir = Path(args.out) if args.out else _default_out()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None
    passthrough: list[str] = []
    if args.frames:
        passthrough += ["--frames", str(args.frames)]
    if args.warmup:
        passthrough += ["--warmup", str(args.warmup)]
    if args.force:
        passthrough.append("--force")
    started = time.monotonic()
    try:
        fleet = _run(args, loaded, requirement, out_dir, tuple(passthrough), console)  # type: ignore[arg-type]
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
        console.print(f"[red]{getattr(exc, 'reason', 'interrupted')}[/]: machines finished so far are in "
                      f"{out_dir / 'fleet.json'}")
        return int(getattr(exc, "code", EXIT_INTERRUPTED))
    except _ClusterError as exc:
        raise UserError(str(exc)) from None
    go = sum(1 for m in fleet.machines if m.verdict == "GO")
    failed = [m for m in fleet.machines if m.status == "failed"]
    console.print(f"[bold]{len(fleet.machines)} machine result(s)[/]: {go} GO, {len(failed)} failed, "
                  f"{time.monotonic() - started:.1f} s\nfleet: {out_dir / 'fleet.html'}\n       "
                  f"{out_dir / 'fleet.json'}", highlight=False)
    if not fleet.machines:
        return EXIT_RUN_FAILED
    return EXIT_RUN_FAILED if failed or any(m.runs_failed for m in fleet.machines) else EXIT_OK


class _ClusterError(Exception):
    pass


def _run(args: argparse.Namespace, loaded: list, requirement, out_dir: Path,  # noqa: ANN001
         passthrough: tuple[str, ...], console: Console):  # noqa: ANN202
    command = tuple(["harness", "fleet", "run", *sys.argv[3:]]) if sys.argv[1:3] == ["fleet", "run"] else ()
    if args.local_cluster:
        from harness.fleet.local import local_cluster

        console.print(f"starting a local Ray cluster of {args.local_cluster} nodes on 127.0.0.1 ...")
        with local_cluster(args.local_cluster) as cluster:
            from harness.fleet.driver import FleetOptions, run_fleet

            options = FleetOptions(out_dir=out_dir, requirement=requirement, node_ids=args.nodes,
                                   placement_timeout_s=args.placement_timeout, shared_dir=args.shared_dir,
                                   scratch_root=str(cluster.root / "scratch"), harness_args=passthrough,
                                   cluster=f"local cluster of {cluster.nodes} nodes", command=command)
            _announce(console, loaded, cluster.node_ids)
            return run_fleet(loaded, options, _print_event(console))
    _check_reachable(args.address)
    import ray

    from harness.fleet.driver import FleetOptions, run_fleet

    try:
        ray.init(address=args.address, log_to_driver=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise _ClusterError(f"cannot connect to the Ray cluster at {args.address}: {first} (is `ray start` "
                            "running there? with token authentication, export RAY_AUTH_TOKEN)") from None
    try:
        options = FleetOptions(out_dir=out_dir, requirement=requirement, node_ids=args.nodes,
                               placement_timeout_s=args.placement_timeout, shared_dir=args.shared_dir,
                               harness_args=passthrough, cluster=str(args.address), command=command)
        _announce(console, loaded, [n["NodeID"] for n in ray.nodes() if n.get("Alive")])
        return run_fleet(loaded, options, _print_event(console))
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds on an address nobody answers at: Ray itself retries for many minutes."""
    host, sep, port = address.rpartition(":")
    if address in ("auto", "local") or not sep or not port.isdigit() or "://" in address:
        return  # `auto` (this node's cluster) and ray:// client addresses: Ray's own lookup applies
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise _ClusterError(f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` "
                            f"there, or check the address (`ray status` on a node prints it)") from None


def _announce(console: Console, loaded: list, node_ids: list[str]) -> None:  # noqa: ANN001
    console.print(f"[bold]fleet[/]: {', '.join(item.scenario.name for item in loaded)} on a cluster of "
                  f"{len(node_ids)} alive node(s)", highlight=False)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    fleet = sub.add_parser("fleet", help="run scenarios on every machine of a Ray cluster and compare them",
                           description=_DESCRIPTION, epilog=_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    fleet_sub = fleet.add_subparsers(dest="fleet_command", metavar="ACTION")
    fleet.set_defaults(handler=lambda args, console: (fleet.print_help(), EXIT_USAGE)[1])
    run = fleet_sub.add_parser("run", help="run SCENARIO... on the cluster's machines; write fleet.json/html",
                               description=_DESCRIPTION, epilog=_EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML file(s)")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--address", metavar="ADDR", help="Ray cluster address (HEAD:6379, or auto)")
    where.add_argument("--local-cluster", type=_positive_int, metavar="N",
                       help="start N Ray nodes on 127.0.0.1 for this run and stop them afterwards")
    run.add_argument("--out", metavar="DIR", help="fleet folder (default reports/fleet-<UTC time>)")
    run.add_argument("--resources", nargs="+", metavar="NAME=N",
                     help="custom Ray resources a node must offer (and each task reserves), e.g. bench_gpu=1")
    run.add_argument("--gpus", type=float, default=0.0, metavar="N",
                     help="GPUs each task reserves (default: 1 when the scenario has a device: cuda run, else 0)")
    run.add_argument("--accelerator-type", metavar="TYPE",
                     help="only nodes whose GPU Ray labels TYPE (e.g. H100, A100, L4: Ray's accelerator_type:TYPE resource)")
    run.add_argument("--cpus", type=_positive_float, default=1.0, metavar="N", help="CPUs each task reserves (1)")
    run.add_argument("--nodes", nargs="+", metavar="ID", help="these Ray node ids (unique prefixes) instead")
    run.add_argument("--placement-timeout", type=_positive_float, default=60.0, metavar="S",
                     help="seconds a task may wait to be placed before it is a failed record (default 60)")
    run.add_argument("--shared-dir", action="store_true",
                     help="DIR is on a filesystem every node mounts at the same path: nodes write there directly")
    run.add_argument("--frames", type=_positive_int, help="override the scenarios' measured frames")
    run.add_argument("--warmup", type=_positive_int, help="override the scenarios' warmup frames (at least 2)")
    run.add_argument("--force", action="store_true", help="passed to harness run: also run predicted failures")
    run.set_defaults(handler=cmd_fleet_run)


"""A real multi-node Ray cluster on this machine (loopback only), for trying a fleet and for the tests.

Every node is a full Ray node (its own raylet and object store) started by `ray.cluster_utils.Cluster`,
bound to 127.0.0.1. Nothing is left behind: Ray's temp folder (sessions, logs, sockets, the address file)
lives under one folder removed at the end, token authentication uses a random token passed by environment
(never written to ~/.ray/auth_token), and the nodes' processes are stopped before the context exits.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

LOOPBACK = "127.0.0.1"
NODE_RESOURCE = "harness_node_{index}"  # each local node also offers its own custom resource


@dataclass(frozen=True)
class LocalCluster:
    address: str
    root: Path  # every file Ray writes is under it (RAY_TMPDIR, possibly through a short link)
    node_ids: list[str]
    nodes: int


def _loopback_env(root: Path) -> dict[str, Optional[str]]:
    """Environment for a loopback cluster; returns the previous values to restore."""
    wanted = {
        "RAY_TMPDIR": str(root),
        # Ray resolves 127.0.0.1 to the host's routable address when clustering is enabled; this keeps
        # every address (GCS, raylets, the driver) on loopback, which is all a one-machine cluster needs.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Ray >= 2.5x turns token authentication on for new local clusters and would write the token to
        # ~/.ray/auth_token; a random token in the environment (inherited by every node) leaves no file.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    if "ray" in sys.modules:
        _apply_to_imported_ray()
    return previous


def _apply_to_imported_ray() -> None:
    """Ray reads these settings when it is imported: a process that imported it earlier gets them applied."""
    sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")  # re-reads RAY_AUTH_MODE, as Ray's own token setup does
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # a Ray without token authentication: nothing to refresh
        pass


def _restore(previous: dict[str, Optional[str]]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# Ray puts unix sockets at <RAY_TMPDIR>/ray/session_<date>_<pid>/sockets/plasma_store, and a socket path
# is limited to 107 bytes: a root longer than this goes through a short symbolic link in /tmp.
_MAX_ROOT_CHARS = 40


def prepare_loopback(parent: Optional[Path] = None) -> tuple[Path, Optional[Path], dict[str, Optional[str]]]:
    """Create the cluster's temp root (and a short link to it when needed) and set the environment.

    Call before `import ray` where possible. Returns (root, link or None, previous environment)."""
    root = Path(tempfile.mkdtemp(prefix="hray-", dir=parent))
    link = None
    if len(str(root)) > _MAX_ROOT_CHARS:
        link = Path(tempfile.mkdtemp(prefix="hray-", dir="/tmp"))
        link.rmdir()
        link.symlink_to(root, target_is_directory=True)
    return root, link, _loopback_env(link or root)


@contextmanager
def local_cluster(nodes: int, cpus_per_node: float = 1.0, parent: Optional[Path] = None,
                  extra_resources: Optional[dict[str, float]] = None) -> Iterator[LocalCluster]:
    """Start `nodes` Ray nodes on loopback, connect this process to them, and tear everything down after."""
    if nodes < 1:
        raise ValueError("a local cluster needs at least one node")
    root, link, previous = prepare_loopback(parent)
    cluster = None
    try:
        import ray
        from ray.cluster_utils import Cluster

        def node_args(index: int) -> dict:
            resources = {NODE_RESOURCE.format(index=index): 1.0, **(extra_resources or {})}
            return {"num_cpus": cpus_per_node, "node_ip_address": LOOPBACK, "resources": resources,
                    "include_dashboard": False}

        cluster = Cluster(initialize_head=True, head_node_args=node_args(0))
        for index in range(1, nodes):
            cluster.add_node(**node_args(index))
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
        node_ids = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        yield LocalCluster(address=cluster.address, root=root, node_ids=node_ids, nodes=nodes)
    finally:
        try:
            if "ray" in sys.modules:
                sys.modules["ray"].shutdown()
            if cluster is not None:
                cluster.shutdown()
        finally:
            _restore(previous)
            if link is not None:
                link.unlink(missing_ok=True)
            shutil.rmtree(root, ignore_errors=True)

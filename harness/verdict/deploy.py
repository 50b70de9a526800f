"""Which server deploys a measured configuration, which real-time runs may be ranked against each other, and in
which order the servers are recommended.

Runs are ranked only against runs measured with the same frame (`serving`): a server frame carries that server's
work (Opus, host copies, NVIDIA's second Mimi) and the bare core carries none, so a faster p99 across frames can be
less work rather than a better configuration. The recommendation takes the first frame, in the preset's order of
servers, that has a real-time run and whose server software has kernels for this GPU.
"""

from __future__ import annotations

from typing import Optional

from harness.contract.presets import PRESETS
from harness.knowledge.deploy import HARNESS_ONLY, SERVERS, missing_kernels
from harness.records.config import Offload, Quantize, RunConfig, Serving, servers_that_load
from harness.records.schema import RunResult, Session


def deployable_by(cfg: RunConfig) -> str:
    """Who can serve this configuration as measured (records.config.servers_that_load), named."""
    if cfg.offload is Offload.cpu:
        return "the harness's tuned offload (a fraction of the layers): " + HARNESS_ONLY
    if cfg.quantize.harness_only:
        return f"{cfg.quantize.value} weights (the harness's own layers, measured as the model loop): " + HARNESS_ONLY
    names = []
    for serving in servers_that_load(cfg.dtype, cfg.quantize, cfg.offload):
        name = SERVERS[serving.value].name
        if serving is Serving.personaplex_server and cfg.offload is Offload.auto:
            name += " with --cpu-offload"
        if serving is Serving.moshi_server:
            name += (" (--half)" if cfg.dtype.value == "float16" else "") + (
                " (quantize: true in config.json)" if cfg.quantize is Quantize.int8 else "")
        names.append(name)
    return "; or ".join(names) or HARNESS_ONLY


def serving_order(preset: str) -> list[Serving]:
    """The order in which frames are recommended: the preset's own server first (NVIDIA's for PersonaPlex: it runs
    the persona prompt and the user's stream as the model was trained), then the other server, the bare core last
    (no deployment runs it as measured)."""
    family = PRESETS[preset].family if preset in PRESETS else "moshi"
    servers = [Serving.personaplex_server, Serving.moshi_server]
    if family != "personaplex":
        servers.reverse()
    return [*servers, Serving.model]


def gpu_capability(run: RunResult, session: Session) -> Optional[str]:
    """The compute capability of the GPU the run used; None on a CPU."""
    if run.config.device.value != "cuda" or not session.machine.gpus:
        return None
    index = 0
    if run.engine is not None and run.engine.device.startswith("cuda:"):
        index = int(run.engine.device.split(":")[1])
    gpu = next((g for g in session.machine.gpus if g.index == index), session.machine.gpus[0])
    return gpu.compute_capability


def software_gap(run: RunResult, session: Session) -> Optional[str]:
    """Why the server that this run's frame measures cannot run here as its package ships; None when it can.
    A run measured in NVIDIA's fork itself on this GPU shows the environment works, whatever the pin says."""
    if run.engine is not None and run.engine.moshi_flavour == "nvidia" and run.config.device.value == "cuda":
        return None
    return missing_kernels(run.config.serving.value, gpu_capability(run, session))

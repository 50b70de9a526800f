"""What a diagnosis knows besides the log: the run, the machine, the GPU (given, probed or read from the log)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from harness.diagnosis.text import LogView
from harness.knowledge.gpus import GpuSpec, find_gpu
from harness.knowledge.wheels import parse_cc
from harness.records.config import RunConfig
from harness.records.machine import Machine


@dataclass(frozen=True)
class GpuContext:
    name: Optional[str] = None
    compute_capability: Optional[str] = None
    spec: Optional[GpuSpec] = None
    arch_list: tuple[str, ...] = ()
    source: str = ""  # "given", "probed", "log"


@dataclass
class Context:
    run: Optional[RunConfig] = None
    machine: Optional[Machine] = None
    peak_rss_bytes: Optional[int] = None
    gpu: GpuContext = field(default_factory=GpuContext)
    os: str = ""  # "windows", "wsl", "linux" or "" when unknown
    symptom: str = ""  # an error that only followed the real cause (set by the engine)

    @property
    def cc(self) -> Optional[str]:
        return self.gpu.compute_capability


@dataclass(frozen=True)
class Found:
    """One signature's match in a log."""

    match: re.Match
    view: LogView
    first_line: int
    last_line: int
    warning: bool

    @property
    def quote(self) -> str:
        return self.view.flat(self.first_line, self.last_line)

    @property
    def text(self) -> str:
        """The whole log, whitespace collapsed (for figures that sit elsewhere in the message)."""
        return " ".join(self.view.text.split())


_CC_IN_LOG = (re.compile(r"capability (sm_\d+)"), re.compile(r"capability (?:of )?(\d+\.\d+)"),
              re.compile(r"capability:? \((\d+), ?(\d+)\)"), re.compile(r"compute capability (\d+\.\d+)"))
_NAME_IN_LOG = (re.compile(r"Found (.+?) which is too old"), re.compile(r"^\W*(.+?) with CUDA capability sm_\d+", re.M),
                re.compile(r"Using GPU: (.+)"), re.compile(r"Device \d+: (.+?), compute capability"))


def gpu_from_log(text: str) -> GpuContext:
    """The GPU a log names: its compute capability and, if the exact name is in the table, its spec."""
    name = None
    for pattern in _NAME_IN_LOG:
        found = pattern.search(text)
        if found:
            name = found.group(1).strip().strip("`'\"").split(": ")[-1]  # drop "UserWarning: " and kin
            break
    cc = None
    for pattern in _CC_IN_LOG:
        found = pattern.search(text)
        if found:
            try:
                major, minor = parse_cc(found.group(1) if found.lastindex == 1 else f"{found.group(1)}.{found.group(2)}")
            except ValueError:
                continue
            cc = f"{major}.{minor}"
            break
    spec = find_gpu(name) if name else None
    if spec and not cc:
        cc = spec.compute_capability
    return GpuContext(name=name, compute_capability=cc, spec=spec, source="log") if (name or cc) else GpuContext()


def gpu_from_machine(machine: Optional[Machine]) -> GpuContext:
    if machine is None or not machine.gpus:
        return GpuContext(arch_list=tuple(machine.cuda_arch_list) if machine else ())
    gpu = machine.gpus[0]
    return GpuContext(name=gpu.name, compute_capability=gpu.compute_capability,
                      spec=find_gpu(gpu.name, gpu.memory_total_bytes), arch_list=tuple(machine.cuda_arch_list),
                      source="probed")


def gpu_from_spec(spec: GpuSpec) -> GpuContext:
    return GpuContext(name=spec.name, compute_capability=spec.compute_capability, spec=spec, source="given")


def os_from_log(text: str) -> str:
    if "/usr/lib/wsl" in text or "microsoft-standard-WSL" in text or "WSL2" in text:
        return "wsl"
    if re.search(r"[A-Z]:\\|win_amd64|\.exe\b|Windows|PowerShell|\.bat\b", text):
        return "windows"
    if re.search(r"/usr/|/home/|/opt/|/root/|site-packages/", text):
        return "linux"
    return ""

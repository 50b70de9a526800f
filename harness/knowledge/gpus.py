"""GPU specifications, matched by exact name or alias (never by substring), each with its source.

`name` is what the table calls the part; `nvml_names` are the exact strings NVML / torch report for
it (several parts share one: the 8 GB and 16 GB RTX 4060 Ti both say "NVIDIA GeForce RTX 4060 Ti",
so the memory size picks between them). Bandwidth is the memory bandwidth in GB/s; `host_link_gbs`
is the usable host-to-device bandwidth (what CPU offload pays per step). Memory kinds:

- discrete: the GPU's own memory plus the host's RAM over PCIe.
- unified: one physical pool shared by CPU and GPU (Jetson, DGX Spark / GB10): whatever the host
  holds is taken from the same memory the GPU uses, and "offloading" to the CPU frees nothing.
- coherent: Grace-Hopper/Blackwell superchips: the GPU's HBM plus the Grace LPDDR5X reached over
  NVLink-C2C (450 GB/s each way), so offloaded layers are read far faster than over PCIe.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Optional

GIB = 2**30
MIB = 2**20
MemoryKind = Literal["discrete", "unified", "coherent"]

# usable host links, GB/s: PCIe 3.0 x16 ~12, 4.0 x16 ~25, 4.0 x8 ~12.5, 5.0 x16 ~50, 5.0 x8 ~25
PCIE3, PCIE4, PCIE4_X8, PCIE5, PCIE5_X8, C2C = 12.0, 25.0, 12.5, 50.0, 25.0, 450.0


@dataclass(frozen=True)
class GpuSpec:
    name: str
    vram_gib: float
    compute_capability: str
    bandwidth_gbs: float
    host_link_gbs: float
    aliases: tuple[str, ...] = ()
    nvml_names: tuple[str, ...] = ()
    source: str = ""
    laptop: bool = False
    memory: MemoryKind = "discrete"
    host_ram_gib: Optional[float] = None  # memory the part always comes with (unified pool, Grace LPDDR5X)
    reported_mib: Optional[int] = None  # total memory as nvidia-smi / NVML report it (ECC on where it is the default)
    memory_source: str = ""  # where reported_mib was seen
    boost_mhz: Optional[int] = None  # the GPU's boost clock: a small kernel's execution time follows it
    sms: Optional[int] = None  # streaming multiprocessors

    @property
    def unified(self) -> bool:
        return self.memory == "unified"

    @property
    def memory_bytes(self) -> int:
        """What a process can be given: the card's total as the driver reports it, else the nominal size."""
        return self.reported_mib * MIB if self.reported_mib else int(self.vram_gib * GIB)

    @property
    def memory_label(self) -> str:
        if self.reported_mib:
            return f"{self.reported_mib} MiB ({self.reported_mib / 1024:.1f} GiB) as nvidia-smi reports"
        return f"{self.vram_gib:g} GiB nominal"


def _g(name: str, vram: float, cc: str, bw: float, link: float, aliases: tuple[str, ...], source: str,
       nvml: tuple[str, ...] = (), **kw: object) -> GpuSpec:
    return GpuSpec(name, vram, cc, bw, link, aliases, nvml or (name,), source, **kw)  # type: ignore[arg-type]


TPU = "https://www.techpowerup.com/gpu-specs/"
GPUS: tuple[GpuSpec, ...] = (
    # consumer desktop
    _g("NVIDIA GeForce GTX 1080 Ti", 11, "6.1", 484, PCIE3, ("gtx1080ti", "1080ti", "gtx 1080 ti"),
       TPU + "geforce-gtx-1080-ti.c2877"),
    _g("NVIDIA GeForce RTX 3090", 24, "8.6", 936, PCIE4, ("rtx3090", "3090"), TPU + "geforce-rtx-3090.c3622"),
    _g("NVIDIA GeForce RTX 4090", 24, "8.9", 1008, PCIE4, ("rtx4090", "4090"), TPU + "geforce-rtx-4090.c3889"),
    _g("NVIDIA GeForce RTX 4080", 16, "8.9", 716.8, PCIE4, ("rtx4080", "4080"), TPU + "geforce-rtx-4080.c3888"),
    _g("NVIDIA GeForce RTX 4070 Ti", 12, "8.9", 504, PCIE4, ("rtx4070ti", "4070ti"),
       TPU + "geforce-rtx-4070-ti.c3950"),
    _g("NVIDIA GeForce RTX 4060 Ti 16GB", 16, "8.9", 288, PCIE4_X8, ("rtx4060ti-16gb", "4060ti-16gb"),
       TPU + "geforce-rtx-4060-ti-16-gb.c4155", nvml=("NVIDIA GeForce RTX 4060 Ti",)),
    _g("NVIDIA GeForce RTX 4060 Ti 8GB", 8, "8.9", 288, PCIE4_X8, ("rtx4060ti-8gb", "4060ti-8gb"),
       TPU + "geforce-rtx-4060-ti-8-gb.c3890", nvml=("NVIDIA GeForce RTX 4060 Ti",)),
    _g("NVIDIA GeForce RTX 5090", 32, "12.0", 1792, PCIE5, ("rtx5090", "5090"), TPU + "geforce-rtx-5090.c4216"),
    _g("NVIDIA GeForce RTX 5090 D", 32, "12.0", 1792, PCIE5, ("rtx5090d", "5090d"), TPU + "geforce-rtx-5090-d.c4278"),
    _g("NVIDIA GeForce RTX 5080", 16, "12.0", 960, PCIE5, ("rtx5080", "5080"), TPU + "geforce-rtx-5080.c4217"),
    _g("NVIDIA GeForce RTX 5070 Ti", 16, "12.0", 896, PCIE5, ("rtx5070ti", "5070ti"),
       TPU + "geforce-rtx-5070-ti.c4243"),
    _g("NVIDIA GeForce RTX 5060 Ti 16GB", 16, "12.0", 448, PCIE5_X8, ("rtx5060ti", "5060ti", "rtx5060ti-16gb"),
       TPU + "geforce-rtx-5060-ti-16-gb.c4246", nvml=("NVIDIA GeForce RTX 5060 Ti",)),
    _g("NVIDIA GeForce RTX 5060 Ti 8GB", 8, "12.0", 448, PCIE5_X8, ("rtx5060ti-8gb",),
       TPU + "geforce-rtx-5060-ti-8-gb.c4292", nvml=("NVIDIA GeForce RTX 5060 Ti",)),
    # laptops: same names with "Laptop GPU", less memory and bandwidth than the desktop card
    _g("NVIDIA GeForce RTX 5090 Laptop GPU", 24, "12.0", 896, PCIE5, ("rtx5090-laptop", "5090-laptop"),
       "https://www.nvidia.com/en-us/geforce/laptops/50-series/", laptop=True),
    _g("NVIDIA GeForce RTX 4090 Laptop GPU", 16, "8.9", 576, PCIE4, ("rtx4090-laptop", "4090-laptop"),
       "https://www.nvidia.com/en-us/geforce/laptops/40-series/", laptop=True),
    # workstation
    _g("NVIDIA RTX 6000 Ada Generation", 48, "8.9", 960, PCIE4, ("rtx6000-ada", "rtx-6000-ada"),
       "https://www.nvidia.com/en-us/design-visualization/rtx-6000/"),
    _g("NVIDIA RTX PRO 6000 Blackwell", 96, "12.0", 1792, PCIE5,
       ("rtx-pro-6000", "rtxpro6000", "rtx-pro-6000-blackwell"),
       "https://www.nvidia.com/en-us/products/workstations/professional-desktop-gpus/rtx-pro-6000/",
       nvml=("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "NVIDIA RTX PRO 6000 Blackwell Server Edition",
             "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition")),
    # data centre, PCIe
    _g("NVIDIA T4", 16, "7.5", 320, PCIE3, ("t4",), "https://www.nvidia.com/en-us/data-center/tesla-t4/",
       nvml=("Tesla T4", "NVIDIA T4")),
    _g("NVIDIA A10", 24, "8.6", 600, PCIE4, ("a10",), "https://www.nvidia.com/en-us/data-center/products/a10-gpu/"),
    _g("NVIDIA A10G", 24, "8.6", 600, PCIE4, ("a10g",), "https://aws.amazon.com/ec2/instance-types/g5/"),
    _g("NVIDIA L4", 24, "8.9", 300, PCIE4, ("l4",), "https://www.nvidia.com/en-us/data-center/l4/"),
    _g("NVIDIA L40", 48, "8.9", 864, PCIE4, ("l40",), "https://www.nvidia.com/en-us/data-center/l40/"),
    _g("NVIDIA L40S", 48, "8.9", 864, PCIE4, ("l40s",), "https://www.nvidia.com/en-us/data-center/l40s/"),
    _g("NVIDIA A100-PCIE-40GB", 40, "8.0", 1555, PCIE4, ("a100-pcie", "a100-pcie-40gb"),
       "https://www.nvidia.com/en-us/data-center/a100/"),
    _g("NVIDIA A100 80GB PCIe", 80, "8.0", 1935, PCIE4, ("a100-80gb-pcie",), "https://www.nvidia.com/en-us/data-center/a100/"),
    _g("NVIDIA A100-SXM4-40GB", 40, "8.0", 1555, PCIE4, ("a100", "a100-40gb", "a100-sxm4-40gb"),
       "https://www.nvidia.com/en-us/data-center/a100/"),
    _g("NVIDIA A100-SXM4-80GB", 80, "8.0", 2039, PCIE4, ("a100-80gb", "a100-sxm4-80gb"),
       "https://www.nvidia.com/en-us/data-center/a100/"),
    _g("NVIDIA H100 80GB HBM3", 80, "9.0", 3350, PCIE5, ("h100", "h100-sxm"), "https://www.nvidia.com/en-us/data-center/h100/"),
    _g("NVIDIA H100 PCIe", 80, "9.0", 2000, PCIE5, ("h100-pcie",), "https://www.nvidia.com/en-us/data-center/h100/"),
    _g("NVIDIA H100 NVL", 94, "9.0", 3900, PCIE5, ("h100-nvl", "h100nvl"), "https://www.nvidia.com/en-us/data-center/h100/"),
    _g("NVIDIA H200", 141, "9.0", 4800, PCIE5, ("h200", "h200-sxm"), "https://www.nvidia.com/en-us/data-center/h200/"),
    _g("NVIDIA B200", 180, "10.0", 7700, PCIE5, ("b200",), "https://www.nvidia.com/en-us/data-center/hgx/"),
    # superchips: HBM plus Grace LPDDR5X over NVLink-C2C
    _g("NVIDIA GH200 480GB", 96, "9.0", 4000, C2C, ("gh200", "gh200-96gb"),
       "https://www.nvidia.com/en-us/data-center/grace-hopper-superchip/", nvml=("NVIDIA GH200 480GB",),
       memory="coherent", host_ram_gib=480),
    _g("NVIDIA GB200", 186, "10.0", 8000, C2C, ("gb200",), "https://www.nvidia.com/en-us/data-center/gb200-nvl72/",
       memory="coherent", host_ram_gib=480),
    _g("NVIDIA GB300", 288, "10.3", 8000, C2C, ("gb300",), "https://www.nvidia.com/en-us/data-center/gb300-nvl72/",
       memory="coherent", host_ram_gib=480),
    # unified memory: one LPDDR pool for CPU and GPU
    _g("NVIDIA Jetson AGX Orin 64GB", 64, "8.7", 204.8, 204.8, ("jetson-agx-orin", "agx-orin", "orin"),
       "https://www.nvidia.com/en-us/autonomous-machines/embedded-systems/jetson-orin/", nvml=("Orin",),
       memory="unified", host_ram_gib=64),
    _g("NVIDIA Jetson AGX Thor", 128, "11.0", 273, 273, ("jetson-thor", "agx-thor", "thor"),
       "https://www.nvidia.com/en-us/autonomous-machines/embedded-systems/jetson-thor/", nvml=("NVIDIA Thor",),
       memory="unified", host_ram_gib=128),
    _g("NVIDIA DGX Spark (GB10)", 128, "12.1", 273, 273, ("dgx-spark", "gb10", "spark"),
       "https://www.nvidia.com/en-us/products/workstations/dgx-spark/", nvml=("NVIDIA GB10",),
       memory="unified", host_ram_gib=128),
)


# Memory as the card reports it (nvidia-smi "Memory-Usage" total, MiB), the source beside each figure. GDDR
# datacenter cards (T4, A10, A10G, L4, L40S) run with ECC on by default and give up 1/16 of their memory to it
# (an L4 is sold as 24 GB and reports 23034 MiB = 22.5 GiB); HBM parts report slightly less than their nominal size.
MODAL_2797 = "https://github.com/modal-labs/modal-client/pull/2797 (nvidia-smi totals across Modal's GPU types)"
REPORTED_MIB: dict[str, tuple[int, str]] = {
    "NVIDIA T4": (15360, MODAL_2797 + "; ECC on"),
    "NVIDIA A10": (23028, MODAL_2797 + "; ECC on"),
    "NVIDIA A10G": (23028, "https://github.com/NVIDIA/DCGM/issues/232 (nvidia-smi: NVIDIA A10G 23028MiB); ECC on"),
    "NVIDIA L4": (23034, MODAL_2797 + "; https://zenn.dev/kun432/scraps/c15a8af84f93b2 (10658MiB / 23034MiB); ECC on"),
    "NVIDIA L40S": (46068, MODAL_2797 + "; https://github.com/akash-network/provider-configs/pull/99 (46068 MiB); "
                           "ECC on"),
    "NVIDIA A100-PCIE-40GB": (40960, MODAL_2797 + " (A100 40GB)"),
    "NVIDIA A100-SXM4-40GB": (40960, MODAL_2797 + " (A100 40GB)"),
    "NVIDIA A100 80GB PCIe": (81920, MODAL_2797 + " (A100 80GB)"),
    "NVIDIA A100-SXM4-80GB": (81920, MODAL_2797 + " (A100 80GB)"),
    "NVIDIA H100 80GB HBM3": (81559, MODAL_2797 + " (H100)"),
    "NVIDIA GeForce RTX 4090": (24564, "https://github.com/RLinf/RLinf/issues/255 (nvidia-smi: 24564MiB)"),
    "NVIDIA GeForce RTX 5090": (32607, "https://github.com/noonghunna/club-3090/issues/617 (nvidia-smi: 32607MiB)"),
}

# Boost clock (MHz) and SM count of each part, from its TechPowerUp page (the `source` of consumer entries) or
# NVIDIA's datasheet: what a small kernel's execution time follows (harness.plan.steptime). None: not published.
CLOCKS: dict[str, tuple[int, int]] = {
    "NVIDIA GeForce GTX 1080 Ti": (1582, 28), "NVIDIA GeForce RTX 3090": (1695, 82),
    "NVIDIA GeForce RTX 4090": (2520, 128), "NVIDIA GeForce RTX 4080": (2505, 76),
    "NVIDIA GeForce RTX 4070 Ti": (2610, 60), "NVIDIA GeForce RTX 4060 Ti 16GB": (2535, 34),
    "NVIDIA GeForce RTX 4060 Ti 8GB": (2535, 34), "NVIDIA GeForce RTX 5090": (2407, 170),
    "NVIDIA GeForce RTX 5090 D": (2407, 170), "NVIDIA GeForce RTX 5080": (2617, 84),
    "NVIDIA GeForce RTX 5070 Ti": (2452, 70), "NVIDIA GeForce RTX 5060 Ti 16GB": (2572, 36),
    "NVIDIA GeForce RTX 5060 Ti 8GB": (2572, 36), "NVIDIA RTX 6000 Ada Generation": (2505, 142),
    "NVIDIA RTX PRO 6000 Blackwell": (2617, 188), "NVIDIA T4": (1590, 40), "NVIDIA A10": (1695, 72),
    "NVIDIA A10G": (1710, 80), "NVIDIA L4": (2040, 58), "NVIDIA L40": (2490, 142), "NVIDIA L40S": (2520, 142),
    "NVIDIA A100-PCIE-40GB": (1410, 108), "NVIDIA A100 80GB PCIe": (1410, 108), "NVIDIA A100-SXM4-40GB": (1410, 108),
    "NVIDIA A100-SXM4-80GB": (1410, 108), "NVIDIA H100 80GB HBM3": (1980, 132), "NVIDIA H100 PCIe": (1755, 114),
    "NVIDIA H100 NVL": (1785, 132), "NVIDIA H200": (1980, 132), "NVIDIA GH200 480GB": (1980, 132),
    "NVIDIA Jetson AGX Orin 64GB": (1300, 16),
    # GB10 is not on TechPowerUp: 6144 CUDA cores at 2525 MHz (GB10_CLOCK_SOURCE), which is NVIDIA's own 31 TFLOPS
    # FP32 (Hot Chips 2025) = 6144 x 2 FLOPs x 2.525 GHz; 48 SMs of 128 cores (Blackwell).
    "NVIDIA DGX Spark (GB10)": (2525, 48),
}
CLOCK_SOURCE = TPU + " (boost clock and SM count of each part's page)"
GB10_CLOCK_SOURCE = ("https://hmc-tech.com/gpu/nvidia-gb10-vs-nvidia-6x-geforce-rtx-4090 (NVIDIA GB10: 6144 Shaders, "
                     "2525MHz, FP32 31.03 TFLOPS); https://www.ferra.ru/news/techlife/nvidia-predstavila-superchip-"
                     "gb10-grace-blackwell-20-arm-yadrami-i-gpu-blackwell-27-08-2025.htm (31 TFLOPS FP32)")


def _with_reported(spec: GpuSpec) -> GpuSpec:
    mib, source = REPORTED_MIB.get(spec.name, (None, ""))
    mhz, sms = CLOCKS.get(spec.name, (None, None))
    return replace(spec, reported_mib=mib, memory_source=source or f"nominal: {spec.source}", boost_mhz=mhz, sms=sms)


GPUS = tuple(_with_reported(spec) for spec in GPUS)

def _norm(text: str) -> str:
    """Case, spaces, dashes and underscores do not matter; every other character does."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_gpu(name: str, memory_bytes: Optional[int] = None) -> Optional[GpuSpec]:
    """The entry whose name, NVML name or alias equals `name` exactly (after normalising).

    Never a substring: "NVIDIA L40S" is not the L4 and "RTX 5090 Laptop GPU" is not the desktop 5090.
    Where one NVML name covers several memory sizes, `memory_bytes` picks the closest.
    """
    wanted = _norm(name)
    matches = [s for s in GPUS if wanted in {_norm(s.name), *(_norm(n) for n in s.nvml_names),
                                              *(_norm(a) for a in s.aliases)}]
    if not matches:
        return None
    if memory_bytes and len(matches) > 1:
        return min(matches, key=lambda s: abs(s.vram_gib * GIB - memory_bytes))
    return matches[0]


def gpu_names() -> list[str]:
    return [spec.aliases[0] if spec.aliases else spec.name for spec in GPUS]


def custom_gpu(vram_gib: float, bandwidth_gbs: Optional[float], compute_capability: Optional[str],
               name: str = "custom GPU", host_link_gbs: float = PCIE4) -> GpuSpec:
    """A card not in the table, from what the user knows of it (`harness plan --vram --bandwidth --cc`)."""
    return GpuSpec(name, vram_gib, compute_capability or "", bandwidth_gbs or 0.0, host_link_gbs,
                   source="given on the command line")

"""Host facts readable without torch: CPU, memory, OS, packages."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from typing import Optional

import psutil

PACKAGES = ("torch", "moshi", "bitsandbytes", "accelerate", "triton", "nvidia-ml-py", "safetensors", "numpy")


def os_name() -> str:
    system = platform.system()
    if system == "Linux":
        release = platform.release().lower()
        if "microsoft" in release or "wsl" in release or os.environ.get("WSL_DISTRO_NAME"):
            return "WSL"
        return "Linux"
    if system == "Darwin":
        return "macOS"
    return system or "unknown"


def wsl_facts(proc_version: str = "/proc/version",
              interop: str = "/proc/sys/fs/binfmt_misc/WSLInterop") -> Optional[dict[str, Optional[str]]]:
    """WSL as Linux sees it: the kernel (/proc/version names microsoft-standard-WSL2), the distribution
    (WSL_DISTRO_NAME), whether Windows programs can be started (WSLInterop) and, through that, the WSL release
    (`wsl.exe --version`, which Linux cannot read otherwise). None: not WSL."""
    try:
        kernel = open(proc_version, encoding="utf-8", errors="replace").read().strip()
    except OSError:
        kernel = ""
    distro = os.environ.get("WSL_DISTRO_NAME")
    if "microsoft" not in kernel.lower() and not distro:
        return None
    flavour = "WSL2" if "WSL2" in kernel or "microsoft-standard" in kernel else "WSL1"
    has_interop = os.path.exists(interop)
    return {"wsl": flavour, "kernel": kernel[:200], "distro": distro, "interop": "yes" if has_interop else "no",
            "release": _wsl_release() if has_interop else None}


def _wsl_release() -> Optional[str]:
    import shutil
    import subprocess

    exe = shutil.which("wsl.exe") or "/mnt/c/Windows/System32/wsl.exe"
    try:
        done = subprocess.run([exe, "--version"], capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    raw = done.stdout
    text = raw.decode("utf-16-le", errors="replace") if b"\x00" in raw else raw.decode(errors="replace")
    for line in text.splitlines():
        if line.strip().lower().startswith("wsl"):  # "WSL version: 2.7.0.0" (localised names keep the number)
            return line.split(":", 1)[-1].strip() or None
    return None


def package_versions() -> dict[str, Optional[str]]:
    versions: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hostname() -> str:
    return socket.gethostname()


def ram_total_bytes() -> int:
    return int(psutil.virtual_memory().total)


def cores() -> tuple[int, Optional[int]]:
    return os.cpu_count() or 1, psutil.cpu_count(logical=False)

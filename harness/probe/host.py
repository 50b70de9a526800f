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

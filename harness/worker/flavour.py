"""Which `moshi` this worker imported: PyPI's (moshi 0.2.13) or NVIDIA PersonaPlex's fork (distribution
`moshi-personaplex`, a fork of moshi 0.1.0). Both install the module `moshi`; the fork's LMGen steps persona prompts
itself (`step_system_prompts`), needs a `device`, and keeps its streaming position as a Python int.

The behaviour decides (the LMGen that will run); the distribution that owns it gives the version.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata
from typing import Optional

DISTRIBUTIONS = {"nvidia": "moshi-personaplex", "pypi": "moshi"}


def _version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def moshi_flavour() -> tuple[Optional[str], str]:
    """(version, flavour): flavour 'nvidia' or 'pypi'; ('', '') without moshi; 'unknown' when it does not import."""
    try:
        from moshi.models.lm import LMGen
    except ImportError:
        installed = [(v, f) for f, d in DISTRIBUTIONS.items() if (v := _version(d)) is not None]
        return (installed[0][0], "unknown") if installed else (None, "")
    except Exception:  # noqa: BLE001 - a moshi that fails to import shows where it is used
        return None, "unknown"
    flavour = "nvidia" if hasattr(LMGen, "step_system_prompts") else "pypi"
    return _version(DISTRIBUTIONS[flavour]) or _version(DISTRIBUTIONS["pypi"]) or "unknown", flavour


def is_nvidia() -> bool:
    return moshi_flavour()[1] == "nvidia"

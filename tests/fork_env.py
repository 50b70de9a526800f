"""A virtual environment with NVIDIA PersonaPlex's fork of moshi, for tests and measurements that run the fork itself.

The fork (distribution `moshi-personaplex`, module `moshi`) is test material beside the repository
(`../shared/third_party/personaplex-moshi`, see its SOURCE.md); users of the project do not have it. It is installed
--no-deps (it declares torch<2.5, which has no wheel here) next to torch 2.13.0 from this machine's wheel folder and
the few packages its modules import, from a copy (the shared folder may be read-only; setuptools builds in place).
Built once per machine under ~/.cache/harness-tests, outside every work tree, like the user-environment test's venv;
a lock keeps two test sessions from building it at once; deleting the folder rebuilds it.

    python tests/fork_env.py        # build it (or say why it cannot be built) and print its interpreter
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORK = Path(os.environ.get("HARNESS_PERSONAPLEX_FORK", REPO.parent / "shared" / "third_party" / "personaplex-moshi"))
TORCH = "2.13.0"
ENV = Path.home() / ".cache" / "harness-tests" / f"env-personaplex-fork-torch{TORCH}"
# What the fork's modules import (lm.py imports sphn and tqdm at the top), and its server's pins (sphn, aiohttp) and
# pyloudnorm (its .wav voice prompts): one environment for the worker's tests and the real server's.
RUNTIME = ["numpy", "safetensors", "sentencepiece", "einops", "huggingface_hub", "tqdm", "sphn>=0.1.4,<0.2",
           "aiohttp>=3.10.5,<3.11", "pyloudnorm"]


class ForkUnavailable(RuntimeError):
    """Why the fork's environment cannot be had here (the reason a test skips with)."""


def _run(*args: str, timeout: float = 1800) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ForkUnavailable(f"{' '.join(args[:6])} ... failed: {(done.stderr or done.stdout)[-1500:]}")


def ensure() -> Path:
    """The fork environment's interpreter, built if needed; ForkUnavailable says why not."""
    if not (FORK / "moshi" / "models" / "lm.py").is_file():
        raise ForkUnavailable(f"NVIDIA's fork of moshi is not at {FORK} (test material beside the repository: "
                              "../shared/third_party/personaplex-moshi)")
    python = ENV / "bin" / "python"
    ready = ENV / ".ready"
    if ready.exists():
        return python
    ENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ENV.parent / f".{ENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it: wait for it
        if ready.exists():
            return python
        try:
            _run(sys.executable, "-m", "venv", "--clear", str(ENV), timeout=300)
            _run(str(python), "-m", "pip", "install", "-q", f"torch=={TORCH}", *RUNTIME)
            with tempfile.TemporaryDirectory() as scratch:
                copy = Path(scratch) / "personaplex-moshi"
                shutil.copytree(FORK, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
                for path in [copy, *copy.rglob("*")]:  # a read-only shared folder copies read-only: pip writes here
                    path.chmod(path.stat().st_mode | 0o200)
                _run(str(python), "-m", "pip", "install", "-q", "--no-deps", str(copy))
        except (ForkUnavailable, OSError, subprocess.TimeoutExpired) as exc:
            raise ForkUnavailable(f"cannot build the fork's environment offline at {ENV}: {exc}") from exc
        ready.write_text("ok\n")
    return python


if __name__ == "__main__":
    try:
        print(ensure())
    except ForkUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)

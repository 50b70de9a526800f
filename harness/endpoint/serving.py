"""`harness serve`: the REAL server of PyPI moshi or of NVIDIA's fork, on 127.0.0.1, with the harness's weights.

PyPI moshi 0.2.13 (`python -m moshi.server`) reads the architecture from `--config-path`: the preset's architecture
is written there, with synthetic weights in `--moshi-weight` / `--mimi-weight` and a SentencePiece file in
`--tokenizer`; nothing is downloaded (`--static none`, HF_HUB_OFFLINE=1). NVIDIA's fork has no config file: the
preset's architecture is set in its loader's `_lm_kwargs` before its own main runs (harness/worker/served.py says
exactly what else is set there and why), and its unconditional `hf_hub_download(repo, "config.json")` is answered
from a local Hugging Face cache holding only that file. The weights of each server are written by that server's own
interpreter (the fork lays attention weights out differently), once, and cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from harness.contract.presets import PRESETS
from harness.launcher.server import RunningServer, ServerStartError, run_step, start_server

ServerKind = Literal["moshi", "personaplex"]
LM_FILE = "model.safetensors"
MIMI_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"
TOKENIZER_FILE = "tokenizer_spm_32k_3.model"
TEXT_CARD = 32000  # moshi's _lm_kwargs["text_card"]; no preset changes it
VOICE_FILE = "voice.wav"
PERSONAPLEX_REPO = "nvidia/personaplex-7b-v1"
PREPARE_TIMEOUT_S = 1800.0
MIN_VOICE_FRAMES = 6  # pyloudnorm (in NVIDIA's load_voice_prompt) needs more than one 400 ms block


class ServeError(RuntimeError):
    """Bad input or a server that cannot start: one line (plus log lines where a process failed)."""


@dataclass
class ServeSpec:
    preset: str = "personaplex-tiny"
    weights: str = "synthetic"
    device: str = "cpu"
    port: int = 8998
    server: ServerKind = "moshi"
    python: Optional[str] = None
    voice_frames: int = 50  # the synthetic voice prompt: 50 frames = 4 s, the in-process persona's default
    cache_dir: Optional[Path] = None
    ready_timeout_s: float = 900.0
    half: bool = False
    compile: bool = False  # moshi's torch.compile; on a CPU inductor recompiles for minutes per frame shape

    def interpreter(self) -> str:
        return self.python or sys.executable


@dataclass
class PreparedServer:
    command: list[str]
    env: dict[str, str]
    description: str
    voice_prompt: Optional[str]  # the query value a PersonaPlex caller must send
    files: Path


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "harness" / "serve"


def package_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"  # nothing is downloaded; a file the server wants and does not have is an error
    return env


def _moshi_flavor(python: str) -> str:
    code = ("import importlib.metadata as m, moshi.models.loaders as L\n"
            "name = 'moshi-personaplex' if not hasattr(L, 'CheckpointInfo') else 'moshi'\n"
            "print(name, m.version(name))")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServeError(f"cannot run {python}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ServeError(f"{python} cannot import moshi ({last})")
    return done.stdout.strip()


def _step(command: list[str], env: dict[str, str], log: Path, what: str) -> None:
    problem = run_step(command, env, log, PREPARE_TIMEOUT_S)
    if problem:
        raise ServeError(f"writing {what} failed: {problem}")


def _hf_stub(home: Path) -> None:
    """A Hugging Face cache holding only PersonaPlex's config.json, which NVIDIA's server downloads to count."""
    repo = home / "hub" / f"models--{PERSONAPLEX_REPO.replace('/', '--')}"
    revision = "0" * 40
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text(json.dumps({"note": "stub written by harness serve"}) + "\n")


def _synthetic_files(spec: ServeSpec, flavor: str, env: dict[str, str], cache: Path) -> tuple[Path, Path, Path]:
    """(shared folder: tokenizer, voices; LM + config folder; Mimi folder), written once per interpreter."""
    shared = cache / "shared"
    if not (shared / ".ready").exists():
        _step([sys.executable, "-m", "harness.worker.served", "tokenizer", str(shared), str(TEXT_CARD)], env,
              cache / "prepare.log", "the tokenizer")
        (shared / ".ready").write_text("ok\n")
    voices = shared / f"voices-{spec.voice_frames}"
    if not (voices / "voices" / VOICE_FILE).exists():
        _step([sys.executable, "-m", "harness.worker.served", "voice", str(voices), str(spec.voice_frames)], env,
              cache / "prepare.log", "the voice prompt")
    key = hashlib.sha256(f"{spec.interpreter()}|{flavor}|{spec.preset}".encode()).hexdigest()[:12]
    mimi_key = hashlib.sha256(f"{spec.interpreter()}|{flavor}".encode()).hexdigest()[:12]
    model = cache / f"{spec.preset}-{flavor.split()[0]}-{key}"
    mimi = cache / f"mimi-{flavor.split()[0]}-{mimi_key}"
    if not (mimi / ".ready").exists():  # Mimi's attention layout differs between PyPI moshi and the fork too
        _step([spec.interpreter(), "-m", "harness.worker.served", "mimi", str(mimi)], env, cache / "prepare.log",
              "Mimi's synthetic weights")
        (mimi / ".ready").write_text(f"{flavor}\n")
    if not (model / ".ready").exists():
        _step([spec.interpreter(), "-m", "harness.worker.served", "lm", str(model), spec.preset], env,
              cache / "prepare.log", f"the {spec.preset} LM's synthetic weights")
        (model / ".ready").write_text(f"{flavor}\n")
    return shared, model, mimi


def prepare(spec: ServeSpec) -> PreparedServer:
    if spec.preset not in PRESETS:
        raise ServeError(f"unknown preset {spec.preset!r} (harness presets lists them)")
    if spec.voice_frames < MIN_VOICE_FRAMES:
        raise ServeError(f"--voice-frames {spec.voice_frames}: NVIDIA's server measures the voice prompt's loudness "
                         f"over 400 ms blocks and fails on a shorter one; use at least {MIN_VOICE_FRAMES}")
    if spec.server == "personaplex" and spec.python is None:
        raise ServeError("--server personaplex needs --python: the interpreter of an environment with NVIDIA's "
                         "moshi-personaplex installed (its server is not PyPI moshi's)")
    python = spec.interpreter()
    if spec.python is not None and not Path(python).exists():
        raise ServeError(f"--python {python}: no such file")
    flavor = _moshi_flavor(python)
    wanted = "moshi-personaplex" if spec.server == "personaplex" else "moshi"
    if flavor.split()[0] != wanted:
        raise ServeError(f"{python} has {flavor}, but --server {spec.server} needs {wanted}")
    cache = spec.cache_dir or default_cache()
    env = package_env()
    if not spec.compile:
        env["NO_TORCH_COMPILE"] = "1"
    if spec.weights == "synthetic":
        shared, model, mimi_dir = _synthetic_files(spec, flavor, env, cache)
        lm, mimi, tokenizer = model / LM_FILE, mimi_dir / MIMI_FILE, shared / TOKENIZER_FILE
        config: Optional[Path] = model / "config.json"
        voices = shared / f"voices-{spec.voice_frames}" / "voices"
        weights = "synthetic weights (speed, not speech)"
    else:
        folder = Path(spec.weights)
        lm, mimi, tokenizer = folder / LM_FILE, folder / MIMI_FILE, folder / TOKENIZER_FILE
        missing = [p.name for p in (lm, mimi, tokenizer) if not p.exists()]
        if missing:
            raise ServeError(f"--weights {folder}: missing {', '.join(missing)}")
        config = folder / "config.json" if (folder / "config.json").exists() else None
        voices = folder / "voices"
        weights = f"weights from {folder}"
    common = ["--host", "127.0.0.1", "--port", str(spec.port), "--static", "none", "--device", spec.device,
              "--moshi-weight", str(lm), "--mimi-weight", str(mimi), "--tokenizer", str(tokenizer)]
    boot = [python, "-m", "harness.worker.served", "boot", spec.preset, "--"]
    if spec.server == "moshi":
        if config is None:
            raise ServeError(f"--weights {spec.weights}: PyPI moshi's server needs its config.json beside the weights")
        args = [*common, "--config-path", str(config)] + (["--half"] if spec.half else [])
        voice = None
    else:
        home = cache / "hf-home"
        _hf_stub(home)
        env["HF_HOME"] = str(home)
        args = [*common, "--voice-prompt-dir", str(voices)]
        voice = VOICE_FILE if (voices / VOICE_FILE).exists() else None
    description = (f"{flavor} server (python -m moshi.server), {spec.preset}, {weights}, {spec.device}, "
                   f"torch.compile {'on' if spec.compile else 'off'}, 127.0.0.1:{spec.port}")
    return PreparedServer(command=[*boot, *args], env=env, description=description, voice_prompt=voice,
                          files=cache)


def start(spec: ServeSpec, log: Path) -> tuple[RunningServer, PreparedServer]:
    prepared = prepare(spec)
    try:
        return start_server(prepared.command, prepared.env, spec.port, log, spec.ready_timeout_s), prepared
    except ServerStartError as exc:
        raise ServeError(str(exc)) from None


def start_command(command: str, port: int, log: Path, ready_timeout_s: float) -> RunningServer:
    """A user's own server command (`{port}` in it is replaced), started and watched the same way."""
    try:
        argv = shlex.split(command.replace("{port}", str(port)))
    except ValueError as exc:
        raise ServeError(f"--start: cannot parse the command ({exc})") from None
    if not argv:
        raise ServeError("--start: empty command")
    try:
        return start_server(argv, dict(os.environ), port, log, ready_timeout_s)
    except FileNotFoundError:
        raise ServeError(f"--start: no such program {argv[0]!r}") from None
    except ServerStartError as exc:
        raise ServeError(str(exc)) from None

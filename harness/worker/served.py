"""Files and start-up for a REAL moshi / PersonaPlex server running the harness's synthetic weights.

`python -m harness.worker.served mimi DIR` writes Mimi with synthetic weights, in the layout of this interpreter's moshi;
`python -m harness.worker.served lm DIR PRESET` writes the LM of a preset, built from the moshi that THIS interpreter
imports (PyPI moshi and NVIDIA's fork lay out attention weights differently: each server gets a checkpoint in its own
layout), plus `config.json` (the architecture in PyPI moshi's `--config-path` format);
`python -m harness.worker.served tokenizer DIR CARD` writes a SentencePiece model with CARD pieces (the server turns
every sampled text id into a piece, so the vocabulary must cover the model's text_card);
`python -m harness.worker.served voice DIR FRAMES` writes a 24 kHz 16-bit WAV voice prompt for PersonaPlex.

`python -m harness.worker.served boot PRESET -- SERVER ARGS` runs the server's own `moshi.server` main, after three
things only, each because the shipped server cannot otherwise run here:
- NVIDIA's fork has no config: its loader copies the module-level `_lm_kwargs`; the preset's architecture is written
  into that dict before main runs (PyPI moshi reads `config.json` through `--config-path` instead).
- NVIDIA's server calls `web.run_app(app, port=...)` without a host, binding every interface: the harness binds
  127.0.0.1 only.
- PyPI moshi 0.2.13's warmup calls `torch.cuda.synchronize()` unconditionally, which raises without CUDA: on a
  machine without CUDA that call is a no-op (there is nothing to synchronise).
Standard library, torch and moshi only (this runs in the server's environment).
"""

from __future__ import annotations

import json
import math
import runpy
import sys
import wave
from pathlib import Path

from harness.contract.presets import PRESETS

LM_FILE = "model.safetensors"
MIMI_FILE = "tokenizer-e351c8d8-checkpoint125.safetensors"
TOKENIZER_FILE = "tokenizer_spm_32k_3.model"
CONFIG_FILE = "config.json"
SAMPLE_RATE = 24000
FRAME_SAMPLES = 1920


def _architecture(preset: str) -> dict:
    from moshi.models import loaders

    kwargs = dict(loaders._lm_kwargs)
    kwargs.update(PRESETS[preset].overrides)
    return kwargs


def _save(module, path: Path) -> None:  # noqa: ANN001 - torch module
    from safetensors.torch import save_file

    # SyntheticWeights packs a block into one storage; safetensors refuses tensors that share memory.
    state = {name: tensor.detach().clone().contiguous() for name, tensor in module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)


def _mimi_on_meta():  # noqa: ANN202 - moshi's MimiModel, from whichever moshi this interpreter has
    import torch
    from moshi.models import loaders

    try:
        with torch.device("meta"):
            return loaders.get_mimi(None, device="meta", num_codebooks=8)
    except TypeError:  # NVIDIA's fork: get_mimi(filename, device) always loads a file; build it with no file read
        load_model = loaders.load_model
        loaders.load_model = lambda *args, **kwargs: None
        try:
            with torch.device("meta"):
                return loaders.get_mimi("synthetic.safetensors", device="meta")
        finally:
            loaders.load_model = load_model


def write_mimi(out: Path) -> None:
    from harness.worker.engine.synthetic import SyntheticWeights

    mimi = _mimi_on_meta()
    SyntheticWeights(1).materialize(mimi, "cpu")
    _save(mimi, out / MIMI_FILE)


def write_lm(out: Path, preset: str) -> None:
    import torch
    from moshi.models.lm import LMModel

    from harness.worker.engine.synthetic import SyntheticWeights, lm_blocks

    kwargs = _architecture(preset)
    build = dict(kwargs)
    try:
        with torch.device("meta"):
            lm = LMModel(device="meta", dtype=torch.bfloat16, **build)
    except TypeError:  # PyPI moshi 0.2.13 dropped this argument (its loader pops it too)
        build.pop("depformer_causal", None)
        with torch.device("meta"):
            lm = LMModel(device="meta", dtype=torch.bfloat16, **build)
    weights = SyntheticWeights(0)
    for _, block in lm_blocks(lm):
        weights.materialize(block, "cpu")
    _save(lm, out / LM_FILE)
    config = {key: value for key, value in kwargs.items() if key != "depformer_causal"}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")


def write_tokenizer(out: Path, pieces: int) -> None:
    """A unigram SentencePiece model: byte-safe characters, common words, then filler pieces up to `pieces`."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    model = model_pb2.ModelProto()
    model.trainer_spec.model_type = model_pb2.TrainerSpec.UNIGRAM
    model.trainer_spec.vocab_size = pieces
    model.trainer_spec.unk_id, model.trainer_spec.bos_id, model.trainer_spec.eos_id = 0, 1, 2
    model.trainer_spec.pad_id = 3
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.escape_whitespaces = True
    kinds = model_pb2.ModelProto.SentencePiece
    for text, kind in (("<unk>", kinds.UNKNOWN), ("<s>", kinds.CONTROL), ("</s>", kinds.CONTROL),
                       ("<pad>", kinds.CONTROL)):
        model.pieces.add(piece=text, score=0.0, type=kind)
    words = ("the you and to a of is it that in for have be your are on with this what we can do as not my "
             "about so me at like just but if will an or all would how they one conversation good name enjoy "
             "having deep technology help customer service friendly agent system").split()
    seen = {p.piece for p in model.pieces}
    normal = [f"\u2581{w}" for w in words] + [chr(c) for c in range(33, 127)] + ["\u2581"]
    normal += [f"\u2581{chr(c)}" for c in range(33, 127)]
    for index, text in enumerate(normal):
        if text not in seen:
            seen.add(text)
            model.pieces.add(piece=text, score=-1.0 - 0.001 * index, type=kinds.NORMAL)
    filler = 0
    while len(model.pieces) < pieces:
        model.pieces.add(piece=f"\u2581x{filler:05d}", score=-20.0, type=kinds.NORMAL)
        filler += 1
    (out / TOKENIZER_FILE).write_bytes(model.SerializeToString())


def write_voice(out: Path, frames: int, name: str = "voice.wav") -> None:
    """A speech-like voice prompt (gliding voiced tone, syllable envelope): FRAMES x 80 ms at 24 kHz."""
    import numpy as np

    n = frames * FRAME_SAMPLES
    t = np.arange(n) / SAMPLE_RATE
    f0 = 140.0 + 25.0 * np.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * math.pi * 4.0 * t)) ** 2
    pcm = np.clip(0.15 * envelope * voiced, -1, 1)
    (out / "voices").mkdir(parents=True, exist_ok=True)
    with wave.open(str(out / "voices" / name), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes((pcm * 32767).astype("<i2").tobytes())


def boot(preset: str, server_args: list[str]) -> None:
    import torch
    from moshi.models import loaders

    if not hasattr(loaders, "CheckpointInfo"):  # NVIDIA's fork: no config file, a module-level architecture
        loaders._lm_kwargs.update(PRESETS[preset].overrides)
        from aiohttp import web

        run_app = web.run_app

        def run_on_loopback(app, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - aiohttp's signature
            kwargs["host"] = "127.0.0.1"
            return run_app(app, *args, **kwargs)

        web.run_app = run_on_loopback
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None
    sys.argv = ["moshi.server", *server_args]
    runpy.run_module("moshi.server", run_name="__main__", alter_sys=True)


def main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    if command == "boot":
        split = rest.index("--")
        boot(rest[0], rest[split + 1:])
        return 0
    out = Path(rest[0])
    out.mkdir(parents=True, exist_ok=True)
    if command == "mimi":
        write_mimi(out)
    elif command == "lm":
        write_lm(out, rest[1])
    elif command == "tokenizer":
        write_tokenizer(out, int(rest[1]))
    elif command == "voice":
        write_voice(out, int(rest[1]))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

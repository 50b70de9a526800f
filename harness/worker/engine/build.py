"""Build Mimi + LM + LMGen for one run configuration, applying every setting for real."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMGen, LMModel

from harness.contract.hostinfo import cpu_model
from harness.contract.offload import offloaded_layer_names
from harness.contract.wire import EngineInfo, WorkerRun
from harness.worker.engine.architecture import MIMI_CODEBOOKS, lm_on_meta, mimi_on_meta
from harness.worker.engine.checkpoint import CheckpointWeights, find_checkpoint_files
from harness.worker.engine.offload import auto_offload, offload_layers
from harness.worker.engine.quantized import (
    LAYERS,
    QuantizationTally,
    check_device,
    check_unchanged,
    compact_block,
    quantize_block,
    quantized_layers,
)
from harness.worker.engine.synthetic import SyntheticWeights, lm_blocks, meta_tensor_names
from harness.worker.flavour import moshi_flavour
from harness.worker.pipeline.lmgen import make_lmgen


class CudaUnavailableError(RuntimeError):
    pass


@dataclass
class BuiltModels:
    mimi: MimiModel
    lm: LMModel
    lm_gen: LMGen
    device: torch.device
    info: EngineInfo
    other_mimi: Optional[MimiModel] = None


def resolve_device(run: WorkerRun) -> torch.device:
    if run.device == "cuda":
        if not torch.cuda.is_available():
            reason = "this torch build has no CUDA" if torch.version.cuda is None else "no usable CUDA device"
            raise CudaUnavailableError(f"run asks for CUDA but torch.cuda.is_available() is False ({reason})")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


class Int8UnavailableError(RuntimeError):
    pass


def _int8():  # noqa: ANN202 - the int8 module, imported only for int8 runs
    """moshi's QLinear lives in PyPI moshi (moshi.utils.quantize); NVIDIA's fork has none (its server is bf16)."""
    try:
        from harness.worker.engine import int8
    except ImportError as exc:
        raise Int8UnavailableError(f"int8 needs moshi.utils.quantize, which this moshi ({' '.join(moshi_flavour())}) "
                                   f"does not have: {exc}") from exc
    return int8


def _mimi(mimi_file: Optional[Path], device: torch.device, seed: int) -> MimiModel:
    if mimi_file is not None and "num_codebooks" not in inspect.signature(loaders.get_mimi).parameters:
        mimi = loaders.get_mimi(mimi_file, device=device)  # NVIDIA's fork: sets 8 codebooks itself
    elif mimi_file is not None:
        mimi = loaders.get_mimi(mimi_file, device=device, num_codebooks=MIMI_CODEBOOKS)
    else:
        mimi = mimi_on_meta()
        SyntheticWeights(seed + 1).materialize(mimi, device)
    return mimi.eval()


def build_models(run: WorkerRun, preset: str, weights_path: Optional[Path], seed: int,
                 scratch_dir: Path, serving: str = "model") -> BuiltModels:
    device = resolve_device(run)
    dtype = getattr(torch, run.dtype)
    lm = lm_on_meta(preset, dtype)
    lm_parameters = sum(p.numel() for p in lm.parameters())
    layers = len(lm.transformer.layers)
    offloaded = offloaded_layer_names(layers, run.offload_fraction) if run.offload == "cpu" else []
    auto = run.offload == "auto"

    int8 = _int8() if run.quantize == "int8" else None
    tally: Optional[QuantizationTally] = None
    if run.quantize in LAYERS:
        check_device(run.quantize, device)
    if run.quantize != "none":
        tally = QuantizationTally(scheme=run.quantize)
    mimi_file: Optional[Path] = None
    if weights_path is None:
        source = SyntheticWeights(seed)
        weights = f"synthetic (seed {seed}; measures speed, not speech quality)"
    else:
        lm_file, mimi_file = find_checkpoint_files(weights_path)
        source = CheckpointWeights(lm_file, lm)
        weights = str(lm_file)
        if source.expanded:
            weights += f" ({len(source.expanded)} depformer weights expanded to dep_q={lm.dep_q})"

    for name, block in lm_blocks(lm):
        # Offloaded layers are built on the host; dispatch_model moves them to their tier. With offload: auto the
        # whole LM is built on the host first, as NVIDIA's loader does, and accelerate decides.
        target = torch.device("cpu") if name in offloaded or auto else device
        if isinstance(source, SyntheticWeights):
            source.materialize(block, target)
        else:
            source.materialize(name, block, target)
        if int8 is not None and tally is not None:
            originals = int8.linear_weights(block)
            int8.quantize_block(lm, name, block)
            quantized = lm.get_submodule(name) if isinstance(block, torch.nn.Linear) else block
            int8.tally_block(quantized, originals, dtype.itemsize, tally)
            compact_block(quantized)
        elif tally is not None:
            quantize_block(lm, name, block, run.quantize, tally)
            compact_block(lm.get_submodule(name))
    leftover = meta_tensor_names(lm)
    if leftover:
        raise RuntimeError(f"weights missing after build: {', '.join(leftover[:5])}")
    if int8 is not None:
        int8.check_int8_scales(lm)
    if tally is not None and int8 is None:
        if offloaded or auto:
            raise ValueError(f"quantize: {run.quantize} with offload is not supported (the scenario refuses it)")
        check_unchanged(lm)
    quantization = tally.info(lm) if tally is not None else None  # counted before offload moves tensors away

    tier = None
    if offloaded:
        main = "cpu" if device.type == "cpu" else str(device)
        tier = offload_layers(lm, offloaded, main, scratch_dir / "offload")
    elif auto:
        offloaded, tier = auto_offload(lm, dtype, device, scratch_dir / "offload")
        if device.type != "cuda":
            lm.to(device)

    mimi = _mimi(mimi_file, device, seed)
    if mimi_file is None and weights_path is not None:
        weights += f"; Mimi synthetic (no {loaders.MIMI_NAME} beside it)"
    # PersonaPlex's server loads a second Mimi from the same file and runs it every frame (results discarded).
    other_mimi = _mimi(mimi_file, device, seed) if serving == "personaplex-server" else None

    lm_gen = make_lmgen(lm, mimi, device)
    moshi_version, flavour = moshi_flavour()
    info = EngineInfo(
        torch_version=torch.__version__,
        moshi_version=moshi_version or "not installed",
        device=str(device),
        device_name=_device_name(device),
        torch_threads=torch.get_num_threads(),
        lm_dtype=run.dtype,
        mimi_dtype="float32",
        weights=weights,
        lm_parameters=lm_parameters,
        mimi_parameters=sum(p.numel() for p in mimi.parameters()),
        quantized_linears=int8.count_qlinear(lm) if int8 is not None else len(quantized_layers(lm)),
        quantization=quantization,
        offloaded_layers=offloaded,
        offload_tier=tier,
        cuda_runtime=torch.version.cuda,
        serving=serving,
        moshi_flavour=flavour,
    )
    return BuiltModels(mimi=mimi, lm=lm, lm_gen=lm_gen, device=device, info=info, other_mimi=other_mimi)

"""Build Mimi + LM + LMGen for one run configuration, applying every setting for real."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
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
from harness.worker.engine.int8 import check_int8_scales, count_qlinear, quantize_block
from harness.worker.engine.offload import auto_offload, offload_layers
from harness.worker.engine.synthetic import SyntheticWeights, lm_blocks, meta_tensor_names
from harness.worker.pipeline.lmgen import FullDuplexLMGen


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


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _mimi(mimi_file: Optional[Path], device: torch.device, seed: int) -> MimiModel:
    if mimi_file is not None:
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
        if run.quantize == "int8":
            quantize_block(lm, name, block)
    leftover = meta_tensor_names(lm)
    if leftover:
        raise RuntimeError(f"weights missing after build: {', '.join(leftover[:5])}")
    if run.quantize == "int8":
        check_int8_scales(lm)

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

    lm_gen = FullDuplexLMGen(lm)
    info = EngineInfo(
        torch_version=torch.__version__,
        moshi_version=_version("moshi"),
        device=str(device),
        device_name=_device_name(device),
        torch_threads=torch.get_num_threads(),
        lm_dtype=run.dtype,
        mimi_dtype="float32",
        weights=weights,
        lm_parameters=lm_parameters,
        mimi_parameters=sum(p.numel() for p in mimi.parameters()),
        quantized_linears=count_qlinear(lm),
        offloaded_layers=offloaded,
        offload_tier=tier,
        cuda_runtime=torch.version.cuda,
        serving=serving,
    )
    return BuiltModels(mimi=mimi, lm=lm, lm_gen=lm_gen, device=device, info=info, other_mimi=other_mimi)

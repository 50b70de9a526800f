"""Real checkpoints: a local `model.safetensors` in PersonaPlex's (or Moshi's) layout.

Safetensors only: nothing is unpickled and nothing is downloaded. Tensors are read lazily (memory
mapped) block by block, so peak memory stays near the size of the model in its run dtype.

PersonaPlex runs the depformer with dep_q=16 while released checkpoints may carry dep_q=8
depformer weights. As NVIDIA's loader (personaplex `get_moshi_lm`, copy_missing_weights=True)
does, step-specific depformer weights for steps 8..15 are copies of steps 0..7: stacked
`self_attn.in_proj_weight` / `out_proj.weight` are repeated, and missing `gating.N`, `linears.N`,
`depformer_in.N`, `depformer_emb.N` entries take index N-8 (or N modulo what exists).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch
from moshi.models import loaders
from safetensors import safe_open
from torch import nn

_STACKED_ATTN = re.compile(r"^(?P<prefix>.+\.self_attn)\.(?P<kind>in_proj|out_proj)(?:_weight|\.weight)$")
_PER_STEP = re.compile(r"^(?P<group>.*\b(?:gating|linears|depformer_in|depformer_emb|in_projs|out_projs))"
                       r"\.(?P<index>\d+)\.(?P<rest>.+)$")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft", ".sfts")


class CheckpointError(Exception):
    pass


def find_checkpoint_files(path: Path) -> tuple[Path, Path | None]:
    """(LM weights file, Mimi weights file or None) from a file or a folder as PersonaPlex ships it."""
    lm_file = path / loaders.MOSHI_NAME if path.is_dir() else path
    if not lm_file.exists():
        raise CheckpointError(f"{path}: no {loaders.MOSHI_NAME} in this folder")
    if lm_file.suffix not in SAFETENSORS_SUFFIXES:
        raise CheckpointError(
            f"{lm_file}: only safetensors checkpoints are loaded (no unpickling of {lm_file.suffix} files); "
            "convert it with safetensors.torch.save_file")
    mimi_file = lm_file.parent / loaders.MIMI_NAME
    return lm_file, (mimi_file if mimi_file.exists() else None)


class CheckpointWeights:
    """Maps every tensor of a meta-device LMModel to a loader reading the checkpoint."""

    def __init__(self, lm_file: Path, lm_meta: nn.Module) -> None:
        self.path = lm_file
        self._file = safe_open(str(lm_file), framework="pt", device="cpu")
        self._targets = {name: t for name, t in lm_meta.state_dict(keep_vars=True).items()}
        self._model = lm_meta
        self._plan: dict[str, Callable[[], torch.Tensor]] = {}
        self.expanded: list[str] = []
        self.unexpected: list[str] = []
        self._plan_direct_keys()
        self._plan_missing_steps()
        missing = sorted(set(self._targets) - set(self._plan))
        if missing:
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise CheckpointError(f"{lm_file}: {len(missing)} weights of the preset are not in the checkpoint "
                                  f"({shown}); is the scenario's preset the checkpoint's architecture?")

    def _reader(self, key: str) -> Callable[[], torch.Tensor]:
        return lambda: self._file.get_tensor(key)

    def _plan_direct_keys(self) -> None:
        for key in self._file.keys():
            stacked = _STACKED_ATTN.match(key)
            if key in self._targets:
                want = tuple(self._targets[key].shape)
                have = tuple(self._file.get_slice(key).get_shape())
                if want != have:
                    raise CheckpointError(f"{self.path}: {key} has shape {have}, the preset expects {want}")
                self._plan[key] = self._reader(key)
            elif stacked:
                self._plan_stacked(key, stacked.group("prefix"), stacked.group("kind"))
            elif key.endswith("_scb"):
                raise CheckpointError(f"{self.path}: {key} belongs to an int8-quantised checkpoint; load the bf16 "
                                      "checkpoint and set `quantize: int8` in the scenario instead")
            else:
                self.unexpected.append(key)

    def _plan_stacked(self, key: str, prefix: str, kind: str) -> None:
        """Older layout: all steps of a weights_per_step attention stacked in one tensor."""
        first = f"{prefix}.{kind}s.0.weight"
        if first not in self._targets:
            self.unexpected.append(key)
            return
        per_step = self._targets[first].shape[0]
        rows = self._file.get_slice(key).get_shape()[0]
        if rows % per_step:
            raise CheckpointError(f"{self.path}: {key} has {rows} rows, not a multiple of {per_step}")
        in_checkpoint = rows // per_step
        steps = self._model.get_submodule(prefix).mult
        for step in range(steps):
            source = step % in_checkpoint
            self._plan[f"{prefix}.{kind}s.{step}.weight"] = (
                lambda k=key, s=source: self._file.get_slice(k)[s * per_step:(s + 1) * per_step])
            if step >= in_checkpoint:
                self.expanded.append(f"{prefix}.{kind}s.{step}.weight")

    def _plan_missing_steps(self) -> None:
        for name in self._targets:
            if name in self._plan:
                continue
            match = _PER_STEP.match(name)
            if not match:
                continue
            group, index, rest = match.group("group"), int(match.group("index")), match.group("rest")
            present = sorted({int(m.group("index")) for k in self._plan
                              if (m := _PER_STEP.match(k)) and m.group("group") == group and m.group("rest") == rest})
            if not present:
                continue
            candidates = [index - 8, present[index % len(present)]]
            source = next((f"{group}.{c}.{rest}" for c in candidates if c >= 0 and f"{group}.{c}.{rest}" in self._plan),
                          None)
            if source is not None:
                self._plan[name] = self._plan[source]
                self.expanded.append(name)

    def materialize(self, prefix: str, block: nn.Module, device: torch.device | str) -> None:
        for owner_name, owner in block.named_modules():
            for pname, _ in list(owner.named_parameters(recurse=False)):
                full = ".".join(p for p in (prefix, owner_name, pname) if p)
                tensor = self._plan[full]().to(device=device, dtype=self._targets[full].dtype)
                owner._parameters[pname] = nn.Parameter(tensor, requires_grad=False)

"""Count what one full-duplex frame dispatches, on the real moshi modules, and measure this host's cost per op.

`python -m harness.worker.kernels OUT.json [--preset personaplex-tiny] [--dtype float32] [--host-cost]`

One frame (Mimi encode -> LMGen.step -> Mimi decode) of a scaled preset runs on the CPU under a TorchDispatchMode
after a few warmup frames. Every aten op is attributed to where it ran (a temporal layer, a depformer layer, Mimi,
the rest of the LM step), so the parent can scale the counts to any depth of the same family; to whether moshi
wraps it in a `CUDAGraphed` call (what CUDA graphs replay) or in a `torch_compile_lazy` function (what
torch.compile fuses). Counts do not depend on the width, the dtype or the weights' values: the same ops run.

With --host-cost the reply also holds this host's cost per dispatched op (a module-heavy loop of small ops, the
shape of eager moshi code) and its matmul throughput per dtype: what `harness plan --here` needs.
Standard library, torch and moshi only; the reply is plain JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from harness.contract.atomic import atomic_write_text
from harness.contract.wire import WorkerRun

# Ops that launch no kernel: allocation and metadata. Views are recognised by their schema (`is_view`).
NO_KERNEL = {"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "set_", "resize_",
             "lift_fresh", "detach", "alias", "_unsafe_view", "view", "_reshape_alias"}
# Ops inductor leaves as their own kernel (extern calls, reductions it does not fuse into a pointwise run).
ANCHORS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "convolution", "_convolution",
           "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
           "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention", "embedding",
           "index_select", "topk", "sort", "multinomial", "cumsum", "argmax", "_local_scalar_dense",
           "_to_copy", "copy_", "index_put_", "scatter_", "gather", "index"}
SCOPES = ("mimi", "temporal_layer", "depformer_layer", "lm_other")
COUNTERS = ("ops", "kernels", "graphed_ops", "graphed_kernels", "graph_calls", "compiled_kernels", "compiled_calls")


class _Where:
    """Where the frame is now: scope stack, inside a CUDAGraphed call, inside a compiled function."""

    def __init__(self) -> None:
        self.scopes: list[str] = ["lm_other"]
        self.graphed = 0
        self.compiled = 0
        self.compiled_ops: list[tuple[str, str]] = []  # (scope, op) inside the current compiled call


class Counting(TorchDispatchMode):
    def __init__(self, where: _Where) -> None:
        super().__init__()
        self.where = where
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.op_names: Counter = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        scope = self.where.scopes[-1]
        launches = not (getattr(func, "is_view", False) or name in NO_KERNEL)
        c = self.counts[scope]
        c["ops"] += 1
        self.op_names[name] += 1
        if launches:
            c["kernels"] += 1
        if self.where.graphed:
            c["graphed_ops"] += 1
            c["graphed_kernels"] += launches
        if self.where.compiled:
            if launches:
                self.where.compiled_ops.append((scope, name))
        elif launches:
            c["compiled_kernels"] += 1  # outside compiled functions torch.compile changes nothing
        return func(*args, **(kwargs or {}))


def fused_kernels(ops: list[str]) -> int:
    """Kernels inductor makes of one compiled call: each anchor op its own, each run of fusible ops one."""
    kernels, in_run = 0, False
    for name in ops:
        if name in ANCHORS:
            kernels, in_run = kernels + 1, False
        elif not in_run:
            kernels, in_run = kernels + 1, True
    return kernels


@contextmanager
def _patched(where: _Where, counting: Counting) -> Iterator[None]:
    """Mark moshi's CUDAGraphed calls and torch_compile_lazy functions while the frame runs (then restore)."""
    import moshi.modules.gating as gating
    import moshi.modules.rope as rope
    import moshi.modules.transformer as transformer
    from moshi.utils.compile import CUDAGraphed

    original_call = CUDAGraphed.__call__

    def graphed_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        where.graphed += 1
        counting.counts[where.scopes[-1]]["graph_calls"] += 1
        try:
            return original_call(self, *args, **kwargs)
        finally:
            where.graphed -= 1

    def compiled(fun: Callable[..., Any]) -> Callable[..., Any]:
        eager = getattr(fun, "__wrapped__", fun)

        def call(*args: Any, **kwargs: Any) -> Any:
            outer = where.compiled == 0
            where.compiled += 1
            try:
                return eager(*args, **kwargs)
            finally:
                where.compiled -= 1
                if outer:
                    ops, where.compiled_ops = where.compiled_ops, []
                    by_scope: dict[str, list[str]] = defaultdict(list)
                    for scope, name in ops:
                        by_scope[scope].append(name)
                    for scope, names in by_scope.items():
                        counting.counts[scope]["compiled_kernels"] += fused_kernels(names)
                    counting.counts[where.scopes[-1]]["compiled_calls"] += 1
        return call

    targets = [(gating, "gating_forward_kernel"), (rope, "apply_rope"), (transformer, "_rms_norm")]
    saved = [(module, name, getattr(module, name)) for module, name in targets]
    CUDAGraphed.__call__ = graphed_call  # type: ignore[method-assign]
    for module, name, fun in saved:
        setattr(module, name, compiled(fun))
    try:
        yield
    finally:
        CUDAGraphed.__call__ = original_call  # type: ignore[method-assign]
        for module, name, fun in saved:
            setattr(module, name, fun)


def _scoped(module: torch.nn.Module, scope: str, where: _Where) -> list[Any]:
    def enter(*_: Any) -> None:
        where.scopes.append(scope)

    def leave(*_: Any) -> None:
        where.scopes.pop()

    return [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]


def count_frame(preset: str, dtype: str = "float32", warmup: int = 3, seed: int = 1) -> dict[str, Any]:
    """Counts per scope for one frame of `preset` (after `warmup` frames), with Mimi's FLOPs."""
    import tempfile

    from harness.worker.engine.build import build_models
    from harness.worker.pipeline.audio import speech_like

    with tempfile.TemporaryDirectory(prefix="harness-kernels-") as scratch:
        built = build_models(WorkerRun(name="count", device="cpu", dtype=dtype), preset, None, seed, Path(scratch))
    mimi, lm, lm_gen = built.mimi, built.lm, built.lm_gen
    audio = speech_like(mimi.sample_rate, 1, seed)
    frame = int(mimi.sample_rate / mimi.frame_rate)
    where = _Where()
    hooks: list[Any] = []
    for layer in lm.transformer.layers:
        hooks += _scoped(layer, "temporal_layer", where)
    depformer_layers = list(lm.depformer.layers) if lm.depformer is not None else []
    for layer in depformer_layers:
        hooks += _scoped(layer, "depformer_layer", where)
    counting = Counting(where)
    flops = FlopCounterMode(display=False)

    def one(index: int, measure: bool) -> None:
        chunk = audio[:, :, (index * frame) % (audio.shape[-1] - frame):][:, :, :frame]
        where.scopes.append("mimi")
        with flops if measure else _nothing():
            codes = mimi.encode(chunk)
        where.scopes.pop()
        tokens = lm_gen.step(codes)
        if tokens is None:
            return
        where.scopes.append("mimi")
        with flops if measure else _nothing():
            mimi.decode(tokens[:, 1:9])
        where.scopes.pop()

    with torch.no_grad(), mimi.streaming(1), lm_gen.streaming(1):
        for index in range(warmup):
            one(index, measure=False)
        with _patched(where, counting), counting:
            one(warmup, measure=True)
    for handle in hooks:
        handle.remove()
    return {
        "preset": preset,
        "torch": torch.__version__,
        "moshi": _moshi_version(),
        "temporal_layers": len(lm.transformer.layers),
        "depformer_layers": len(depformer_layers),
        "dep_q": lm.dep_q,
        "scopes": {scope: {k: int(counting.counts[scope][k]) for k in COUNTERS} for scope in SCOPES},
        "mimi_flops": int(flops.get_total_flops()),
        "top_ops": dict(counting.op_names.most_common(12)),
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _moshi_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("moshi")
    except metadata.PackageNotFoundError:
        return "unknown"


def host_op_cost(repeats: int = 5, device: str = "cpu") -> dict[str, Any]:
    """Microseconds per dispatched op in eager PyTorch on this host: a stack of small modules (Linear, RMS-style
    norm, gating) run under no_grad, the way moshi's eager code calls torch, divided by the ops it dispatches.
    The tensors are tiny so that the figure is the host's cost, not arithmetic. On a GPU the ops launch real
    kernels (one synchronisation per pass, as a frame has): the host's cost per launch. Best of `repeats`."""
    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(16, 32, bias=False), torch.nn.Linear(32, 16, bias=False)
            self.alpha = torch.nn.Parameter(torch.ones(16))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.alpha
            return x + self.b(torch.nn.functional.silu(self.a(y)))

    stack = torch.nn.Sequential(*[Block() for _ in range(32)]).eval().to(device)
    x = torch.randn(1, 1, 16, device=device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    where = _Where()
    counting = Counting(where)
    with torch.no_grad():
        with counting:
            stack(x)
        ops = sum(c["ops"] for c in counting.counts.values())
        for _ in range(3):
            stack(x)
        sync()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(20):
                stack(x)
            sync()
            best = min(best, (time.perf_counter() - start) / 20)
    return {"host_op_us": best / ops * 1e6, "ops_per_call": ops, "threads": torch.get_num_threads(),
            "device": device}


def matmul_gflops(size: int = 384, repeats: int = 3) -> dict[str, float]:
    """Achievable matmul GFLOP/s per dtype on this CPU (square matmuls, best of `repeats`)."""
    out: dict[str, float] = {}
    for name in ("float32", "bfloat16", "float16"):
        dtype = getattr(torch, name)
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        try:
            a @ b
        except RuntimeError:
            continue  # this build has no CPU matmul for the dtype
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        out[name] = 2 * size**3 / best / 1e9
    return out


def frame_stage_ms(preset: str = "moshi-tiny", frames: int = 5, warmup: int = 3, seed: int = 1) -> dict[str, Any]:
    """Median wall time of the real frame's stages on this CPU: Mimi (encode + decode) and the LM step, float32.

    What a CPU prediction cannot get from small loops: moshi's streaming convolutions and its Python per op cost
    far more than a bare op (the loop in `host_op_cost` is a floor). Mimi is the same module in every preset, so
    its time here is its time in any preset; the LM step's time over the ops it dispatched (counted once per
    family in harness.knowledge.kernel_counts) is this host's cost per real LM op. The default preset is the Moshi
    family's (dep_q 8), so a PersonaPlex prediction (dep_q 16) is not fitted on itself."""
    import tempfile
    from statistics import median

    from harness.worker.engine.build import build_models
    from harness.worker.pipeline.audio import speech_like

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="harness-stages-") as scratch:
        built = build_models(WorkerRun(name="stages", device="cpu", dtype="float32"), preset, None, seed,
                             Path(scratch))
    mimi, lm_gen = built.mimi, built.lm_gen
    audio = speech_like(mimi.sample_rate, 1, seed)
    frame = int(mimi.sample_rate / mimi.frame_rate)
    mimi_ms: list[float] = []
    lm_ms: list[float] = []
    from moshi.utils.compile import no_compile

    # eager, as a CPU run is measured: moshi would otherwise torch.compile its lazy functions on the first call
    with torch.no_grad(), no_compile(), mimi.streaming(1), lm_gen.streaming(1):
        for index in range(warmup + frames):
            chunk = audio[:, :, (index * frame) % (audio.shape[-1] - frame):][:, :, :frame]
            t0 = time.perf_counter()
            codes = mimi.encode(chunk)
            t1 = time.perf_counter()
            tokens = lm_gen.step(codes)
            t2 = time.perf_counter()
            if tokens is not None:
                mimi.decode(tokens[:, 1:9])
            t3 = time.perf_counter()
            if index >= warmup and tokens is not None:
                mimi_ms.append((t1 - t0 + t3 - t2) * 1e3)
                lm_ms.append((t2 - t1) * 1e3)
    return {"preset": preset, "frames": len(lm_ms), "mimi_ms": median(mimi_ms), "lm_ms": median(lm_ms),
            "threads": torch.get_num_threads()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worker.kernels")
    parser.add_argument("out")
    parser.add_argument("--preset", action="append", default=[])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--host-cost", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--describe", action="append", default=[], help="also describe these presets' architecture")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reply: dict[str, Any] = {"counts": {}, "error": None}
    try:
        for preset in args.preset:
            reply["counts"][preset] = count_frame(preset, args.dtype)
        if args.describe:
            from dataclasses import asdict

            from harness.worker.describe import describe_preset

            reply["architectures"] = {preset: asdict(describe_preset(preset)) for preset in args.describe}
        if args.host_cost:
            reply["host"] = {**host_op_cost(), "matmul_gflops": matmul_gflops(), "stages": frame_stage_ms()}
    except Exception as exc:  # noqa: BLE001 - recorded for the parent, which explains it
        import traceback

        traceback.print_exc(file=sys.stderr)
        reply["error"] = f"{type(exc).__name__}: {exc}"
    atomic_write_text(Path(args.out), json.dumps(reply, indent=1))
    return 0 if reply["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Worker entry point: `python -m harness.worker JOB.json`.

Runs one job in this fresh process (the parent has already set the environment that moshi and
torch read at import time) and writes the reply atomically to the job's `reply_path`. Exit status:
0 when the reply says ok, 1 when it records a failure, 2 when the job itself could not be read.
"""

from __future__ import annotations

import resource
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Union

from pydantic import TypeAdapter, ValidationError

from harness.records.store import atomic_write_text
from harness.worker.progress import ProgressPipe
from harness.worker.protocol import BenchJob, BenchReply, FrameSamples, MemoryReading, ProbeJob, ProbeReply, WorkerError

Job = Union[BenchJob, ProbeJob]


def _write(path: str, reply: Union[BenchReply, ProbeReply]) -> None:
    atomic_write_text(Path(path), reply.model_dump_json())


def run_probe(job: ProbeJob) -> int:
    from harness.worker.torch_facts import gather_torch_facts

    reply = ProbeReply(facts=gather_torch_facts())
    if reply.facts.import_error is None:
        try:
            import accelerate  # noqa: F401 - part of a bench worker's baseline
            import psutil

            from harness.worker.describe import describe_preset

            describe_preset("personaplex-tiny")  # a meta-device build, as every bench worker does
            reply.baseline_rss_bytes = int(psutil.Process().memory_info().rss)
            import bitsandbytes  # noqa: F401

            reply.bitsandbytes_import_bytes = int(psutil.Process().memory_info().rss) - reply.baseline_rss_bytes
            for preset in job.presets:
                reply.architectures[preset] = describe_preset(preset)
        except BaseException as exc:  # noqa: BLE001 - recorded, the probe still answers
            traceback.print_exc(file=sys.stderr)
            reply.error = WorkerError(type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc(),
                                      phase="describe")
        if job.device_checks:
            from harness.worker.device_checks import run_device_checks

            reply.checks = run_device_checks(reply.facts)
    _write(job.reply_path, reply)
    return 0


def run_bench(job: BenchJob, progress: ProgressPipe) -> int:
    phase = "import"
    reply = BenchReply(status="failed")
    try:
        progress.phase(phase)
        import torch

        from harness.worker.engine.build import build_models
        from harness.worker.pipeline.frame_loop import run_frame_loop
        from harness.worker.trackers.memory import cuda_memory, current_rss_bytes, peak_rss_bytes
        from harness.worker.trackers.telemetry import TelemetrySampler

        if job.torch_threads:
            torch.set_num_threads(job.torch_threads)
        torch.manual_seed(job.seed)

        phase = "build"
        progress.phase(phase)
        start, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        built = build_models(job.run, job.preset, Path(job.weights_path) if job.weights_path else None,
                             job.seed, Path(job.scratch_dir))
        reply.load_s = time.perf_counter() - start
        reply.engine = built.info
        after = resource.getrusage(resource.RUSAGE_SELF)
        reply.engine.build_user_s = after.ru_utime - usage.ru_utime
        reply.engine.build_system_s = after.ru_stime - usage.ru_stime
        rss_after_load = current_rss_bytes()

        phase = "frames"
        progress.phase(phase)
        gpu_index = built.device.index if built.device.type == "cuda" else None
        sampler = TelemetrySampler(job.telemetry_hz, gpu_index) if job.telemetry_hz > 0 else None
        with sampler if sampler is not None else nullcontext():
            loop = run_frame_loop(built.mimi, built.lm_gen, built.device, frames=job.frames,
                                  warmup_frames=job.warmup_frames, batch_size=job.batch_size, seed=job.seed,
                                  on_frame=progress.frame, paced_frame_ms=job.paced_frame_ms)
        origin = sampler.origin if sampler is not None else (loop.start_perf_s[0] if loop.start_perf_s else 0.0)
        reply.telemetry = sampler.series if sampler is not None else None
        reply.first_step_s, reply.warmup_s = loop.first_step_s, loop.warmup_s
        reply.samples = FrameSamples(total_ms=loop.total_ms, stage_ms=loop.stage_ms,
                                     start_s=[t - origin for t in loop.start_perf_s],
                                     cuda_event_stage_ms=loop.event_ms)
        cuda = cuda_memory(built.device)
        reply.memory = MemoryReading(
            peak_rss_bytes=peak_rss_bytes(), rss_after_load_bytes=rss_after_load,
            cuda_peak_allocated_bytes=cuda.peak_allocated_bytes if cuda else None,
            cuda_peak_reserved_bytes=cuda.peak_reserved_bytes if cuda else None,
            cuda_total_bytes=cuda.total_bytes if cuda else None,
        )
        reply.engine.compiled_frames = _compiled_frames()
        reply.status = "ok"
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        reply.error = WorkerError(type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc(),
                                  phase=phase)
    _write(job.reply_path, reply)
    progress.phase("done")
    return 0 if reply.status == "ok" else 1


def _compiled_frames() -> int:
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["frames"]["ok"])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.worker JOB.json  (started by `harness run`, not by hand)", file=sys.stderr)
        return 2
    try:
        job: Job = TypeAdapter(Job).validate_json(Path(argv[1]).read_bytes())
    except (OSError, ValidationError) as exc:
        print(f"harness worker: cannot read job {argv[1]}: {exc}", file=sys.stderr)
        return 2
    if isinstance(job, ProbeJob):
        return run_probe(job)
    return run_bench(job, ProgressPipe.from_env())


if __name__ == "__main__":
    sys.exit(main(sys.argv))

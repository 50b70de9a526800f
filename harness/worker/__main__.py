"""Worker entry point: `python -m harness.worker JOB.json`.

Runs one job in this fresh process (the parent has already set the environment that moshi and torch read at
import time; a job started by hand re-executes itself with the job's environment first) and writes the reply
as plain JSON, atomically, to the job's `reply_path`. Needs only the standard library, torch and moshi
(accelerate, bitsandbytes, psutil, pynvml where a configuration or a probe uses them): no pydantic.
Exit status: 0 when the reply says ok, 1 when it records a failure, 2 when the job itself could not be read.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Union

from harness.contract.atomic import atomic_write_text
from harness.contract.environment import ensure_job_env, measurement_env
from harness.contract.progress import ProgressPipe
from harness.contract.wire import (
    AdmissionSample,
    BenchJob,
    BenchReply,
    FidelityReading,
    FrameSamples,
    MemoryReading,
    ProbeJob,
    ProbeReply,
    TelemetrySeries,
    WorkerError,
    job_from_json,
    to_json,
)


def _write(path: str, reply: Union[BenchReply, ProbeReply]) -> None:
    atomic_write_text(Path(path), to_json(reply))


def _error(exc: BaseException, phase: str) -> WorkerError:
    return WorkerError(type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc(), phase=phase)


def run_probe(job: ProbeJob) -> int:
    from harness.worker.torch_facts import gather_torch_facts

    reply = ProbeReply(facts=gather_torch_facts())
    if reply.facts.import_error is None:
        try:
            try:
                import accelerate  # noqa: F401 - part of a bench worker's baseline where it is installed
            except ImportError:
                pass  # only offloading runs need it; the accelerate check says so
            from harness.worker.describe import describe_preset
            from harness.worker.trackers.memory import current_rss_bytes

            describe_preset("personaplex-tiny")  # a meta-device build, as every bench worker does
            reply.baseline_rss_bytes = current_rss_bytes()
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                pass  # only int8 runs need it; the bitsandbytes check says so
            else:
                reply.bitsandbytes_import_bytes = current_rss_bytes() - reply.baseline_rss_bytes
            for preset in job.presets:
                reply.architectures[preset] = describe_preset(preset)
            try:  # the planner's host cost per op (harness plan --here); an old torch may lack what it needs
                from harness.worker.kernels import host_op_cost, matmul_gflops

                cost = host_op_cost(device="cuda" if reply.facts.cuda_available else "cpu")
                reply.host_op_us, reply.host_op_device = cost["host_op_us"], cost["device"]
                reply.cpu_matmul_gflops = matmul_gflops()
            except Exception:  # noqa: BLE001 - the plan then uses the host table, and says so
                traceback.print_exc(file=sys.stderr)
            if job.cpu_stages:  # a CPU step prediction is fitted on the real frame's stages timed here
                try:
                    import torch

                    from harness.contract.wire import CpuStages
                    from harness.worker.kernels import frame_stage_ms

                    threads = torch.get_num_threads()
                    torch.set_num_threads(job.cpu_threads or threads)
                    reply.cpu_stages = CpuStages(**frame_stage_ms())
                    torch.set_num_threads(threads)
                except Exception:  # noqa: BLE001 - the plan then says a CPU run cannot be predicted
                    traceback.print_exc(file=sys.stderr)
        except BaseException as exc:  # noqa: BLE001 - recorded, the probe still answers
            traceback.print_exc(file=sys.stderr)
            reply.error = _error(exc, "describe")
        if job.device_checks:
            from harness.worker.device_checks import run_device_checks

            reply.checks = run_device_checks(reply.facts)
    _write(job.reply_path, reply)
    return 0


def run_bench(job: BenchJob, progress: ProgressPipe) -> int:
    phase = "import"
    reply = BenchReply(status="failed")
    # The environment the worker was given, read before torch sets any of it itself (CUDA_MODULE_LOADING,
    # TORCHINDUCTOR_CACHE_DIR): what the run's identity holds, and what a run asked again is given.
    given_env = measurement_env()
    try:
        progress.phase(phase)
        imported = time.perf_counter()
        import torch

        from harness.worker.engine.build import build_models
        from harness.worker.pipeline.frame_loop import run_frame_loop
        from harness.worker.trackers.memory import cuda_memory, current_rss_bytes, peak_rss_bytes

        reply.import_s = time.perf_counter() - imported  # torch and moshi: part of a server's cold start

        if job.torch_threads:
            torch.set_num_threads(job.torch_threads)
        torch.manual_seed(job.seed)

        phase = "build"
        progress.phase(phase)
        start, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        built = build_models(job.run, job.preset, Path(job.weights_path) if job.weights_path else None,
                             job.seed, Path(job.scratch_dir), serving=job.serving)
        reply.load_s = time.perf_counter() - start
        engine = reply.engine = built.info
        after = resource.getrusage(resource.RUSAGE_SELF)
        engine.build_user_s = after.ru_utime - usage.ru_utime
        engine.build_system_s = after.ru_stime - usage.ru_stime
        engine.env = given_env
        engine.python = platform.python_version()
        rss_after_load = current_rss_bytes()

        phase = "frames"
        progress.phase(phase)
        gpu_index = built.device.index if built.device.type == "cuda" else None
        sampler = _sampler(job.telemetry_hz, gpu_index)
        joined: list = []  # the JoiningLoop, when a session joins mid-run
        gate = _StartGate(job, reply, sampler, built.device)
        with sampler if sampler is not None else nullcontext():
            loop = run_frame_loop(built.mimi, built.lm_gen, built.device, frames=job.frames,
                                  warmup_frames=job.warmup_frames, batch_size=job.batch_size, seed=job.seed,
                                  on_frame=gate.wrap(progress.frame), paced_frame_ms=job.paced_frame_ms,
                                  other_mimi=built.other_mimi, serving=job.serving, persona=job.persona,
                                  make_loop=_loop_factory(job, joined), stop=job.stop,
                                  input_wav=job.input_wav)
        reply.prefill, reply.first_frame_ms = loop.prefill, loop.first_frame_ms
        origin = sampler.origin if sampler is not None else (loop.start_perf_s[0] if loop.start_perf_s else 0.0)
        reply.telemetry = sampler.series if sampler is not None else _no_telemetry(job.telemetry_hz)
        reply.first_step_s, reply.warmup_s = loop.first_step_s, loop.warmup_s
        reply.samples = FrameSamples(total_ms=loop.total_ms, stage_ms=loop.stage_ms,
                                     start_s=[t - origin for t in loop.start_perf_s],
                                     cuda_event_stage_ms=loop.event_ms, late_start_frames=loop.late_starts,
                                     cpu_ms=loop.cpu_ms, stage_cpu_ms=loop.stage_cpu_ms,
                                     process_cpu_ms=loop.process_cpu_ms, run_wait_ms=loop.run_wait_ms,
                                     main_wait_ms=loop.main_wait_ms, frame_wait_ms=loop.frame_wait_ms,
                                     cores=loop.cores, threads=loop.threads,
                                     others_cpu_ms=loop.others_cpu_ms, gc_ms=loop.gc_ms,
                                     cpu_sources=loop.cpu_sources, stopped_early=loop.stopped_early)
        cuda = cuda_memory(built.device)
        reply.memory = MemoryReading(
            peak_rss_bytes=peak_rss_bytes(), rss_after_load_bytes=rss_after_load,
            cuda_peak_allocated_bytes=cuda.peak_allocated_bytes if cuda else None,
            cuda_peak_reserved_bytes=cuda.peak_reserved_bytes if cuda else None,
            cuda_total_bytes=cuda.total_bytes if cuda else None,
            cuda_device_used_bytes=cuda.device_used_bytes if cuda else None,
        )
        engine.compiled_frames = loop.compiled_total
        engine.recompiles_measured = loop.compiled_total - loop.compiled_before_measuring
        engine.cuda_graphs_captured = loop.graphs_captured
        engine.cuda_graphs_active = loop.graphs_captured > 0
        engine.cuda_graphs_captured_measured = loop.graphs_captured - loop.graphs_before_measuring
        reply.admission = _admission(job, joined)
        if job.fidelity_frames > 0:  # after the timed frames and the memory readings: timing cannot change
            phase = "fidelity"
            progress.phase(phase)
            box, built = [built], None  # the pass may free the candidate (two 7Bs do not fit): no other reference
            reply.fidelity = _fidelity(job, box, engine.weights)
        reply.status = "ok"
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        reply.error = _error(exc, phase)
    _write(job.reply_path, reply)
    progress.phase("done")
    return 0 if reply.status == "ok" else 1


class _StartGate:
    """Runs after the last warmup frame, before the call connects: the idle window (the device's power between
    frames, sampled while nothing runs) and the start barrier (K server processes measured together)."""

    def __init__(self, job: BenchJob, reply: BenchReply, sampler, device) -> None:  # noqa: ANN001
        self.job, self.reply, self.sampler, self.device = job, reply, sampler, device

    def wrap(self, on_frame):  # noqa: ANN001, ANN202 - FrameCallback in, FrameCallback out
        last_warmup = self.job.warmup_frames - 1

        def frame(index: int, total: int, is_warmup: bool, ms: float) -> None:
            on_frame(index, total, is_warmup, ms)
            if index == last_warmup:
                self.before_call()

        if last_warmup < 0:  # no warmup frames: nothing to hook after; the gate runs before the loop
            self.before_call()
        return frame

    def before_call(self) -> None:
        if self.job.idle_window_s > 0 and self.sampler is not None:
            if self.device.type == "cuda":
                import torch

                torch.cuda.synchronize(self.device)
            begun = time.perf_counter()
            time.sleep(self.job.idle_window_s)
            origin = self.sampler.origin
            self.reply.idle_window = [begun - origin, time.perf_counter() - origin]
        if self.job.start_barrier:
            self.reply.barrier_wait_s, self.reply.barrier_released = _await_barrier(
                Path(self.job.start_barrier), self.job.barrier_timeout_s)


def _await_barrier(folder: Path, timeout_s: float) -> tuple[float, bool]:
    """Say ready, then wait (5 ms sleeps, no busy loop) for the parent's `go`; go on alone after the timeout."""
    begun = time.perf_counter()
    atomic_write_text(folder / f"ready.{os.getpid()}", "")
    while not (folder / "go").exists():
        if time.perf_counter() - begun > timeout_s:
            return time.perf_counter() - begun, False
        time.sleep(0.005)
    return time.perf_counter() - begun, True


def _loop_factory(job: BenchJob, joined: list):  # noqa: ANN202 - a FrameLoop factory (torch imported lazily)
    """The plain frame loop, or (batch > 1 and a join asked for) the loop whose last slot joins mid-run: it runs
    the persona prefill when the job has a persona, else `join_warmup_steps` neutral steps."""
    from harness.worker.pipeline.frame_loop import FrameLoop

    persona = job.persona
    if job.join_at_tick is None or job.batch_size < 2 or (persona is None and job.join_warmup_steps < 1):
        return FrameLoop
    from harness.worker.pipeline.lockstep import JoiningLoop, persona_prefill, persona_steps, warmup_prefill

    prefill = persona_prefill(persona, job.seed) if persona is not None else warmup_prefill
    steps = (persona_steps(persona) or 0) if persona is not None else job.join_warmup_steps

    def make(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - FrameLoop's signature
        loop = JoiningLoop(*args, join_index=job.warmup_frames + min(job.join_at_tick, job.frames - 1),
                           warmup_steps=steps, prefill=prefill, **kwargs)
        joined.append(loop)
        return loop

    return make


def _fidelity(job: BenchJob, box: list, weights: str) -> "FidelityReading":
    """The fidelity pass (harness.worker.fidelity); a failure of it is recorded there, the timed run stands."""
    from harness.worker.engine.build import build_models
    from harness.worker.fidelity.measure import Candidate, measure_fidelity

    def rebuild():  # noqa: ANN202 - BuiltModels
        return build_models(job.run, job.preset, Path(job.weights_path) if job.weights_path else None, job.seed,
                            Path(job.scratch_dir), serving=job.serving)

    candidate = Candidate(built=box.pop(), rebuild=rebuild)
    try:
        return measure_fidelity(job, candidate, weights)
    except Exception as exc:  # noqa: BLE001 - recorded; the timed frames are not lost for it
        traceback.print_exc(file=sys.stderr)
        return FidelityReading(frames=0, reference="", method="", self_test=False,
                               synthetic=weights.startswith("synthetic"), input=job.input_wav or "synthetic",
                               skipped=f"failed: {type(exc).__name__}: {exc}")


def _admission(job: BenchJob, joined: list) -> "AdmissionSample | None":
    if not joined or not joined[0].join.tick_ms:
        return None
    join = joined[0].join
    return AdmissionSample(slot=join.slot, at_tick=join.at_index - job.warmup_frames, warmup_steps=join.warmup_steps,
                           reset_ms=join.reset_ms, prefill_ms=join.prefill_ms, tick_ms=list(join.tick_ms),
                           persona=join.persona)


def _sampler(hz: float, gpu_index: "int | None"):  # noqa: ANN202 - TelemetrySampler, imported lazily
    if hz <= 0:
        return None
    try:
        from harness.worker.trackers.telemetry import TelemetrySampler
    except ImportError:  # psutil is optional in a user's environment
        return None
    return TelemetrySampler(hz, gpu_index)


def _no_telemetry(hz: float) -> "TelemetrySeries | None":
    if hz <= 0:
        return None
    return TelemetrySeries(hz=hz, sources={"host": "unavailable: psutil is not installed in the worker's environment",
                                           "gpu": "unavailable: the sampler needs psutil"})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.worker JOB.json  (written by `harness run` under "
              "DIR/.work/<run>/job.json; re-runs that run exactly)", file=sys.stderr)
        return 2
    try:
        job = job_from_json(Path(argv[1]).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError) as exc:
        print(f"harness worker: cannot read job {argv[1]}: {exc}", file=sys.stderr)
        return 2
    if isinstance(job, ProbeJob):
        return run_probe(job)
    ensure_job_env(job.env, argv)
    os.environ.pop("HARNESS_WORKER_REEXEC", None)
    return run_bench(job, ProgressPipe.from_env())


if __name__ == "__main__":
    sys.exit(main(sys.argv))

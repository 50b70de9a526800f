"""The full-duplex frame loop: Mimi encode -> LMGen.step -> Mimi decode, one 80 ms frame per step."""

from __future__ import annotations

import gc
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMGen

from harness.contract.stopping import EarlyStop, should_stop
from harness.contract.wire import PersonaJob, PrefillSamples
from harness.worker.pipeline.audio import input_audio
from harness.worker.pipeline.clock import StageClock
from harness.worker.pipeline.cpu_clock import ProcessClock, usable_cores
from harness.worker.pipeline.graphs import count_captured_graphs
from harness.worker.pipeline.prefill import run_prefill
from harness.worker.pipeline.server_frame import ServerExtras

AGENT_CODEBOOKS = 8  # the agent's own audio stream: cache rows 1..8, what Mimi decodes
AGENT_ROWS = slice(1, 1 + AGENT_CODEBOOKS)
STAGES = ("encode", "lm_step", "decode")

FrameCallback = Callable[[int, int, bool, float], None]  # index, total, is_warmup, frame ms


class NoTokensError(RuntimeError):
    pass


class NonFiniteAudioError(RuntimeError):
    pass


@dataclass
class FrameLoopResult:
    total_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    event_ms: dict[str, list[float]] = field(default_factory=dict)
    start_perf_s: list[float] = field(default_factory=list)  # time.perf_counter() at each measured frame
    first_step_s: float = 0.0
    warmup_s: float = 0.0
    late_starts: int = 0  # paced: measured frames that started late because the previous one overran
    compiled_before_measuring: int = 0  # dynamo frames compiled before the first measured frame
    compiled_total: int = 0  # ... and by the end: a difference means the measured window recompiled
    graphs_captured: int = 0
    prefill: Optional[PrefillSamples] = None
    first_frame_ms: Optional[float] = None  # the first measured frame: the first of the conversation
    graphs_before_measuring: int = 0  # CUDA graphs captured before the first measured frame (the rest: during)
    # Per measured frame, was the process running (harness.worker.pipeline.cpu_clock)?
    cpu_ms: list[float] = field(default_factory=list)  # main thread CPU time, same interval as total_ms
    stage_cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    process_cpu_ms: list[float] = field(default_factory=list)
    run_wait_ms: list[float] = field(default_factory=list)  # empty where schedstat is unavailable
    main_wait_ms: list[float] = field(default_factory=list)
    frame_wait_ms: list[float] = field(default_factory=list)
    cores: int = 0  # CPUs the worker may run on
    threads: int = 0  # torch's intra-op threads while measuring
    others_cpu_ms: list[float] = field(default_factory=list)  # empty where /proc/stat is unavailable
    gc_ms: list[float] = field(default_factory=list)  # this process's own collections during the frame
    cpu_sources: dict[str, str] = field(default_factory=dict)
    stopped_early: str = ""


class _GcTimer:
    """Milliseconds spent in Python's collector: a server pays its own collections, so they stay in the frame,
    but the record says which slow frames were one."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._began = 0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter_ns()
        elif self._began:
            self.total_ns += time.perf_counter_ns() - self._began
            self._began = 0

    def __enter__(self) -> "_GcTimer":
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class FrameLoop:
    """One streaming session of Mimi + LMGen; `frame(index)` runs and times one full-duplex frame.

    With a server's `serving` the frame is that server's (server_frame.py): Opus decode, the host copy, Opus encode
    and the text token's `.item()`, and for NVIDIA's server (`other_mimi`) the duplicate Mimi encode and decode,
    each a stage."""

    def __init__(self, mimi: MimiModel, lm_gen: LMGen, device: torch.device, *, batch_size: int, seed: int,
                 warmup_frames: int, other_mimi: Optional[MimiModel] = None, serving: str = "",
                 input_wav: Optional[str] = None) -> None:
        self.mimi, self.lm_gen, self.device = mimi, lm_gen, device
        self.batch_size, self.warmup_frames = batch_size, warmup_frames
        self.audio = input_audio(input_wav, int(mimi.sample_rate), batch_size, seed).to(device)
        self.frame_size = int(mimi.sample_rate / mimi.frame_rate)
        self.chunks_in_loop = self.audio.shape[-1] // self.frame_size
        self.clock = StageClock(device)
        serving = serving or ("personaplex-server" if other_mimi is not None else "model")
        self.server = (ServerExtras(serving, self.audio, self.frame_size, int(mimi.sample_rate), other_mimi)
                       if serving != "model" else None)
        self.stages = self.server.stages if self.server is not None else STAGES
        self._stack = ExitStack()

    def __enter__(self) -> "FrameLoop":
        self._stack.enter_context(torch.no_grad())
        self._stack.enter_context(self.mimi.streaming(self.batch_size))
        self._stack.enter_context(self.lm_gen.streaming(self.batch_size))
        if self.server is not None and self.server.other_mimi is not None:
            self._stack.enter_context(self.server.other_mimi.streaming(self.batch_size))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def new_connection(self) -> None:
        """What a server does when a call connects: every streaming state reset."""
        self.mimi.reset_streaming()
        self.lm_gen.reset_streaming()
        if self.server is not None and self.server.other_mimi is not None:
            self.server.other_mimi.reset_streaming()

    def frame(self, index: int) -> dict[str, float]:
        """Milliseconds per stage and 'total' (wall) for frame `index`; on CUDA the stages are CUDA-event times."""
        start = (index % self.chunks_in_loop) * self.frame_size
        chunk = self.audio[:, :, start:start + self.frame_size]
        clock, server = self.clock, self.server
        clock.start()
        if server is not None:
            server.decode_input(index)
            clock.mark("opus_decode")
        codes = self.mimi.encode(chunk)
        clock.mark("encode")
        if server is not None and server.other_mimi is not None:
            server.other_mimi.encode(chunk)
            clock.mark("other_encode")
        tokens = self.lm_gen.step(codes)
        clock.mark("lm_step")
        pcm = None
        if tokens is not None:
            pcm = self.mimi.decode(tokens[:, server.decoded_rows if server is not None else AGENT_ROWS])
        elif index >= self.warmup_frames:
            raise NoTokensError(f"LMGen.step returned no tokens at measured frame {index}; "
                                "raise warmup_frames above the model's largest delay")
        clock.mark("decode")
        if server is not None:
            if server.other_mimi is not None:
                if tokens is not None:
                    server.other_mimi.decode(tokens[:, AGENT_ROWS])
                clock.mark("other_decode")
            host = pcm.cpu() if pcm is not None else None
            clock.mark("to_host")
            if host is not None:
                server.encode_output(host)
            clock.mark("opus_encode")
            if tokens is not None:
                tokens[0, 0, 0].item()
            clock.mark("text_token")
        clock.finish()
        # Outside the timed region: a configuration that produces NaN/Inf audio is broken, not fast.
        if pcm is not None and not bool(torch.isfinite(pcm).all()):
            raise NonFiniteAudioError(f"Mimi decoded non-finite audio (NaN/Inf) at frame {index}")
        return {**clock.event_ms(), **clock.wall_ms()}

    def captured_graphs(self) -> int:
        """CUDA graphs moshi really captured in this session (observed on its CUDAGraphed wrappers)."""
        extra = [self.server.other_mimi] if self.server is not None and self.server.other_mimi is not None else []
        return count_captured_graphs(self.lm_gen, self.mimi, *extra)


def _dynamo_frames() -> int:
    """Frames torch.compile (dynamo) has compiled in this process so far."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["frames"]["ok"])


def run_frame_loop(
    mimi: MimiModel,
    lm_gen: LMGen,
    device: torch.device,
    *,
    frames: int,
    warmup_frames: int,
    batch_size: int,
    seed: int,
    on_frame: FrameCallback | None = None,
    paced_frame_ms: float | None = None,
    other_mimi: Optional[MimiModel] = None,
    serving: str = "",
    persona: Optional[PersonaJob] = None,
    make_loop: Callable[..., FrameLoop] = FrameLoop,  # lockstep.JoiningLoop: a session joins mid-run
    stop: Optional[EarlyStop] = None,
    input_wav: Optional[str] = None,  # a recording instead of the seeded signal (read before any frame)
) -> FrameLoopResult:
    """Run warmup + measured frames.

    Paced: measured frame j starts no earlier than anchor + j x frame, the anchor being the start of the first
    measured frame (after warmup and any compilation), like a live session whose audio arrives every frame;
    a frame that could not start on time (the previous one ran late) starts at once and is counted.
    Otherwise frames run back to back.

    Just before the first measured frame the collector runs once (gc.collect), so that the warmup's garbage is not
    collected inside the window; it stays enabled and unfrozen during it, as in a server (moshi.server touches
    neither), so the window pays the collections a server pays, and `gc_ms` says which frames held one.

    With `stop`, the run ends early once its late share is shown to be above the target (harness.contract.stopping).

    With a persona the warmup frames are the server's start-up; then a call connects: streaming state reset, the
    persona prefill (timed step by step), and the measured frames of the conversation.
    """
    result = FrameLoopResult()
    total = warmup_frames + frames
    process_clock = ProcessClock()
    result.cpu_sources = process_clock.sources
    result.cores = usable_cores()
    result.threads = torch.get_num_threads()
    late: list[bool] = []
    with make_loop(mimi, lm_gen, device, batch_size=batch_size, seed=seed, warmup_frames=warmup_frames,
                   other_mimi=other_mimi, serving=serving, input_wav=input_wav) as loop, _GcTimer() as gc_timer:
        result.stage_ms = {s: [] for s in loop.stages}
        anchor = 0.0
        for index in range(total):
            is_warmup = index < warmup_frames
            if index == warmup_frames:
                if persona is not None:
                    loop.new_connection()
                    result.prefill = run_prefill(persona, mimi, lm_gen, device, batch_size, seed)
                result.compiled_before_measuring = _dynamo_frames()
                result.graphs_before_measuring = loop.captured_graphs()
                gc.collect()
                anchor = time.perf_counter()
            if paced_frame_ms and not is_warmup:
                wait = anchor + (index - warmup_frames) * paced_frame_ms / 1e3 - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                elif index > warmup_frames and wait < -1e-3:
                    result.late_starts += 1
            begun = time.perf_counter()
            gc_before = gc_timer.total_ns
            cpu_before = process_clock.read(before=True)
            times = loop.frame(index)
            frame_cpu = process_clock.between(cpu_before, process_clock.read(before=False))
            if index == 0:
                result.first_step_s = times["total"] / 1e3
            if index == warmup_frames:
                result.first_frame_ms = times["total"]
            if is_warmup:
                result.warmup_s += times["total"] / 1e3
            else:
                result.start_perf_s.append(begun)
                result.total_ms.append(times["total"])
                for stage in loop.stages:
                    result.stage_ms[stage].append(times[stage])
                for stage, ms in loop.clock.event_ms().items():
                    result.event_ms.setdefault(stage, []).append(ms)
                cpu = loop.clock.cpu_ms()
                result.cpu_ms.append(cpu.pop("total"))
                for stage, ms in cpu.items():
                    result.stage_cpu_ms.setdefault(stage, []).append(ms)
                result.process_cpu_ms.append(frame_cpu.process_cpu_ms)
                if frame_cpu.run_wait_ms is not None:
                    result.run_wait_ms.append(frame_cpu.run_wait_ms)
                if frame_cpu.main_wait_ms is not None and frame_cpu.frame_wait_ms is not None:
                    result.main_wait_ms.append(frame_cpu.main_wait_ms)
                    result.frame_wait_ms.append(frame_cpu.frame_wait_ms)
                if frame_cpu.others_cpu_ms is not None:
                    result.others_cpu_ms.append(frame_cpu.others_cpu_ms)
                result.gc_ms.append((gc_timer.total_ns - gc_before) / 1e6)
            if on_frame is not None:
                on_frame(index, total, is_warmup, times["total"])
            if stop is not None and not is_warmup:
                # Late by the code, not by the machine: time spent waiting for a CPU is not the configuration's,
                # and a run must not stop on a disturbance (the verdict judges that from the whole record).
                waited = frame_cpu.frame_wait_ms or 0.0
                late.append(times["total"] - waited > stop.deadline_ms)
                result.stopped_early = should_stop(late, stop) or ""
                if result.stopped_early:
                    break
        result.compiled_total = _dynamo_frames()
        result.graphs_captured = loop.captured_graphs()
    process_clock.close()
    return result

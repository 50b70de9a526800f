"""The record a worker receives (BenchJob) for one process of a run: frames, warmup, pacing, persona, early stop."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness.contract.environment import measurement_env
from harness.contract.presets import GRAPH_WARMUP_FRAMES
from harness.contract.stopping import EarlyStop
from harness.contract.wire import BenchJob, PersonaJob
from harness.records.config import Device, RunConfig
from harness.records.scenario import Pace
from harness.scenario.load import LoadedScenario
from harness.session.run_rules import worker_run

IDLE_WINDOW_S = 1.0  # capacity runs on a GPU: idle sampling after warmup, for the power between frames


class JobBuilder:
    def __init__(self, loaded: LoadedScenario, warmup: int) -> None:
        self.loaded = loaded
        self.warmup = warmup

    def warmup_for(self, run: RunConfig) -> int:
        """The warmup asked for, raised with CUDA graphs on so that no capture lands in a measured frame."""
        return max(self.warmup, GRAPH_WARMUP_FRAMES) if run.cuda_graphs else self.warmup

    def job(self, run: RunConfig, work: Path, env: dict[str, str], frames: int, timeout_s: float,
            barrier: Optional[Path] = None, paced: bool = False, fidelity: bool = False) -> BenchJob:
        s = self.loaded.scenario
        # Server processes measured together run at real-time pace whatever the scenario's: a server's frames
        # come as the audio arrives, and K processes share the machine between frames. A confirmation run
        # (`paced`) is paced too.
        paced = paced or s.pace is Pace.realtime or barrier is not None
        batch = run.batch_size or s.batch_size
        join = run.capacity.join if run.capacity is not None and batch > 1 else None
        return BenchJob(run=worker_run(run), preset=s.preset,
                        weights_path=str(self.loaded.weights_path) if self.loaded.weights_path else None,
                        join_at_tick=(join.at_tick or frames // 2) if join else None,
                        join_warmup_steps=join.warmup_steps if join else 0,
                        join_mode=join.mode if join else "interleaved",
                        frames=frames, warmup_frames=self.warmup_for(run), batch_size=batch,
                        torch_threads=s.torch_threads, seed=s.seed, scratch_dir=str(work / "scratch"),
                        paced_frame_ms=s.frame_budget_ms if paced else None,
                        telemetry_hz=s.telemetry_hz, reply_path=str(work / "reply.json"),
                        env=measurement_env(env), serving=run.serving.value, persona=self.persona(),
                        start_barrier=str(barrier) if barrier is not None else None,
                        barrier_timeout_s=timeout_s,
                        # capacity runs price energy at real-time pace: the device's power between frames
                        idle_window_s=IDLE_WINDOW_S if run.capacity is not None and run.device is Device.cuda else 0.0,
                        stop=self.early_stop(run, frames) if barrier is None else None,
                        input_wav=None if s.input == "synthetic" else s.input,
                        # as many frames as the timed run, up to the scenario's: a 3-frame smoke compares 3
                        fidelity_frames=min(s.fidelity.frames, frames) if fidelity else 0)

    def early_stop(self, run: RunConfig, frames: int) -> Optional[EarlyStop]:
        """Stop a run once it is certainly not real time (harness.contract.stopping); not a capacity probe, whose
        joining caller comes half-way through, nor processes measured together (they share a start barrier)."""
        if run.capacity is not None:
            return None
        s = self.loaded.scenario
        c = s.criteria
        return EarlyStop(deadline_ms=c.deadline_ms(s.frame_budget_ms), block_frames=c.burst_frames,
                         target=c.late_frame_target, confidence=c.confidence, min_frames=c.min_frames, frames=frames)

    def persona(self) -> Optional[PersonaJob]:
        persona = self.loaded.scenario.effective_persona
        if persona is None:
            return None
        # paths were made absolute when the scenario was loaded
        return PersonaJob(voice_prompt_frames=persona.voice_prompt_frames, voice_prompt_wav=persona.voice_prompt,
                          silence_frames=persona.silence_frames, text_prompt_tokens=persona.text_prompt_tokens,
                          text_prompt=persona.text_prompt, tokenizer=persona.tokenizer,
                          server_wait_ms=persona.server_wait_ms)

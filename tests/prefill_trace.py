"""One call as a server runs it, with the prompt traced step by step: prints JSON on stdout.

Run with the interpreter of the moshi to trace (the harness's own: the emulation; the fork's environment: NVIDIA's
`step_system_prompts`), PYTHONPATH at the repository:

    python tests/prefill_trace.py '{"voice_prompt_frames": 13, "text_prompt_tokens": 20}' [frames] [serving]

Builds personaplex-tiny (synthetic weights, float32, CPU) as the worker does, runs warmup frames, connects a call
(streaming state reset), steps the persona prompt through the worker's run_prefill, then `frames` conversation
frames. Used by tests/test_nvidia_fork.py; its figures (per-step and frame milliseconds) are for reading, not for
asserting.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from harness.contract.wire import PersonaJob, WorkerRun
from harness.worker.engine.build import build_models
from harness.worker.flavour import moshi_flavour
from harness.worker.pipeline.frame_loop import FrameLoop
from harness.worker.pipeline.prefill import PromptStep, run_prefill

WARMUP = 2


def main(argv: list[str]) -> int:
    persona = PersonaJob(**json.loads(argv[1]))
    frames = int(argv[2]) if len(argv) > 2 else 3
    serving = argv[3] if len(argv) > 3 else "personaplex-server"
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        built = build_models(WorkerRun(name="trace", device="cpu", dtype="float32"), "personaplex-tiny", None, 0,
                             Path(scratch), serving=serving)
    trace: list[PromptStep] = []
    with torch.no_grad(), FrameLoop(built.mimi, built.lm_gen, built.device, batch_size=1, seed=0,
                                    warmup_frames=WARMUP, other_mimi=built.other_mimi, serving=serving) as loop:
        for index in range(WARMUP):
            loop.frame(index)
        loop.new_connection()
        prefill = run_prefill(persona, built.mimi, built.lm_gen, built.device, 1, 0, trace=trace)
        frame_ms = [loop.frame(WARMUP + i)["total"] for i in range(frames)]
    version, flavour = moshi_flavour()
    print(json.dumps({"flavour": flavour, "moshi": version, "torch": torch.__version__,
                      "prefill": dataclasses.asdict(prefill), "trace": [dataclasses.asdict(s) for s in trace],
                      "frame_ms": frame_ms}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

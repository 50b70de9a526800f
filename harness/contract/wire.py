"""What crosses the process boundary between the parent and a worker, defined once.

Standard library only: the worker imports this module in environments that have torch and moshi but
no pydantic (a user's PersonaPlex venv, the GPU node). The worker writes these dataclasses as plain
JSON (`to_json`); the parent validates that JSON with pydantic (`harness.records.validate`), which
understands stdlib dataclasses and honours `__pydantic_config__` (unknown fields are an error, as in
every record). Records that the results file keeps (EngineInfo, TelemetrySeries, ArchitectureFacts,
GpuInfo, ProbeCheck) are these same classes, so the contract and the schema cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from harness.contract.stopping import EarlyStop

_FORBID = {"extra": "forbid"}

CheckStatus = Literal["pass", "warn", "fail", "n/a"]

# NVML clock-event ("throttle") reason bits that mean the GPU slowed itself down.
THROTTLE_BITS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


def to_json(value: Any) -> str:
    """A wire dataclass as JSON (what the worker writes)."""
    return json.dumps(dataclasses.asdict(value), separators=(",", ":"))


# --- records the results file keeps -----------------------------------------------------------------------------

@dataclass
class ProbeCheck:
    __pydantic_config__ = _FORBID
    name: str
    status: CheckStatus
    finding: str
    remedy: str = ""
    value: Optional[float] = None


@dataclass
class GpuInfo:
    __pydantic_config__ = _FORBID
    index: int
    name: str
    uuid: Optional[str] = None
    compute_capability: Optional[str] = None
    memory_total_bytes: Optional[int] = None
    memory_free_bytes: Optional[int] = None
    driver: Optional[str] = None


@dataclass
class BlockFacts:
    """Parameters of one LM block (a temporal layer, the depformer, the embeddings, ...)."""

    __pydantic_config__ = _FORBID
    name: str
    params: int
    linear_params: int  # nn.Linear weights: what int8 quantises
    linear_out_features: int  # rows of those weights: one float32 int8 scale each
    float32_params: int  # parameters kept in float32 whatever the dtype (RMSNorm f32)


@dataclass
class KVFacts:
    """One family of streaming attention caches: 2 x layers x batch x capacity x kv_heads x head_dim."""

    __pydantic_config__ = _FORBID
    name: str
    layers: int
    capacity: int
    kv_heads: int
    head_dim: int
    float32: bool = False  # always float32 (Mimi) rather than the LM dtype
    per_step: bool = False  # rebuilt within each step (depformer)


@dataclass
class ArchitectureFacts:
    """A preset's architecture as counted on the real moshi modules (by a worker), for the planner."""

    __pydantic_config__ = _FORBID
    preset: str
    lm_parameters: int
    mimi_parameters: int
    mimi_buffer_bytes: int
    dim: int
    temporal_layers: int
    context: int
    dep_q: int
    n_q: int
    text_card: int
    card: int
    blocks: list[BlockFacts]
    kv: list[KVFacts]

    def block(self, name: str) -> BlockFacts:
        return next(b for b in self.blocks if b.name == name)


@dataclass
class QuantizationInfo:
    """What quantizing the LM's matmul weights did, observed in the worker (harness.contract.quantized says why)."""

    __pydantic_config__ = _FORBID
    scheme: str  # int8 | fp8 | w8a16 | nf4
    kernel_path: str  # harness.contract.quantized.KERNEL_PATHS key: what ran each quantized matmul
    kernel_note: str  # why that path (e.g. no fused kernel on this device)
    linears: int  # matmul weights replaced
    linear_bytes_before: int  # those weights in the run's dtype
    linear_bytes_after: int  # their quantized data and scales, counted from the tensors
    lm_bytes_before: int  # the whole LM (parameters and buffers) as it would be unquantized
    lm_bytes_after: int  # the whole LM as built, counted from its tensors
    weight_rel_rms_error: float  # ||dequantised - original|| / ||original|| over every quantized weight


@dataclass
class EngineInfo:
    """What the worker actually built and ran, as observed inside the worker."""

    __pydantic_config__ = _FORBID
    torch_version: str
    moshi_version: str
    device: str
    device_name: str
    torch_threads: int
    lm_dtype: str
    mimi_dtype: str
    weights: str  # 'synthetic (...)' or the checkpoint path that was loaded
    lm_parameters: int
    mimi_parameters: int
    quantized_linears: int = 0
    offloaded_layers: list[str] = field(default_factory=list)
    offload_tier: Optional[str] = None
    compiled_frames: int = 0  # frames torch.compile (dynamo) compiled in this worker, warmup included
    recompiles_measured: int = 0  # of those, compiled while measured frames ran: the timings include compiling
    cuda_graphs_active: bool = False  # moshi's CUDAGraphed wrappers really captured a graph (observed)
    cuda_graphs_captured: int = 0
    cuda_graphs_captured_measured: int = 0  # of those, captured during the measured frames (warmup too short)
    build_user_s: float = 0.0  # CPU time in user space while building the model
    build_system_s: float = 0.0  # CPU time in the kernel while building (page faults)
    env: dict[str, str] = field(default_factory=dict)  # every variable that can change a measurement
    python: str = ""
    cuda_runtime: Optional[str] = None
    serving: str = "model"  # what ran per frame: model (the bare core), personaplex-server or moshi-server
    moshi_flavour: str = "pypi"  # pypi (the harness's faithful emulation) or nvidia (PersonaPlex's own fork)
    quantization: Optional[QuantizationInfo] = None  # None: unquantized (or a file written before it was recorded)


@dataclass
class TelemetrySeries:
    """Columnar samples, one entry per sample; a missing source is 'unavailable: why', never zeros."""

    __pydantic_config__ = _FORBID
    hz: float
    sources: dict[str, str] = field(default_factory=dict)
    sampler_cpu_s: float = 0.0  # CPU time the sampler thread itself used
    sampler_wall_s: float = 0.0
    t_s: list[float] = field(default_factory=list)  # seconds since the sampler started
    cpu_percent: list[float] = field(default_factory=list)
    cpu_mhz: list[Optional[float]] = field(default_factory=list)
    cpu_temp_c: list[Optional[float]] = field(default_factory=list)
    rss_bytes: list[float] = field(default_factory=list)
    gpu_temp_c: list[Optional[float]] = field(default_factory=list)
    gpu_power_w: list[Optional[float]] = field(default_factory=list)
    gpu_energy_j: list[Optional[float]] = field(default_factory=list)
    sm_clock_mhz: list[Optional[float]] = field(default_factory=list)
    mem_clock_mhz: list[Optional[float]] = field(default_factory=list)
    gpu_util_percent: list[Optional[float]] = field(default_factory=list)
    gpu_mem_used_bytes: list[Optional[float]] = field(default_factory=list)
    throttle_reasons: list[Optional[float]] = field(default_factory=list)
    power_violation_ns: list[Optional[float]] = field(default_factory=list)
    thermal_violation_ns: list[Optional[float]] = field(default_factory=list)


# --- jobs (parent -> worker) ------------------------------------------------------------------------------------

@dataclass
class WorkerRun:
    """The run configuration as the worker needs it (plain strings; the parent validated the enums)."""

    __pydantic_config__ = _FORBID
    name: str
    device: str  # cpu | cuda
    dtype: str  # bfloat16 | float16 | float32
    quantize: str = "none"  # none | int8 | fp8 | w8a16 | nf4
    offload: str = "none"  # none | cpu
    offload_fraction: float = 0.5
    compile: bool = False
    cuda_graphs: bool = False


@dataclass
class PersonaJob:
    """The persona prompt a PersonaPlex server steps through, one LM step at a time, before the first user frame:
    voice-prompt frames, silence, one step per text-prompt token, silence."""

    __pydantic_config__ = _FORBID
    voice_prompt_frames: int = 0  # from a voice embedding (.pt in NVIDIA's server): LM steps without Mimi
    voice_prompt_wav: Optional[str] = None  # a .wav instead: its frames go through Mimi encode first
    silence_frames: int = 6  # int(0.5 s x 12.5 Hz), before and after the text prompt
    text_prompt_tokens: int = 0
    text_prompt: Optional[str] = None  # tokenised in the worker when `tokenizer` is given
    tokenizer: Optional[str] = None  # a SentencePiece model file
    server_wait_ms: float = 10.0  # NVIDIA's server awaits a 10 ms liveness check before each prompt step


@dataclass
class BenchJob:
    __pydantic_config__ = _FORBID
    run: WorkerRun
    preset: str
    frames: int
    warmup_frames: int
    batch_size: int
    seed: int
    scratch_dir: str
    reply_path: str
    kind: Literal["bench"] = "bench"
    weights_path: Optional[str] = None  # None: synthetic weights
    torch_threads: Optional[int] = None
    paced_frame_ms: Optional[float] = None  # wait for each frame's audio like a live session
    telemetry_hz: float = 10.0
    env: dict[str, str] = field(default_factory=dict)  # what the worker must run under (re-exec'd by hand runs)
    serving: str = "model"  # model | personaplex-server | moshi-server (a server's per-frame extras, each timed)
    persona: Optional[PersonaJob] = None  # prefill before the measured frames, as a server does per connection
    join_at_tick: Optional[int] = None  # batch > 1: the last slot is reset and warmed up at this measured tick
    join_warmup_steps: int = 0  # without a persona: neutral warm-up steps of the joining slot
    # Server processes measured together: after its warmup frames the worker writes `ready.<pid>` into this
    # folder and waits for `go` there (written by the parent once every process is ready), so that the calls
    # of K processes run at the same time.
    start_barrier: Optional[str] = None
    barrier_timeout_s: float = 300.0
    # Seconds of idle sampling after the warmup frames (telemetry on): the device's power between frames.
    idle_window_s: float = 0.0
    stop: Optional[EarlyStop] = None  # stop once the run is certainly not real time (harness.contract.stopping)
    # Input audio: None is the seeded synthetic signal; else a .wav read and resampled to Mimi's rate in the worker.
    input_wav: Optional[str] = None
    # Fidelity: after the timed frames (never inside them), this many teacher-forced frames against the bf16 eager
    # reference of the same model and weights (harness.worker.fidelity); 0: not measured.
    fidelity_frames: int = 0


@dataclass
class ProbeJob:
    __pydantic_config__ = _FORBID
    reply_path: str
    kind: Literal["probe"] = "probe"
    presets: list[str] = field(default_factory=list)  # presets whose architecture to describe
    device_checks: bool = True  # run bitsandbytes / Triton / bandwidth checks
    cpu_stages: bool = False  # time the real frame's stages on the CPU (what a CPU step prediction is fitted on)
    cpu_threads: int = 0  # torch threads for that timing (0: torch's default), as the runs will use


def job_from_json(text: str) -> "BenchJob | ProbeJob":
    """The worker's reader (no pydantic): builds the job dataclasses, refusing unknown fields."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("kind") not in ("bench", "probe"):
        raise ValueError("not a harness job: expected a JSON object with kind 'bench' or 'probe'")
    if data["kind"] == "probe":
        return ProbeJob(**data)
    persona = data.get("persona")
    stop = data.get("stop")
    return BenchJob(**{**data, "run": WorkerRun(**data["run"]),
                       "persona": PersonaJob(**persona) if isinstance(persona, dict) else None,
                       "stop": EarlyStop(**stop) if isinstance(stop, dict) else None})


# --- replies (worker -> parent) ---------------------------------------------------------------------------------

@dataclass
class WorkerError:
    __pydantic_config__ = _FORBID
    type: str
    message: str
    traceback: str = ""
    phase: str = ""


@dataclass
class FrameSamples:
    """Per-frame milliseconds for the measured frames only (warmup excluded)."""

    __pydantic_config__ = _FORBID
    total_ms: list[float]
    stage_ms: dict[str, list[float]]
    start_s: list[float] = field(default_factory=list)  # start of each measured frame, telemetry clock
    cuda_event_stage_ms: dict[str, list[float]] = field(default_factory=dict)
    late_start_frames: int = 0  # paced runs: frames that could not start on their audio's arrival
    # Was the process running? (harness.worker.pipeline.cpu_clock) One entry per measured frame; a list this
    # worker could not read is empty, and `cpu_sources` says why. Older replies have none of them.
    cpu_ms: list[float] = field(default_factory=list)  # main thread CPU time over the frame's wall interval
    stage_cpu_ms: dict[str, list[float]] = field(default_factory=dict)  # ... per stage
    process_cpu_ms: list[float] = field(default_factory=list)  # every thread of the process
    run_wait_ms: list[float] = field(default_factory=list)  # largest run-queue wait of any thread (schedstat)
    main_wait_ms: list[float] = field(default_factory=list)  # ... of the main thread
    frame_wait_ms: list[float] = field(default_factory=list)  # ... of the threads that carry the frame
    cores: int = 0  # CPUs the worker may run on (its affinity); 0: not read
    threads: int = 0  # torch's intra-op threads in this process during the frames; 0: not read
    others_cpu_ms: list[float] = field(default_factory=list)  # CPU time other processes used on the host
    gc_ms: list[float] = field(default_factory=list)  # the process's own garbage collections
    cpu_sources: dict[str, str] = field(default_factory=dict)
    stopped_early: str = ""  # why the worker measured fewer frames than asked (harness.contract.stopping)


@dataclass
class PrefillSamples:
    """The persona prefill as it ran: its LM steps (each timed) and the server's waits between them."""

    __pydantic_config__ = _FORBID
    voice_steps: int
    silence_steps: int
    text_steps: int
    step_ms: list[float]  # every prefill step, in order (voice, silence, text, silence)
    seconds: float  # wall time of the whole prefill, waits included
    wait_s: float  # of which the server's waits
    voice_encode_ms: float = 0.0  # Mimi encode of a .wav voice prompt
    text_tokens_estimated: bool = False  # a text prompt counted without its tokenizer
    context_capacity: int = 0  # the LM's context in frames (what the prompt's steps use up)


@dataclass
class MemoryReading:
    __pydantic_config__ = _FORBID
    peak_rss_bytes: int
    rss_after_load_bytes: int
    cuda_peak_allocated_bytes: Optional[int] = None
    cuda_peak_reserved_bytes: Optional[int] = None
    cuda_total_bytes: Optional[int] = None
    cuda_device_used_bytes: Optional[int] = None  # whole device as the driver sees it (context included)


@dataclass
class AdmissionSample:
    """A session joining a running batch: per-slot reset, then its persona prefill (or neutral warm-up steps)
    before the admitting tick. reset + prefill is the stall every other session of the batch sees."""

    __pydantic_config__ = _FORBID
    slot: int
    at_tick: int  # measured tick index
    warmup_steps: int  # LM steps the joining slot took alone (the persona's steps when it ran one)
    reset_ms: float
    prefill_ms: float  # after the reset until the admitting tick: prompt steps and the server's waits
    tick_ms: list[float] = field(default_factory=list)  # the admitting tick's own frame, the join not included
    persona: Optional[PrefillSamples] = None  # the persona prefill as the joining slot ran it


@dataclass
class StreamFidelity:
    """One output stream of the candidate against the reference, teacher-forced: the candidate reads the
    reference's tokens every step, so each frame compares the two models on the same context."""

    __pydantic_config__ = _FORBID
    stream: str  # text | semantic (audio codebook 0) | acoustic (audio codebooks 1..7)
    codebooks: int  # logit rows per frame in this stream
    top1_agreement: float  # share of (frame, codebook) where the candidate's argmax is the reference's
    kl_mean: float  # KL(reference || candidate) in nats, over every (frame, codebook)
    kl_p99: float
    kl_max: float
    kl_by_frame: list[float] = field(default_factory=list)  # mean KL per frame, in order: the drift
    greedy_agreement: float = 0.0  # free-run greedy: the candidate's own tokens equal to the reference's


@dataclass
class FidelityReading:
    """What a configuration's output is, against the bf16 eager reference of the same model, weights and input."""

    __pydantic_config__ = _FORBID
    frames: int  # teacher-forced frames compared
    reference: str  # what the reference ran, in words
    method: str  # how the comparison was made (teacher-forced; whether the reference was replayed)
    self_test: bool  # the candidate is the reference's own configuration: must read KL 0, agreement 1
    synthetic: bool  # synthetic weights: numerics, not speech quality
    input: str  # the input audio both models heard
    streams: list[StreamFidelity] = field(default_factory=list)
    greedy_agreement: float = 0.0  # free-run greedy, every stream's tokens together
    greedy_first_divergence: Optional[int] = None  # first frame whose free-run tokens differ (None: never)
    non_finite_frames: int = 0  # frames whose candidate logits held NaN/Inf (left out of KL; agreement counts them)
    seconds: float = 0.0  # wall time of the whole fidelity pass (after the timed frames)
    skipped: str = ""  # why it was not measured (then streams is empty)


@dataclass
class BenchReply:
    __pydantic_config__ = _FORBID
    status: Literal["ok", "failed"]
    kind: Literal["bench"] = "bench"
    error: Optional[WorkerError] = None
    engine: Optional[EngineInfo] = None
    samples: Optional[FrameSamples] = None
    import_s: Optional[float] = None  # importing torch and moshi (a server's start pays it too)
    load_s: Optional[float] = None
    first_step_s: Optional[float] = None
    warmup_s: Optional[float] = None
    memory: Optional[MemoryReading] = None
    telemetry: Optional[TelemetrySeries] = None
    prefill: Optional[PrefillSamples] = None
    first_frame_ms: Optional[float] = None  # the first conversation frame after the prefill
    admission: Optional[AdmissionSample] = None
    barrier_wait_s: Optional[float] = None  # start_barrier: how long this process waited for the others
    barrier_released: Optional[bool] = None  # False: it waited barrier_timeout_s and went on alone
    idle_window: Optional[list[float]] = None  # [start, end] of the idle sampling, on the telemetry's clock
    fidelity: Optional[FidelityReading] = None  # against the bf16 reference, after the timed frames


@dataclass
class TorchFacts:
    """What only an importing-torch process can tell."""

    __pydantic_config__ = _FORBID
    torch_version: Optional[str] = None
    torch_cuda_build: Optional[str] = None
    cuda_available: bool = False
    cuda_unavailable_reason: str = ""
    arch_list: list[str] = field(default_factory=list)
    gpus: list[GpuInfo] = field(default_factory=list)
    bf16_supported: Optional[bool] = None
    import_error: Optional[WorkerError] = None
    python: str = ""  # the interpreter that probed (a user's environment can differ from the harness's)
    python_executable: str = ""
    moshi_version: Optional[str] = None
    moshi_flavour: str = ""  # pypi | nvidia (PersonaPlex's fork has LMGen.step_system_prompts)


@dataclass
class CpuStages:
    """The real frame's stages timed on this CPU (median of a few eager float32 frames of a scaled preset)."""

    __pydantic_config__ = _FORBID
    preset: str  # the preset timed (the Moshi family's, so that a PersonaPlex prediction is not fitted on itself)
    frames: int
    mimi_ms: float  # Mimi encode + decode: the same module in every preset
    lm_ms: float  # LMGen.step
    threads: int


@dataclass
class ProbeReply:
    __pydantic_config__ = _FORBID
    facts: TorchFacts
    kind: Literal["probe"] = "probe"
    checks: list[ProbeCheck] = field(default_factory=list)
    architectures: dict[str, ArchitectureFacts] = field(default_factory=dict)
    baseline_rss_bytes: Optional[int] = None  # a worker after importing torch, moshi, accelerate, a meta build
    bitsandbytes_import_bytes: Optional[int] = None
    error: Optional[WorkerError] = None
    host_op_us: Optional[float] = None  # eager PyTorch: host cost per dispatched op (on the GPU when there is one)
    host_op_device: Optional[str] = None  # where it was measured: cpu | cuda
    cpu_matmul_gflops: dict[str, float] = field(default_factory=dict)  # per dtype, this CPU
    cpu_stages: Optional[CpuStages] = None  # asked for with ProbeJob.cpu_stages


@dataclass
class ProgressEvent:
    """One line on the progress pipe."""

    __pydantic_config__ = _FORBID
    event: Literal["phase", "frame"]
    phase: str = ""
    index: int = 0
    total: int = 0
    warmup: bool = False
    ms: float = 0.0

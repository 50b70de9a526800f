"""The scenario as a typed record (pydantic, torch-free): read from YAML by the scenario room, stored in results.

A scenario names a model preset, the weights, how many frames to measure, and a list of runs.
Runs come from an explicit `runs:` list, a compact `matrix:` (cartesian product), or both; every
run field not given falls back to the scenario's `defaults:`, then to the defaults below.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from harness.contract.presets import MIN_WARMUP_FRAMES, PRESETS
from harness.records.capacity import CapacitySpec
from harness.records.config import Device, DType, Offload, Quantize, Serving, deploying_serving, environment_label
from harness.records.endpoint import Slo
from harness.records.fidelity import FidelityCriteria


def _parse_switch(value: Any) -> Any:
    """YAML 1.1 reads `on`/`off` as booleans already; accept the spelled-out strings too."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"on", "true", "yes"}:
            return True
        if lowered in {"off", "false", "no"}:
            return False
    return value


Switch = Annotated[bool, BeforeValidator(_parse_switch)]


class _Strict(BaseModel):
    # allow_inf_nan=False: `frame_budget_ms: .inf` is refused here, not after the first worker finished
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, allow_inf_nan=False)


# Names become file and folder names (logs/<run>.stderr.log, .work/<run>/): letters, digits, '.', '_', '-',
# starting with a letter or digit, so that no name can climb out of the output folder or hide a path.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MAX_TIMEOUT_S = 7 * 86_400.0  # a week: the sane maximum of any one run


class RunSpec(_Strict):
    """One run as written in a scenario: every field optional."""

    name: Optional[str] = Field(default=None, min_length=1, max_length=80, pattern=NAME_PATTERN)
    device: Optional[Device] = None
    dtype: Optional[DType] = None
    quantize: Optional[Quantize] = None
    offload: Optional[Offload] = None
    offload_fraction: Optional[float] = Field(default=None, gt=0.0, lt=1.0)
    compile: Optional[Switch] = None
    cuda_graphs: Optional[Switch] = None
    timeout_s: Optional[float] = Field(default=None, gt=0.0, le=MAX_TIMEOUT_S)
    serving: Optional[Serving] = None
    python: Optional[str] = Field(default=None, min_length=1, description="another environment's interpreter")
    batch_size: Optional[int] = Field(default=None, ge=1, le=256)
    capacity: Optional[CapacitySpec] = None


class RunDefaults(_Strict):
    device: Device = Device.auto
    dtype: DType = DType.bfloat16
    quantize: Quantize = Quantize.none
    offload: Offload = Offload.none
    offload_fraction: float = Field(default=0.5, gt=0.0, lt=1.0)
    compile: Switch = False
    cuda_graphs: Switch = False
    timeout_s: Optional[float] = Field(default=None, gt=0.0, le=MAX_TIMEOUT_S,
                                       description="None: the scenario's timeout_s")
    serving: Optional[Serving] = Field(default=None, description="None: the frame of the server that would deploy "
                                                                 "the run (personaplex-server for what NVIDIA's "
                                                                 "server loads of a PersonaPlex preset, moshi-server "
                                                                 "otherwise); model: the bare core, only when asked")
    python: Optional[str] = Field(default=None, min_length=1, description="interpreter of the environment the "
                                                                          "workers run in (default: the harness's)")
    batch_size: Optional[int] = Field(default=None, ge=1, le=256, description="None: the scenario's batch_size")
    capacity: Optional[CapacitySpec] = Field(default=None, description="search the largest real-time batch")


class Matrix(_Strict):
    """Lists of values whose cartesian product becomes runs."""

    device: list[Device] = Field(default_factory=list)
    dtype: list[DType] = Field(default_factory=list)
    quantize: list[Quantize] = Field(default_factory=list)
    offload: list[Offload] = Field(default_factory=list)
    compile: list[Switch] = Field(default_factory=list)
    cuda_graphs: list[Switch] = Field(default_factory=list)
    serving: list[Serving] = Field(default_factory=list)
    batch_size: list[Annotated[int, Field(ge=1, le=256)]] = Field(default_factory=list)
    exclude: list[RunSpec] = Field(default_factory=list)


# Name suffix of a run whose frame is not the one of the server that would deploy it.
SERVING_SUFFIX = {Serving.model: "core", Serving.personaplex_server: "server", Serving.moshi_server: "moshi"}


def auto_run_name(cfg: dict[str, Any], default_serving: Serving = Serving.model) -> str:
    parts = [Device(cfg["device"]).value, DType(cfg["dtype"]).short]
    if Quantize(cfg["quantize"]) is not Quantize.none:
        parts.append(Quantize(cfg["quantize"]).value)
    if Offload(cfg["offload"]) is Offload.cpu:
        parts.append("offload")
    parts.append("compile" if cfg["compile"] else "eager")
    if cfg["cuda_graphs"]:
        parts.append("graphs")
    serving = Serving(cfg.get("serving") or default_serving)
    if serving is not default_serving:  # names stay short for the frame of the server that would deploy it
        parts.append(SERVING_SUFFIX[serving])
    if cfg.get("python"):
        parts.append(re.sub(r"[^A-Za-z0-9_.-]", "_", environment_label(cfg["python"])))
    if cfg.get("batch_size"):
        parts.append(f"b{cfg['batch_size']}")
    if cfg.get("capacity") is not None:
        parts.append("capacity")
    return "-".join(parts)


class TargetOS(str, Enum):
    linux = "linux"
    wsl = "wsl"
    windows = "windows"
    macos = "macos"


class Target(_Strict):
    """The machine a scenario is about, so that it can be planned without being on it."""

    gpu: Optional[str] = Field(default=None, description="GPU name, e.g. 'NVIDIA GeForce RTX 5090'; none: CPU only")
    vram_gib: Optional[float] = Field(default=None, gt=0, le=100_000)
    compute_capability: Optional[str] = Field(default=None, pattern=r"^\d+\.\d+$")
    memory_bandwidth_gbs: Optional[float] = Field(default=None, gt=0, le=1_000_000)
    host_link_gbs: Optional[float] = Field(default=None, gt=0, le=100_000, description="usable PCIe bandwidth, for offload")
    host_ram_gib: Optional[float] = Field(default=None, gt=0, le=1_000_000)
    host_memory_bandwidth_gbs: Optional[float] = Field(default=None, gt=0, le=1_000_000)
    os: TargetOS = TargetOS.linux


class Persona(_Strict):
    """The persona prompt stepped before every call's first frame (PersonaPlex's `step_system_prompts`)."""

    voice_prompt_frames: int = Field(
        default=50, ge=0, le=10_000,
        description="voice-prompt frames from a voice embedding (.pt); 50 (4 s) is an assumption: NVIDIA's NAT/VAR "
                    "voice files are not in its repository, so measure yours with voice_prompt")
    voice_prompt: Optional[str] = Field(default=None, description="a 16-bit PCM .wav: its frames go through Mimi")
    text_prompt_tokens: int = Field(
        default=65, ge=0, le=100_000,
        description="SentencePiece tokens of the text prompt with its <system> tags; 65 is the estimate for the "
                    "example service prompt of NVIDIA's README (assets/test/prompt_service.txt, 45 words)")
    text_prompt: Optional[str] = Field(default=None, description="the prompt itself (counted, or tokenised with "
                                                                 "`tokenizer`)")
    tokenizer: Optional[str] = Field(default=None, description="PersonaPlex's SentencePiece model file")
    silence_frames: int = Field(default=6, ge=0, le=1000, description="int(0.5 s x 12.5 Hz), as NVIDIA's server")
    server_wait_ms: float = Field(default=10.0, ge=0.0, le=10_000.0,
        description="the server's liveness wait before each step")

    @property
    def steps(self) -> Optional[int]:
        """voice + silence + text + silence, when known before running (a .wav or a tokenizer decide in the worker)."""
        if self.voice_prompt or (self.text_prompt and self.tokenizer):
            return None
        return self.voice_prompt_frames + 2 * self.silence_frames + self.text_prompt_tokens


class Latency(_Strict):
    """Terms of the mouth-to-ear estimate that the harness cannot measure: the user declares them."""

    network_rtt_ms: float = Field(default=0.0, ge=0.0, le=60_000.0, description="client <-> server round trip")
    audio_path_ms: float = Field(default=0.0, ge=0.0, le=60_000.0,
        description="capture and playback outside the model, e.g. "
                                                                 "WSLg's 30-50 ms")
    target_ms: float = Field(default=500.0, gt=0.0, le=60_000.0, description="the seeds' conversational target, < 500 ms")


class Pace(str, Enum):
    fast = "fast"  # each frame as soon as the previous one is done: throughput
    realtime = "realtime"  # each frame when its 80 ms of audio has arrived, like a live session


class CertifyScope(str, Enum):
    """Which screened runs are measured on to the certifying length (harness.verdict.screen.decision_order)."""

    decision = "decision"  # the frames in the order the verdict recommends them, until one certifies (the GO)
    every_frame = "every-frame"  # the best of every frame measured, whether or not it can change the GO


class Criteria(_Strict):
    """What a run must show to count as real time (the verdict), and what makes a measurement valid."""

    headroom: float = Field(default=0.10, ge=0.0, lt=1.0, description="p99 must stay under (1 - headroom) x budget")
    jitter_buffer_ms: Optional[float] = Field(
        default=None, ge=0.0, le=60_000.0,
            description="playback buffer that must see zero underruns; default one frame budget")
    memory_headroom: float = Field(default=0.10, ge=0.0, lt=1.0, description="free share of GPU / host memory")
    late_frame_target: float = Field(default=0.01, gt=0.0, lt=1.0, description="allowed share of frames over budget")
    confidence: float = Field(default=0.99, gt=0.5, lt=1.0)
    burst_frames: int = Field(
        default=10, ge=1, le=100_000,
        description="late frames come in bursts (a collection, another process, a clock change): the late share is "
                    "certified for bursts of up to this many frames (0.8 s at 80 ms), over blocks of this length "
                    "(harness.stats.certify); 1 treats frames as independent, which bursts make over-confident")
    min_frames: int = Field(default=100, ge=1, le=1_000_000, description="measure at least this many frames")
    min_seconds: float = Field(default=10.0, ge=0.0, le=86_400.0, description="measure at least this many seconds of audio "
                                                                 "(frames x frame_budget_ms)")
    max_cv: float = Field(default=0.25, gt=0.0, le=100.0,
        description="coefficient of variation above which a run is unstable")

    def timing_only(self) -> "Criteria":
        """The rule's timing part alone (p99, underruns, memory): no length and no certification, e.g. to judge a
        short capacity probe or a confirmation whose certification is reported beside it. Certification switched
        off whatever the burst length: a target of (almost) 100% over blocks of one frame."""
        return self.model_copy(update={"min_frames": 1, "min_seconds": 0.0, "late_frame_target": 1 - 1e-9,
                                       "burst_frames": 1})

    def deadline_ms(self, budget_ms: float) -> float:
        """A frame is late when its step exceeds this: the budget less the headroom. One definition for the
        p99 rule, the late-frame bound and the report."""
        return (1.0 - self.headroom) * budget_ms

    def buffer_ms(self, budget_ms: float) -> float:
        return budget_ms if self.jitter_buffer_ms is None else self.jitter_buffer_ms


class EndpointBlock(_Strict):
    """`endpoint:` a served model measured as its callers get it (harness endpoint), after the in-process runs, into
    the same folder (endpoint.json) and report. Which server: `url` (already running), `start` (your own command,
    `{port}` replaced; with `url`), else the real server `harness serve` starts with the scenario's preset and
    weights (`server: moshi` PyPI moshi's, `personaplex` NVIDIA's fork from `python:`)."""

    server: Literal["moshi", "personaplex"] = Field(default="moshi", description="the server harness serve starts")
    python: Optional[str] = Field(default=None, min_length=1, description="interpreter of the server's environment "
                                                                          "(NVIDIA's fork); default: the scenario's")
    url: Optional[str] = Field(default=None, pattern=r"^wss?://", description="ws:// or wss:// of a running server")
    start: Optional[str] = Field(default=None, min_length=1, description="your own server command ({port} replaced)")
    device: Optional[Literal["cpu", "cuda"]] = Field(default=None, description="harness serve's device; default: "
                                                                               "cuda where this machine has one")
    sessions: int = Field(default=1, ge=1, le=256, description="callers sharing one start (closed loop)")
    seconds: float = Field(default=10.0, gt=0.0, le=3600.0, description="seconds each caller streams")
    arrival_rate: Optional[float] = Field(default=None, gt=0.0, le=1000.0, description="open loop: calls per second")
    calls: Optional[int] = Field(default=None, ge=1, le=10_000, validate_default=True,
                                 description="open loop: how many calls")
    search: Optional[int] = Field(default=None, ge=1, le=256, description="largest sessions meeting the SLO, up to this")
    capacity_servers: Optional[int] = Field(default=None, ge=1, le=64,
                                            description="largest number of server processes (one call each)")
    voice_prompt: Optional[str] = Field(default=None, description="PersonaPlex: a file name in its voice folder")
    text_prompt: Optional[str] = Field(default=None, description="PersonaPlex: the persona text (may be empty)")
    voice_frames: int = Field(default=50, ge=6, le=10_000, description="harness serve's synthetic voice prompt")
    slo: Slo = Field(default_factory=Slo, description="what every caller must get (harness.records.endpoint.Slo)")
    ready_timeout_s: float = Field(default=900.0, gt=0.0, le=MAX_TIMEOUT_S, description="until the server listens")
    drain_s: float = Field(default=2.0, ge=0.0, le=3600.0, description="listen this long for audio still owed")

    @field_validator("start")
    @classmethod
    def _start_needs_url(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is not None and info.data.get("url") is None:
            raise ValueError("start needs the url the command will listen on (url: ws://127.0.0.1:PORT)")
        return value

    @field_validator("calls")
    @classmethod
    def _open_loop_pair(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        if (value is None) != (info.data.get("arrival_rate") is None):
            raise ValueError("the open loop needs both arrival_rate and calls")
        return value

    @property
    def serves(self) -> bool:
        """True: the harness starts the real server with the scenario's model (harness serve's code)."""
        return self.url is None


def _parse_duration(value: Any) -> Any:
    """'30m', '90s', '1.5h' or a number of seconds."""
    if isinstance(value, str):
        text = value.strip().lower()
        units = {"s": 1.0, "m": 60.0, "h": 3600.0}
        if text and text[-1] in units:
            try:
                return float(text[:-1]) * units[text[-1]]
            except ValueError:
                raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 30m, 1h)") from None
    return value


Duration = Annotated[float, BeforeValidator(_parse_duration)]


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=80, pattern=NAME_PATTERN)
    description: str = ""
    preset: str
    weights: str = "synthetic"
    input: str = Field(default="synthetic", min_length=1,
                       description="the microphone: 'synthetic' (a seeded speech-like signal) or a .wav (resampled "
                                   "to 24 kHz in the worker); every run, reference and candidate, hears the same")
    frames: Optional[int] = Field(default=None, ge=1, le=1_000_000,
                                  description="measured frames; unset: what certifies the criteria with none late "
                                              "(4606 for 1% at 99% in bursts of 10 frames)")
    warmup_frames: int = Field(default=10, ge=MIN_WARMUP_FRAMES, le=100_000)
    frame_budget_ms: float = Field(default=80.0, gt=0.0, le=10_000.0)
    batch_size: int = Field(default=1, ge=1, le=256)
    repeat: int = Field(default=1, ge=1, le=50, description="worker processes per run: noise between processes "
                                                            "is measured (compare uses it), not assumed")
    timeout_s: Optional[float] = Field(
        default=None, gt=0.0, le=MAX_TIMEOUT_S,
        description="per-run limit; unset: 900 s, raised to 600 s plus twice the audio the run measures, so that a "
                    "real-time run of the default length can finish")
    torch_threads: Optional[int] = Field(default=None, ge=1, le=1024)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    host_memory_limit_gib: Optional[float] = Field(
        default=None, gt=0, le=65_536,
            description="cap each worker's data memory (RLIMIT_DATA), e.g. to rehearse a smaller host")
    target: Optional[Target] = None
    pace: Pace = Pace.fast
    duration: Optional[Duration] = Field(default=None, gt=0, le=86_400, description="soak: measure this long instead of "
                                                                                     "`frames` (at most a day)")
    confirm_frames: Optional[int] = Field(
        default=None, ge=0, le=1_000_000,
        description="a GO found at pace: fast is confirmed by running the recommended configuration again at pace: "
                    "realtime for this many frames (unset: the criteria's min_frames and min_seconds of audio; 0: no "
                    "confirmation, and the verdict says the GO was not confirmed)")
    screen_frames: Optional[int] = Field(
        default=None, ge=0, le=1_000_000,
        description="measure every configuration this many frames first, then only the best of each frame (and any "
                    "within noise of it) to the certifying length (unset: 600; 0: measure every configuration to the "
                    "certifying length). Only when `frames`/`duration` are unset, `repeat` is 1 and >= 2 runs screen")
    certify: CertifyScope = Field(
        default=CertifyScope.decision,
        description="after the screen, certify what decides: the best of the frame the verdict recommends first "
                    "(its server's order; a server without kernels for this GPU last), then the next frame only if "
                    "none of it certifies (`decision`); or the best of every frame (`every-frame`: each other "
                    "frame's best costs one more worker start and its certifying frames)")
    telemetry_hz: float = Field(default=10.0, ge=0.0, le=100.0, description="0 turns the sampler off")
    criteria: Criteria = Field(default_factory=Criteria)
    fidelity: FidelityCriteria = Field(default_factory=FidelityCriteria,
                                       description="what a configuration's output must keep of the bf16 reference's")
    persona: Annotated[Union[Persona, bool, None], BeforeValidator(_parse_switch)] = Field(
        default=None, description="the persona prefill; unset: the default persona for PersonaPlex presets and none "
                                  "for Moshi presets; off: no prefill")
    latency: Latency = Field(default_factory=Latency)
    python: Optional[str] = Field(default=None, min_length=1, description="run every worker with this interpreter "
                                                                          "(a user's environment); runs may override")
    defaults: RunDefaults = Field(default_factory=RunDefaults)
    matrix: Optional[Matrix] = None
    runs: list[RunSpec] = Field(default_factory=list)
    endpoint: Optional[EndpointBlock] = Field(default=None, description="also measure the served model as its "
                                                                         "callers get it (after the runs)")

    @field_validator("endpoint")
    @classmethod
    def _fork_needs_python(cls, value: Optional[EndpointBlock], info: ValidationInfo) -> Optional[EndpointBlock]:
        if (value is not None and value.serves and value.server == "personaplex" and value.python is None
                and info.data.get("python") is None):
            raise ValueError("server personaplex needs python: the interpreter of an environment with NVIDIA's "
                             "moshi-personaplex installed (endpoint.python or the scenario's python)")
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; known presets: {', '.join(sorted(PRESETS))}")
        return value

    @field_validator("weights")
    @classmethod
    def _weights_form(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("weights must be 'synthetic', hf://OWNER/REPO (the local Hugging Face cache) or a path to "
                             "a local model.safetensors")
        return value

    @property
    def effective_persona(self) -> Optional[Persona]:
        if self.persona is False:
            return None
        if isinstance(self.persona, Persona):
            return self.persona
        if self.persona is True or PRESETS[self.preset].family == "personaplex":
            return Persona()
        return None

    def serving_for(self, cfg: dict[str, Any]) -> Serving:
        """A run's frame when it names none: the server that would deploy it (records.config.deploying_serving)."""
        family = PRESETS[self.preset].family if self.preset in PRESETS else "moshi"
        return deploying_serving(family, DType(cfg["dtype"]), Quantize(cfg["quantize"]), Offload(cfg["offload"]))

    @property
    def uses_synthetic_weights(self) -> bool:
        return self.weights == "synthetic"

    @property
    def host_memory_limit_bytes(self) -> Optional[int]:
        return int(self.host_memory_limit_gib * 2**30) if self.host_memory_limit_gib else None

    @property
    def measured_frames(self) -> Optional[int]:
        """`frames`, or as many frames as `duration` holds (a soak); None when neither is given: then the criteria
        decide (what a clean run needs to be certified, harness.session.runner.frames_to_measure)."""
        if self.duration is not None:
            return max(1, math.ceil(self.duration * 1000.0 / self.frame_budget_ms))
        return self.frames

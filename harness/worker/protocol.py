"""The worker's contract with the parent: stdlib dataclasses, plain JSON (see harness.records.wire)."""

from harness.records.wire import (
    ArchitectureFacts,
    BenchJob,
    BenchReply,
    BlockFacts,
    EngineInfo,
    FrameSamples,
    GpuInfo,
    KVFacts,
    MemoryReading,
    ProbeCheck,
    ProbeJob,
    ProbeReply,
    ProgressEvent,
    TelemetrySeries,
    TorchFacts,
    WorkerError,
    WorkerRun,
    job_from_json,
    to_json,
)

__all__ = ["ArchitectureFacts", "BenchJob", "BenchReply", "BlockFacts", "EngineInfo", "FrameSamples", "GpuInfo",
           "KVFacts", "MemoryReading", "ProbeCheck", "ProbeJob", "ProbeReply", "ProgressEvent", "TelemetrySeries",
           "TorchFacts", "WorkerError", "WorkerRun", "job_from_json", "to_json"]

"""harness: hardware diagnostics and benchmarking for NVIDIA PersonaPlex (Kyutai Moshi architecture)."""

__version__ = "0.1.0"

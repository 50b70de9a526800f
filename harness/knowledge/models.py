"""The few model sizes a remedy quotes (the planner computes exact figures from the architecture)."""

PERSONAPLEX_PARAMETERS = 8.37e9  # dep_q=16 LM, counted from moshi's _lm_kwargs
GIB = 2**30
# besides the LM weights, a personaplex-7b run holds ~3.3 GiB on the GPU: temporal KV cache (1.46 GiB in bf16),
# Mimi (0.36), activations and the CUDA context; the planner's figure for bf16 (18.9 GiB) less the weights
RUNTIME_OVERHEAD_GIB = 3.3


def weights_gib(bytes_per_parameter: float) -> float:
    return PERSONAPLEX_PARAMETERS * bytes_per_parameter / GIB


def needs_gib(bytes_per_parameter: float) -> float:
    """GPU memory a whole personaplex-7b run needs with weights of this size (no offload)."""
    return weights_gib(bytes_per_parameter) + RUNTIME_OVERHEAD_GIB

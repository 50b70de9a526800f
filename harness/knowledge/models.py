"""The few model sizes a remedy quotes (the planner computes exact figures from the architecture)."""

PERSONAPLEX_PARAMETERS = 8.37e9  # dep_q=16 LM, counted from moshi's _lm_kwargs
GIB = 2**30


def weights_gib(bytes_per_parameter: float) -> float:
    return PERSONAPLEX_PARAMETERS * bytes_per_parameter / GIB

"""engine room (worker side, imports torch): build Mimi + LM for a preset, weights, dtype, int8, offload."""

"""Output fidelity: a configuration's logits against the bf16 eager reference of the same model, weights and input."""

"""stats room: pure functions over lists of samples (no I/O, no torch)."""

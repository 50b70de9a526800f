"""session room: orchestrates one `harness run` (probe, plan, launch, assemble, decide, write)."""

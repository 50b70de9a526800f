"""worker room: one process per run. Only `protocol` may be imported by the parent (no torch there)."""

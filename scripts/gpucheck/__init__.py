"""scripts/gpu-check and scripts/gpu-table: the prepared GPU check (standard library only until the wheels are in)."""

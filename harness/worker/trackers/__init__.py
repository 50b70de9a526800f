"""trackers room (worker side): memory and telemetry readings."""

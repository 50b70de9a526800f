"""verdict room: validity, playback simulation, real-time assessment, recommendation (pure functions)."""

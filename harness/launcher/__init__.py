"""launcher room (parent side, never imports torch): one isolated worker process per run."""

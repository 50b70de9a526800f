"""compare room: regression verdicts between results, history by machine fingerprint, trends."""

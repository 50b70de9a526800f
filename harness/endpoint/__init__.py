"""The served view: callers of a running moshi / PersonaPlex server, the servers harness serve starts, their load."""

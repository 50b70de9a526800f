"""contract room: everything both sides of the process boundary load (standard library only).

The wire records the worker writes and the parent validates, atomic files, the offload rule the planner predicts and
the worker applies, the scaled presets, the environment rules of a measurement, the progress pipe and host facts. The
worker imports only this room (plus torch and moshi); the parent never imports `harness.worker`.
"""

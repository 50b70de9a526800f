"""knowledge room: the facts probe, plan and diagnosis share (a leaf: standard library only).

Which torch wheels carry which GPU architectures, what Triton / torch.compile and bf16 need, which
driver runs which CUDA runtime, and the GPU spec table. Every remedy that names a pip command is
built here, so the probe, the planner and the diagnosis can never give different advice.
"""

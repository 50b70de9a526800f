"""A preset's architecture as counted on the real moshi modules (by a worker), for the planner.

Defined in `harness.records.wire` (the worker writes it, without pydantic); re-exported here by its meaning.
"""

from harness.records.wire import ArchitectureFacts, BlockFacts, KVFacts

__all__ = ["ArchitectureFacts", "BlockFacts", "KVFacts"]

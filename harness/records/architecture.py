"""A preset's architecture as counted on the real moshi modules (by a worker), for the planner.

Defined in `harness.contract.wire` (the worker writes it, without pydantic); re-exported here by its meaning.
"""

from harness.contract.wire import ArchitectureFacts, BlockFacts, KVFacts

__all__ = ["ArchitectureFacts", "BlockFacts", "KVFacts"]

"""Learned bandit statistics: protobuf state, snapshots to disk, and merging across replicas."""

from fleetroute_router.learning.merge import ReplicaSync, merge_deltas
from fleetroute_router.learning.snapshot import Snapshotter, load, restore_core, save, take
from fleetroute_router.learning.state import from_proto, restore_into, to_proto

__all__ = [
    "ReplicaSync",
    "Snapshotter",
    "from_proto",
    "load",
    "merge_deltas",
    "restore_core",
    "restore_into",
    "save",
    "take",
    "to_proto",
]

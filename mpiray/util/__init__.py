"""mpiray.util: ActorPool, a distributed Queue, a multiprocessing.Pool over tasks,
placement groups, the state API (mpiray.util.state), and the node's IP address."""

from mpiray.api import list_named_actors
from mpiray.util.actor_pool import ActorPool
from mpiray.serialization import deregister_serializer, register_serializer
from mpiray.util.check_serialize import inspect_serializability
from mpiray.util.helpers import as_completed, map_unordered
from mpiray.util.network import get_node_ip_address
from mpiray.util.placement_group import (  # (the function shadows its module, as in Ray)
    PlacementGroup, get_current_placement_group, get_placement_group, placement_group,
    placement_group_table, remove_placement_group,
)



def __getattr__(name):
    """ray.util.state / ray.util.metrics without an import of their own (loaded on first use)."""
    if name in ("state", "metrics", "annotations", "helpers", "queue", "multiprocessing",
                "scheduling_strategies", "accelerators", "actor_pool", "placement_group",
                "serialization", "check_serialize", "collective", "debug", "joblib"):
        import importlib

        return importlib.import_module(f"mpiray.util.{name}")
    raise AttributeError(f"module 'mpiray.util' has no attribute {name!r}")


def get_node_instance_id() -> str:
    """Ray's cloud instance id of this node: none here (not a cloud provider's VM)."""
    return ""


__all__ = ["ActorPool", "PlacementGroup", "as_completed", "deregister_serializer",
           "inspect_serializability", "map_unordered",
           "register_serializer", "get_current_placement_group", "get_node_ip_address",
           "get_node_instance_id",            "get_placement_group", "list_named_actors", "placement_group", "placement_group_table",
           "remove_placement_group"]

"""mpiray.util: ActorPool, a distributed Queue, a multiprocessing.Pool over tasks,
placement groups, and the node's IP address."""

from mpiray.api import list_named_actors
from mpiray.util.actor_pool import ActorPool
from mpiray.util.network import get_node_ip_address
from mpiray.util.placement_group import (  # (the function shadows its module, as in Ray)
    PlacementGroup, get_current_placement_group, get_placement_group, placement_group,
    placement_group_table, remove_placement_group,
)

__all__ = ["ActorPool", "PlacementGroup", "get_current_placement_group", "get_node_ip_address",
           "get_placement_group", "list_named_actors", "placement_group", "placement_group_table",
           "remove_placement_group"]

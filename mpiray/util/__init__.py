"""mpiray.util: ActorPool, a distributed Queue, a multiprocessing.Pool over tasks, and the
node's IP address."""

from mpiray.api import list_named_actors
from mpiray.util.actor_pool import ActorPool
from mpiray.util.network import get_node_ip_address

__all__ = ["ActorPool", "get_node_ip_address", "list_named_actors"]

"""mpiray.util: ActorPool, a distributed Queue, and a multiprocessing.Pool over tasks."""

from mpiray.util.actor_pool import ActorPool

__all__ = ["ActorPool"]

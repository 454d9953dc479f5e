"""ray.util.collective: collective communication among actors (and tasks), through the
node's object store (util/collective/group.py); under MPI, across nodes too."""

from mpiray.util.collective.collective import (
    allgather, allgather_multigpu, allreduce, allreduce_multigpu, barrier, broadcast,
    broadcast_multigpu, create_collective_group, destroy_collective_group,
    get_collective_group_size, get_group_handle, get_rank, gloo_available,
    init_collective_group, is_group_initialized, nccl_available, recv, recv_multigpu,
    reduce, reduce_multigpu, reducescatter, reducescatter_multigpu, send, send_multigpu,
    synchronize,
)
from mpiray.util.collective.types import Backend, ReduceOp

__all__ = [
    "Backend", "ReduceOp", "allgather", "allgather_multigpu", "allreduce",
    "allreduce_multigpu", "barrier", "broadcast", "broadcast_multigpu",
    "create_collective_group", "destroy_collective_group", "get_collective_group_size",
    "get_group_handle", "get_rank", "gloo_available", "init_collective_group",
    "is_group_initialized", "nccl_available", "recv", "recv_multigpu", "reduce",
    "reduce_multigpu", "reducescatter", "reducescatter_multigpu", "send", "send_multigpu",
    "synchronize",
]

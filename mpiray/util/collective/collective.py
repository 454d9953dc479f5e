"""Ray's collective API (ray.util.collective): groups of actors (or tasks) that
allreduce, broadcast, gather, scatter and send tensors among themselves.

    driver: create_collective_group(actors, world_size, ranks)
              └─► "info_<group>" actor (detached): the actors' ids and their ranks
    in an actor: init_collective_group(world_size, rank)          (or, declared above:
                 the first collective call reads its rank from "info_<group>")
              └─► this process's CollectiveGroup (util/collective/group.py)
    allreduce(t) / broadcast(t, src) / ... ──► the group's rounds, t changed in place

The checks and their words are Ray's.
"""

from __future__ import annotations

import os

import numpy as np

import mpiray as ray
from mpiray.util.collective import types
from mpiray.util.collective.group import CollectiveGroup, to_numpy


def nccl_available() -> bool:
    """Whether backend="nccl" may be named: here always (tensors move through the object
    store whatever the backend's name)."""
    return True


def gloo_available() -> bool:
    return True


class GroupManager:
    """This process's groups, by name."""

    def __init__(self):
        self._groups = {}

    def create_collective_group(self, backend, world_size, rank, group_name, gloo_timeout):
        group = CollectiveGroup(world_size, rank, types.Backend(backend), group_name, gloo_timeout)
        self._groups[group_name] = group
        return group

    def is_group_exist(self, group_name) -> bool:
        return group_name in self._groups

    def get_group_by_name(self, group_name):
        return self._groups.get(group_name)

    def destroy_collective_group(self, group_name):
        group = self._groups.pop(group_name, None)
        if group is None:
            return
        group.destroy()
        try:   # (what create_collective_group declared, as Ray's destroy removes it)
            ray.kill(ray.get_actor(_info_name(group_name)))
        except ValueError:
            pass


_group_mgr = GroupManager()


def _info_name(group_name: str) -> str:
    return "info_" + group_name


@ray.remote(num_cpus=0)
class Info:
    """A declared group (create_collective_group): its actors and their ranks."""

    def __init__(self):
        self.info = None

    def set_info(self, ids, world_size, ranks, backend, gloo_timeout):
        self.info = (ids, world_size, ranks, backend, gloo_timeout)

    def get_info(self):
        return self.info


def is_group_initialized(group_name: str = "default") -> bool:
    return _group_mgr.is_group_exist(group_name)


def init_collective_group(world_size: int, rank: int, backend=types.Backend.NCCL,
                          group_name: str = "default", gloo_timeout: int = 30000):
    """This process joins group_name as rank (of world_size): every rank calls it."""
    _check_inside_actor()
    backend = types.Backend(backend)
    if not group_name:
        raise ValueError(f"group_name '{group_name}' needs to be a string.")
    if _group_mgr.is_group_exist(group_name):
        raise RuntimeError("Trying to initialize a group twice.")
    # (Ray asserts these: AssertionError, as there)
    if not world_size > 0:
        raise AssertionError(f"world_size must be greater than 0, got {world_size}")
    if not 0 <= rank < world_size:
        raise AssertionError(f"rank must be in [0, {world_size}), got {rank}")
    _group_mgr.create_collective_group(backend, world_size, rank, group_name, gloo_timeout)


def create_collective_group(actors, world_size: int, ranks, backend=types.Backend.NCCL,
                            group_name: str = "default", gloo_timeout: int = 30000):
    """Declares actors a group (from the driver): each joins at its first collective call."""
    backend = types.Backend(backend)
    try:
        ray.get_actor(_info_name(group_name))
        raise RuntimeError("Trying to initialize a group twice.")
    except ValueError:
        pass
    ranks = list(ranks)
    if len(ranks) != len(actors):
        raise RuntimeError(f"Each actor should correspond to one rank. Got '{len(ranks)}' "
                           f"ranks but '{len(actors)}' actors")
    if set(ranks) != set(range(len(ranks))):
        raise RuntimeError(f"Ranks must be a permutation from 0 to '{len(ranks)}'. Got "
                           f"'{''.join(str(r) for r in ranks)}'.")
    if world_size <= 0:
        raise RuntimeError(f"World size must be greater than zero. Got '{world_size}'.")
    if any(r >= world_size for r in ranks):
        raise RuntimeError("Ranks cannot be greater than world_size.")
    ids = [a._actor_id.hex() for a in actors]
    info = Info.options(name=_info_name(group_name), lifetime="detached").remote()
    ray.get(info.set_info.remote(ids, world_size, ranks, backend, gloo_timeout))


def destroy_collective_group(group_name: str = "default") -> None:
    """This process leaves group_name (the last rank to leave ends it)."""
    _check_inside_actor()
    _group_mgr.destroy_collective_group(group_name)


def get_rank(group_name: str = "default") -> int:
    """This process's rank in group_name; -1 when it is not in it."""
    _check_inside_actor()
    group = _group_mgr.get_group_by_name(group_name)
    return -1 if group is None else group.rank


def get_collective_group_size(group_name: str = "default") -> int:
    """group_name's size; -1 when this process is not in it."""
    _check_inside_actor()
    group = _group_mgr.get_group_by_name(group_name)
    return -1 if group is None else group.world_size


def allreduce(tensor, group_name: str = "default", op=types.ReduceOp.SUM):
    """tensor, on every rank, becomes the reduction (op) of every rank's tensor."""
    _check_single_tensor_input(tensor)
    get_group_handle(group_name).allreduce(tensor, op)


def barrier(group_name: str = "default"):
    """Returns once every rank of the group has called it."""
    get_group_handle(group_name).barrier()


def reduce(tensor, dst_rank: int = 0, group_name: str = "default", op=types.ReduceOp.SUM):
    """dst_rank's tensor becomes the reduction of every rank's; the others' are kept."""
    _check_single_tensor_input(tensor)
    group = get_group_handle(group_name)
    _check_rank_valid(group, dst_rank)
    group.reduce(tensor, dst_rank, op)


def broadcast(tensor, src_rank: int = 0, group_name: str = "default"):
    """Every rank's tensor becomes src_rank's."""
    _check_single_tensor_input(tensor)
    group = get_group_handle(group_name)
    _check_rank_valid(group, src_rank)
    group.broadcast(tensor, src_rank)


def allgather(tensor_list: list, tensor, group_name: str = "default"):
    """tensor_list[i], on every rank, becomes rank i's tensor."""
    _check_single_tensor_input(tensor)
    _check_tensor_list_input(tensor_list)
    group = get_group_handle(group_name)
    if len(tensor_list) != group.world_size:
        raise RuntimeError("The length of the tensor list operands to allgather "
                           "must be equal to world_size.")
    group.allgather(tensor_list, tensor)


def reducescatter(tensor, tensor_list: list, group_name: str = "default", op=types.ReduceOp.SUM):
    """Rank i's tensor becomes the reduction of every rank's tensor_list[i]."""
    _check_single_tensor_input(tensor)
    _check_tensor_list_input(tensor_list)
    group = get_group_handle(group_name)
    if len(tensor_list) != group.world_size:
        raise RuntimeError("The length of the tensor list operands to reducescatter "
                           "must not be equal to world_size.")   # (Ray's words)
    group.reducescatter(tensor, tensor_list, op)


def send(tensor, dst_rank: int, group_name: str = "default"):
    """tensor to dst_rank (which calls recv); returns once dst_rank has it."""
    _peer_group(tensor, dst_rank, group_name).send(tensor, dst_rank)


def recv(tensor, src_rank: int, group_name: str = "default"):
    """tensor becomes what src_rank sends."""
    _peer_group(tensor, src_rank, group_name).recv(tensor, src_rank)


def _peer_group(tensor, peer: int, group_name: str):
    """The group of a send / recv, its arguments checked."""
    _check_single_tensor_input(tensor)
    group = get_group_handle(group_name)
    _check_rank_valid(group, peer)
    if peer == group.rank:
        raise RuntimeError(f"The destination rank '{peer}' is self.")   # (Ray's words, both)
    return group


def _needs_cupy(what, words="Multigpu calls requires NCCL and Cupy."):
    def refuse(*args, **kwargs):
        if not types.cupy_available():
            raise RuntimeError(words)   # (Ray's words)
        raise RuntimeError(f"{what}: mpiray's collectives take one tensor per process, "
                           "not one per GPU of a process")
    refuse.__name__ = what
    return refuse


# Ray's calls for a process holding several GPUs (a tensor on each)
allreduce_multigpu = _needs_cupy("allreduce_multigpu")
reduce_multigpu = _needs_cupy("reduce_multigpu")
broadcast_multigpu = _needs_cupy("broadcast_multigpu")
allgather_multigpu = _needs_cupy("allgather_multigpu")
reducescatter_multigpu = _needs_cupy("reducescatter_multigpu")
send_multigpu = _needs_cupy("send_multigpu", "send_multigpu call requires NCCL.")
recv_multigpu = _needs_cupy("recv_multigpu", "recv_multigpu call requires NCCL.")
synchronize = _needs_cupy("synchronize", "synchronize call requires CUDA and NCCL.")


def get_group_handle(group_name: str = "default"):
    """This process's group group_name; joined now if the driver declared it
    (create_collective_group) with this actor in it."""
    _check_inside_actor()
    group = _group_mgr.get_group_by_name(group_name)
    if group is not None:
        return group
    try:
        info = ray.get_actor(_info_name(group_name))
    except ValueError:
        info = None
    if info is not None:
        ids, world_size, ranks, backend, timeout = ray.get(info.get_info.remote())
        me = ray.get_runtime_context().get_actor_id()
        if me in ids:
            return _group_mgr.create_collective_group(backend, world_size, ranks[ids.index(me)],
                                                      group_name, timeout)
    if os.environ.get("collective_group_name") == group_name:   # (Ray's actor options path)
        return _group_mgr.create_collective_group(
            os.environ["collective_backend"], int(os.environ["collective_world_size"]),
            int(os.environ["collective_rank"]), group_name,
            int(os.environ.get("collective_gloo_timeout", 30000)))
    raise RuntimeError(f"The collective group '{group_name}' is not initialized in the process.")


def _check_inside_actor():
    from mpiray._private.worker import global_worker

    if global_worker.mode != ray.WORKER_MODE:
        raise RuntimeError("The collective APIs shall be only used inside a Ray actor or task.")


def _check_single_tensor_input(tensor):
    if isinstance(tensor, np.ndarray) or type(tensor).__module__.split(".")[0] in ("torch", "cupy"):
        return
    raise RuntimeError(f"Unrecognized tensor type '{type(tensor)}'. Supported types are: "
                       "np.ndarray, torch.Tensor, cupy.ndarray.")


def _check_tensor_list_input(tensor_list):
    if not isinstance(tensor_list, list):
        raise RuntimeError(f"The input must be a list of tensors. Got '{type(tensor_list)}'.")
    if not tensor_list:
        raise RuntimeError("Got an empty list of tensors.")
    for tensor in tensor_list:
        _check_single_tensor_input(tensor)


def _check_rank_valid(group, rank: int):
    if rank < 0:
        raise ValueError(f"rank '{rank}' is negative.")
    if rank >= group.world_size:
        raise ValueError(f"rank '{rank}' must be less than world size '{group.world_size}'")

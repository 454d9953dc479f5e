"""One process's member of a collective group: tensors meet through the object store.

    rank r: allreduce(t) ──put(t)──► ref_r ──meet(key, r, [ref_r])──► exchange actor
            (a small t, ≤ 64 KiB, goes in the call itself)
                                      (an async actor per group, named "collective:<group>",
                                       num_cpus=0: holds each round's refs until every
                                       rank has come, then answers all of them at once)
    rank r ◄── {rank: [ref]} ◄─────────────────────────────────────────┘
           ──get(every ref)──► arrays (zero-copy views of the node's store; pulled from
                               other nodes under MPI) ──reduce / copy──► t, in place

A large allreduce among 3 ranks or more goes in two rounds: each rank reduces its slice of every rank's array,
then every rank gathers the reduced slices. Every rank calls the group's collectives in the same order (as with NCCL or gloo), so a
counter names each round; a rank that times out (gloo) takes its item back; a send and its recv meet in a round of their own, numbered
per (src, dst) pair. Ray's backends (gloo, nccl) are names here: all move data this way,
a GPU tensor staged through host memory.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections import defaultdict

import numpy as np

import mpiray as ray
from mpiray.exceptions import GetTimeoutError, RayActorError
from mpiray.util.collective.types import Backend, ReduceOp

_REDUCERS = {ReduceOp.SUM: np.add, ReduceOp.PRODUCT: np.multiply,
             ReduceOp.MIN: np.minimum, ReduceOp.MAX: np.maximum}


class _Round:
    def __init__(self, parties):
        self.parties, self.items, self.served = parties, {}, 0
        self.complete = asyncio.Event()


@ray.remote(num_cpus=0)
class CollectiveExchange:
    """Where a group's ranks meet: one per group, made by whichever rank comes first."""

    def __init__(self, world_size):
        self.world_size = world_size
        self.rounds = {}
        self.members = 0   # ranks joined and not yet left, over every forming of the group

    async def meet(self, key, rank, parties, item):
        """item, from rank, for round key of `parties` ranks; once every one has come,
        each gets all their items ({rank: item})."""
        found = self.rounds.get(key)
        if found is None:
            found = self.rounds[key] = _Round(parties)
        if rank in found.items:
            raise RuntimeError(f"rank {rank} came twice to collective round {key}")
        found.items[rank] = item
        if len(found.items) == parties:
            found.complete.set()
        else:
            try:
                await found.complete.wait()
            except asyncio.CancelledError:   # (the rank timed out: its item goes with it)
                if not found.complete.is_set():
                    del found.items[rank]
                    if not found.items:
                        del self.rounds[key]
                raise
        found.served += 1
        if found.served == parties:
            del self.rounds[key]
        return found.items

    def join(self, rank) -> None:
        self.members += 1

    def leave(self, rank) -> bool:
        """True for the last rank to leave: the group is over. Counted, not a set of ranks:
        a rank that destroyed the group and formed it again under its name holds it still
        when a slow rank leaves the earlier forming."""
        self.members -= 1
        return self.members <= 0


def exchange_name(group_name: str) -> str:
    return f"collective:{group_name}"


# The exchange of each group this process joined, held until the last rank leaves it: a
# handle found by name does not keep an actor alive (as in Ray: a weak one), so the rank
# that made it keeps the handle it made while a slower rank, or this one in the group
# formed again, uses it.
_holding = {}


def _join_exchange(group_name: str, world_size: int, rank: int):
    """The group's exchange, joined: made by the first rank to come (owned by it, so that
    it ends with that rank's process and a group formed again under the name after its
    ranks died starts afresh), or found by the name."""
    for _ in range(3):
        exchange = CollectiveExchange.options(
            name=exchange_name(group_name), get_if_exists=True).remote(world_size)
        try:
            ray.get(exchange.join.remote(rank))
        except RayActorError:
            continue   # (found as the last rank of an earlier forming ended it: make anew)
        held = _holding.get(group_name)
        if held is None or held._actor_id != exchange._actor_id:
            _holding[group_name] = held = exchange
        return held
    raise RuntimeError(f"collective group '{group_name}': could not reach its exchange actor")


class CollectiveGroup:
    def __init__(self, world_size: int, rank: int, backend: str, group_name: str, timeout_ms: int):
        self.world_size, self.rank, self._backend = world_size, rank, backend
        self.group_name, self.timeout_ms = group_name, timeout_ms
        self.exchange = _join_exchange(group_name, world_size, rank)
        self.rounds = 0
        self.broken = None   # (why no round can be held any more)
        self.pairs = defaultdict(int)   # (src, dst) -> sends between them so far

    # ------------------------------------------------------------ the rounds
    def _meet(self, what, item, key=None, parties=None):
        if self.broken:
            raise RuntimeError(f"{what}: collective group '{self.group_name}' cannot be used "
                               f"after {self.broken}; destroy it and init it again (every rank)")
        if key is None:
            self.rounds += 1
            key = ("round", self.rounds)
        ref = self.exchange.meet.remote(key, self.rank, parties or self.world_size, item)
        timeout = None   # (NCCL's collectives wait as long as it takes; gloo's time out)
        if self._backend in (Backend.GLOO, Backend.TORCH_GLOO) and self.timeout_ms and self.timeout_ms > 0:
            timeout = self.timeout_ms / 1000
        try:
            return ray.get(ref, timeout=timeout)
        except GetTimeoutError:
            ray.cancel(ref)
            # (as a gloo context after a timeout: the ranks no longer agree on which round
            # is which, so a later call would meet another rank's different one)
            self.broken = f"its {what} timed out"
            raise RuntimeError(
                f"{what} in collective group '{self.group_name}' (rank {self.rank} of "
                f"{self.world_size}) timed out after {self.timeout_ms} ms: not every rank "
                "called it") from None

    def _share(self, what, array):
        """Every rank's array, by rank (this one's own as it is)."""
        items = self._meet(what, _pack(array))
        got = _unpack(items, [r for r in range(self.world_size) if r != self.rank])
        got[self.rank] = array
        return [got[r] for r in range(self.world_size)]

    # ------------------------------------------------------------ collectives
    def allreduce(self, tensor, op):
        mine = to_numpy(tensor)
        arrays = self._share("allreduce", mine)
        if mine.nbytes < SPLIT_BYTES or self.world_size < 3:
            write_back(tensor, _reduce("allreduce", arrays, mine, op))
            return
        # Large, 3+ ranks: each reduces one slice of every rank's array, then all gather
        # the slices (each element reduced once in the group, not once per rank).
        for rank, array in enumerate(arrays):
            _like("allreduce", array, mine, rank)
        flat = [a.reshape(-1) for a in arrays]
        bounds = np.linspace(0, mine.size, self.world_size + 1).astype(int)
        lo, hi = bounds[self.rank], bounds[self.rank + 1]
        part = _reduce("allreduce", [a[lo:hi] for a in flat], flat[self.rank][lo:hi], op)
        out = np.empty(mine.size, mine.dtype)
        for rank, piece in enumerate(self._share("allreduce", part)):
            out[bounds[rank]:bounds[rank + 1]] = piece
        write_back(tensor, out.reshape(mine.shape))

    def reduce(self, tensor, dst_rank, op):
        mine = to_numpy(tensor)
        items = self._meet("reduce", _pack(mine) if self.rank != dst_rank else None)
        if self.rank != dst_rank:
            return
        got = _unpack(items, [r for r in range(self.world_size) if r != self.rank])
        got[self.rank] = mine
        write_back(tensor, _reduce("reduce", [got[r] for r in range(self.world_size)], mine, op))

    def broadcast(self, tensor, src_rank):
        mine = to_numpy(tensor) if self.rank == src_rank else None
        items = self._meet("broadcast", _pack(mine) if self.rank == src_rank else None)
        if self.rank != src_rank:
            write_back(tensor, _like("broadcast", _unpack(items, [src_rank])[src_rank], tensor))

    def allgather(self, tensor_list, tensor):
        arrays = self._share("allgather", to_numpy(tensor))
        for out, array in zip(tensor_list, arrays):
            write_back(out, _like("allgather", array, out))

    def reducescatter(self, tensor, tensor_list, op):
        parts = [to_numpy(t) for t in tensor_list]
        items = self._meet("reducescatter", _pack(parts, sum(p.nbytes for p in parts)))
        got = _unpack(items, [r for r in range(self.world_size) if r != self.rank])
        mine = parts[self.rank]
        arrays = [mine if r == self.rank else got[r][self.rank] for r in range(self.world_size)]
        write_back(tensor, _reduce("reducescatter", arrays, to_numpy(tensor), op))

    def barrier(self):
        self._meet("barrier", None)

    def send(self, tensor, dst_rank):
        pair = (self.rank, dst_rank)
        self.pairs[pair] += 1
        # (returns once the receiver has the tensor's ref, as a synchronous send does)
        self._meet("send", _pack(to_numpy(tensor)), key=("p2p", pair, self.pairs[pair]),
                   parties=2)

    def recv(self, tensor, src_rank):
        pair = (src_rank, self.rank)
        self.pairs[pair] += 1
        items = self._meet("recv", None, key=("p2p", pair, self.pairs[pair]), parties=2)
        write_back(tensor, _like("recv", _unpack(items, [src_rank])[src_rank], tensor))

    def backend(self) -> str:
        return self._backend

    def destroy_group(self):
        self.destroy()

    def destroy(self):
        try:
            if ray.get(self.exchange.leave.remote(self.rank)):
                ray.kill(self.exchange)
                _holding.pop(self.group_name, None)
        except RayActorError:
            _holding.pop(self.group_name, None)   # (gone already)


# Arrays up to this size travel in the exchange's call itself; larger ones as a ref to
# the store (read in place by every rank of the node, pulled once by another node's).
INLINE_BYTES = 64 << 10
# An allreduce of arrays this large, among 3 ranks or more, reduces a slice per rank,
# then gathers the slices.
SPLIT_BYTES = 1 << 20


def _pack(value, nbytes=None):
    nbytes = value.nbytes if nbytes is None else nbytes
    return ("value", value) if nbytes <= INLINE_BYTES else ("ref", [ray.put(value)])


def _unpack(items, ranks) -> dict:
    """{rank: its value} for ranks, what came by ref fetched in one get."""
    by_ref = [r for r in ranks if items[r][0] == "ref"]
    got = dict(zip(by_ref, ray.get([items[r][1][0] for r in by_ref])))
    got.update((r, items[r][1]) for r in ranks if items[r][0] == "value")
    return got


def _reduce(what, arrays, mine, op):
    try:
        reducer = _REDUCERS[op]
    except (KeyError, TypeError):
        raise ValueError(f"{what}: unknown reduce op {op!r} (one of {list(_REDUCERS)})") from None
    for rank, array in enumerate(arrays):
        _like(what, array, mine, rank)
    if len(arrays) == 1:
        return np.array(arrays[0], copy=True)
    out = reducer(arrays[0], arrays[1])   # (in rank order: every rank gets the same bits)
    for array in arrays[2:]:
        reducer(out, array, out=out)
    return out


def _like(what, array, tensor, rank=None):
    """array, checked to have tensor's shape and dtype."""
    mine = to_numpy(tensor)
    if array.shape != mine.shape or array.dtype != mine.dtype:
        who = f"rank {rank}'s" if rank is not None else "the received"
        raise RuntimeError(f"{what}: {who} tensor is {array.dtype}{list(array.shape)}, "
                           f"this rank's is {mine.dtype}{list(mine.shape)}")
    return array


def _writable_view(tensor: np.ndarray) -> np.ndarray:
    """A writable view of a read-only array's memory: an argument or a get's zero-copy view
    of the store, which Ray's backends write into as well (its memory is mapped writable);
    an object read from a spill file is mapped read-only, and refused."""
    bounds = getattr(getattr(np.lib, "array_utils", None), "byte_bounds", None) or np.byte_bounds
    lo, hi = bounds(tensor)   # (numpy 2 moved it)
    if not _mapped_writable(lo, hi):
        raise RuntimeError(
            f"the tensor ({tensor.dtype}{list(tensor.shape)}) is read-only memory (an object "
            "read from its spill file): pass a writable copy, np.array(tensor)")
    memory = (ctypes.c_char * max(hi - lo, 1)).from_address(lo)
    start = tensor.__array_interface__["data"][0]
    return np.ndarray(tensor.shape, tensor.dtype, buffer=memory, offset=start - lo,
                      strides=tensor.strides)


def _mapped_writable(lo: int, hi: int) -> bool:
    """Whether [lo, hi) lies in mappings of this process that may be written."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split(None, 2)[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if start <= lo < end:
                if "w" not in perms:
                    return False
                if hi <= end:
                    return True
                lo = end   # (continues in the next mapping)
    return False


def to_numpy(tensor) -> np.ndarray:
    """A host view (numpy) or copy (a torch or cupy tensor on a GPU) of tensor."""
    if isinstance(tensor, np.ndarray):
        return tensor
    module = type(tensor).__module__.split(".")[0]
    if module == "torch":
        return tensor.detach().cpu().numpy()
    if module == "cupy":
        return tensor.get()
    raise RuntimeError(f"Unrecognized tensor type '{type(tensor)}'. Supported types are: "
                       "np.ndarray, torch.Tensor, cupy.ndarray.")


def write_back(tensor, array: np.ndarray):
    """tensor's contents replaced by array's, in place (where the caller holds it)."""
    if isinstance(tensor, np.ndarray):
        np.copyto(tensor if tensor.flags.writeable else _writable_view(tensor), array)
        return
    module = type(tensor).__module__.split(".")[0]
    if module == "torch":
        import torch

        with torch.no_grad():
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    else:
        tensor.set(np.ascontiguousarray(array))

"""ray.util.collective: groups of actors reducing, gathering and sending numpy arrays in
place, through the node's store; Ray's checks and words."""

import numpy as np
import pytest


def _worker_class(ray):
    from mpiray.util import collective as col

    @ray.remote(num_cpus=0)
    class Member:
        def __init__(self, rank):
            self.rank = rank

        def join(self, world, group="g", timeout_ms=30000):
            col.init_collective_group(world, self.rank, "gloo", group, gloo_timeout=timeout_ms)
            return col.get_rank(group), col.get_collective_group_size(group), col.is_group_initialized(group)

        def collectives(self, group="g"):
            r, out = self.rank, {}
            t = np.full(4, r + 1.0)
            col.allreduce(t, group)
            out["sum"] = t.tolist()
            m = np.array([r, -r], dtype=np.int64)
            col.allreduce(m, group, col.ReduceOp.MAX)
            out["max"] = m.tolist()
            p = np.array([r + 1.0])
            col.allreduce(p, group, col.ReduceOp.PRODUCT)
            out["prod"] = p.tolist()
            b = np.full(3, float(r))
            col.broadcast(b, 1, group)
            out["bcast"] = b.tolist()
            parts = [np.zeros(2, dtype=np.float32) for _ in range(3)]
            col.allgather(parts, np.full(2, r * 10, dtype=np.float32), group)
            out["gather"] = [x.tolist() for x in parts]
            mine = np.zeros(2)
            col.reducescatter(mine, [np.full(2, float(i + r)) for i in range(3)], group)
            out["scatter"] = mine.tolist()
            red = np.full(2, r + 1.0)
            col.reduce(red, 2, group, col.ReduceOp.MIN)
            out["reduce"] = red.tolist()
            col.barrier(group)
            return out

        def send_to(self, dst, values, group="g"):
            col.send(np.array(values, dtype=np.float64), dst, group)

        def recv_from(self, src, n, group="g"):
            got = np.zeros(n)
            col.recv(got, src, group)
            return got.tolist()

        def big_sum(self, n, group="g"):
            t = np.arange(n, dtype=np.float64) * (self.rank + 1)
            col.allreduce(t, group)
            return float(t.sum()), float(t[-1])

        def call(self, name, *args, **kwargs):
            try:
                getattr(col, name)(*args, **kwargs)
                return None
            except Exception as exc:  # noqa: BLE001 - the test reads the error
                return f"{type(exc).__name__}: {exc}"

        def leave(self, group="g"):
            col.destroy_collective_group(group)
            return col.is_group_initialized(group), col.get_rank(group)

    return Member


def test_every_collective_gives_every_rank_the_right_values(ray):
    Member = _worker_class(ray)
    members = [Member.remote(r) for r in range(3)]
    assert ray.get([m.join.remote(3) for m in members]) == [(r, 3, True) for r in range(3)]
    results = ray.get([m.collectives.remote() for m in members], timeout=60)
    for r, out in enumerate(results):
        assert out["sum"] == [6.0] * 4
        assert out["max"] == [2, 0]
        assert out["prod"] == [6.0]
        assert out["bcast"] == [1.0] * 3
        assert out["gather"] == [[0.0, 0.0], [10.0, 10.0], [20.0, 20.0]]
        assert out["scatter"] == [3.0 * r + 3] * 2           # sum over ranks s of (r + s)
        assert out["reduce"] == ([1.0, 1.0] if r == 2 else [r + 1.0] * 2)   # dst's only
    # sends pair up in order, per (src, dst)
    sends = [members[0].send_to.remote(2, [1, 2]), members[0].send_to.remote(2, [3, 4])]
    assert ray.get([members[2].recv_from.remote(0, 2), members[2].recv_from.remote(0, 2)],
                   timeout=60) == [[1.0, 2.0], [3.0, 4.0]]
    ray.get(sends)
    n = 1 << 20   # (8 MiB each: zero-copy views of the store)
    total = n * (n - 1) / 2 * 6
    assert ray.get([m.big_sum.remote(n) for m in members], timeout=60) == [(total, (n - 1) * 6.0)] * 3
    assert ray.get([m.leave.remote() for m in members]) == [(False, -1)] * 3
    # the name is free again once every rank has left
    assert ray.get([m.join.remote(3) for m in members]) == [(r, 3, True) for r in range(3)]
    assert [o["sum"] for o in ray.get([m.collectives.remote() for m in members])] == [[6.0] * 4] * 3
    ray.get([m.leave.remote() for m in members])
    assert "collective:g" not in ray.util.list_named_actors()


def test_a_group_declared_by_the_driver_is_joined_at_the_first_call(ray):
    from mpiray.util import collective as col

    @ray.remote
    class Holder:
        def __init__(self, v):
            self.v = np.full(2, float(v))

        def reduce(self):
            col.allreduce(self.v, "declared")
            return self.v.tolist(), col.get_rank("declared")

    holders = [Holder.remote(v) for v in (5, 7)]
    col.create_collective_group(holders, 2, [1, 0], backend="gloo", group_name="declared")
    assert ray.get([h.reduce.remote() for h in holders], timeout=60) == [([12.0, 12.0], 1),
                                                                          ([12.0, 12.0], 0)]
    with pytest.raises(RuntimeError, match="Trying to initialize a group twice"):
        col.create_collective_group(holders, 2, [0, 1], group_name="declared")
    with pytest.raises(RuntimeError, match="Ranks must be a permutation"):
        col.create_collective_group(holders, 2, [0, 2], group_name="other")
    with pytest.raises(RuntimeError, match="Each actor should correspond to one rank"):
        col.create_collective_group(holders, 2, [0], group_name="other")
    ray.kill(ray.get_actor("info_declared"))


def test_bad_calls_are_refused_with_rays_words(ray):
    from mpiray.util import collective as col

    with pytest.raises(RuntimeError, match="only used inside a Ray actor or task"):
        col.allreduce(np.zeros(1))
    with pytest.raises(ValueError, match="Unrecognized backend: 'tcp'"):
        col.Backend("tcp")
    with pytest.raises(RuntimeError, match="Ray does not support MPI backend"):
        col.Backend("mpi")
    Member = _worker_class(ray)
    members = [Member.remote(r) for r in range(2)]
    ray.get([m.join.remote(2, "e") for m in members])
    one = members[0]
    assert "Unrecognized tensor type '<class 'list'>'" in ray.get(one.call.remote("allreduce", [1.0], "e"))
    assert ray.get(one.call.remote("init_collective_group", 2, 0, "gloo", "e")) == \
        "RuntimeError: Trying to initialize a group twice."
    assert ray.get(one.call.remote("broadcast", np.zeros(1), 5, "e")) == \
        "ValueError: rank '5' must be less than world size '2'"
    assert ray.get(one.call.remote("send", np.zeros(1), 0, "e")) == \
        "RuntimeError: The destination rank '0' is self."
    assert ray.get(one.call.remote("allreduce", np.zeros(1), "nope")) == \
        "RuntimeError: The collective group 'nope' is not initialized in the process."
    assert "must be equal to world_size" in ray.get(one.call.remote("allgather", [np.zeros(1)], np.zeros(1), "e"))
    # shapes that differ between ranks: each rank is told
    a = one.call.remote("allreduce", np.zeros(3), "e")
    b = members[1].call.remote("allreduce", np.zeros(2), "e")
    assert "rank 1's tensor is float64[2], this rank's is float64[3]" in ray.get(a)
    assert "rank 0's tensor is float64[3], this rank's is float64[2]" in ray.get(b)
    ray.get([m.leave.remote("e") for m in members])


def test_a_rank_that_never_comes_times_the_others_out(ray):
    Member = _worker_class(ray)
    members = [Member.remote(r) for r in range(2)]
    ray.get([m.join.remote(2, "t", 300) for m in members])
    error = ray.get(members[0].call.remote("barrier", "t"), timeout=30)
    assert error == ("RuntimeError: barrier in collective group 't' (rank 0 of 2) timed out "
                     "after 300 ms: not every rank called it")
    # The ranks no longer agree on which round is which: the group says so, not a hang or
    # another rank's round met by mistake.
    error = ray.get(members[0].call.remote("barrier", "t"), timeout=30)
    assert error == ("RuntimeError: barrier: collective group 't' cannot be used after its "
                     "barrier timed out; destroy it and init it again (every rank)")
    ray.get([m.leave.remote("t") for m in members])
    ray.get([m.join.remote(2, "t", 30000) for m in members])
    assert ray.get([m.big_sum.remote(3, "t") for m in members], timeout=60) == [(9.0, 6.0)] * 2


def test_a_group_formed_again_under_its_name_outlives_a_slow_ranks_leave(ray):
    Member = _worker_class(ray)
    members = [Member.remote(r) for r in range(2)]
    ray.get([m.join.remote(2, "again") for m in members])
    ray.get(members[0].leave.remote("again"))
    ray.get(members[0].join.remote(2, "again"))   # (rank 1 has not left the first yet)
    ray.get(members[1].leave.remote("again"))
    ray.get(members[1].join.remote(2, "again"))
    assert ray.get([m.big_sum.remote(3, "again") for m in members], timeout=60) == [(9.0, 6.0)] * 2
    ray.get([m.leave.remote("again") for m in members])


def test_a_read_only_argument_is_reduced_into_in_place_as_rays_backends_do(ray):
    """An array that came as an argument is a read-only view of the store; Ray's backends
    write into such a buffer anyway (Ray's own collective tests rely on it)."""
    from mpiray.util import collective as col

    @ray.remote(num_cpus=0)
    class Holder:
        def __init__(self, rank):
            col.init_collective_group(2, rank, "gloo", "ro")

        def keep(self, buffer):
            self.buffer = buffer
            return buffer.flags.writeable

        def reduce(self):
            col.allreduce(self.buffer, "ro")
            return self.buffer.tolist()

    holders = [Holder.remote(r) for r in range(2)]
    assert ray.get([h.keep.remote(np.ones(4) * (i + 1)) for i, h in enumerate(holders)]) == [False, False]
    assert ray.get([h.reduce.remote() for h in holders], timeout=60) == [[3.0] * 4] * 2

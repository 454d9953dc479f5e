"""Generator tasks and actor methods across nodes: each item goes to the caller's node as
it is yielded."""

import gc
import hashlib
import time

import numpy as np
import pytest

from mpiray import _ids

pytestmark = pytest.mark.mpi(min_size=2)


def on_node(index, **extra):
    return dict(resources={f"node:{index}": 0.01}, **extra)


def last_node(ray):
    return len(ray.nodes()) - 1


def test_a_remote_generator_streams_to_the_driver(ray):
    @ray.remote
    def slow(n):
        for i in range(n):
            yield (i, ray.get_runtime_context().get_node_id())
            time.sleep(0.5)

    far = last_node(ray)
    start = time.monotonic()
    gen = slow.options(**on_node(far)).remote(3)
    i, node = ray.get(next(gen), timeout=60)
    assert i == 0 and int(node[:4], 16) == far
    assert time.monotonic() - start < 1.0 + 5   # the first item, not the whole task
    assert [ray.get(r, timeout=60)[0] for r in gen] == [1, 2]


def test_large_items_arrive_whole(ray):
    @ray.remote
    def arrays(n):
        for i in range(n):
            yield np.random.default_rng(i).integers(0, 255, 8 << 20, dtype=np.uint8)

    gen = arrays.options(**on_node(last_node(ray))).remote(3)
    digests = [hashlib.sha1(ray.get(r, timeout=120)).hexdigest() for r in gen]
    want = [hashlib.sha1(np.random.default_rng(i).integers(0, 255, 8 << 20, dtype=np.uint8)).hexdigest()
            for i in range(3)]
    assert digests == want


def test_an_error_comes_after_the_values_across_nodes(ray):
    @ray.remote(max_retries=0)
    def breaks():
        yield 1
        raise ValueError("boom")

    gen = breaks.options(**on_node(last_node(ray))).remote()
    assert ray.get(next(gen), timeout=60) == 1
    with pytest.raises(ValueError, match="boom"):
        ray.get(next(gen), timeout=60)
    assert list(gen) == []


def test_dynamic_generator_on_another_node(ray):
    @ray.remote(num_returns="dynamic")
    def parts(n):
        for i in range(n):
            yield np.full(300_000, i, dtype=np.int32)

    dyn = ray.get(parts.options(**on_node(last_node(ray))).remote(4), timeout=60)
    assert [int(ray.get(r, timeout=60)[0]) for r in dyn] == [0, 1, 2, 3]


def test_actor_generator_on_another_node(ray):
    @ray.remote
    class Source:
        def items(self, n):
            for i in range(n):
                yield i * 3

        async def later(self, n):
            for i in range(n):
                yield -i

    far = last_node(ray)
    src = Source.options(num_cpus=0, **on_node(far)).remote()
    assert [ray.get(r, timeout=60) for r in src.items.remote(4)] == [0, 3, 6, 9]

    @ray.remote
    class AsyncSource:
        async def later(self, n):
            for i in range(n):
                yield -i

    asrc = AsyncSource.options(num_cpus=0, **on_node(far)).remote()
    assert [ray.get(r, timeout=60) for r in asrc.later.remote(3)] == [0, -1, -2]


def test_a_task_on_one_node_consumes_a_generator_on_another(ray):
    @ray.remote
    def numbers(n):
        yield from range(n)

    @ray.remote
    def consume(n, where):
        gen = numbers.options(**on_node(where)).remote(n)
        return sum(ray.get(r) for r in gen)

    far = last_node(ray)
    assert ray.get(consume.options(**on_node(far)).remote(200, 0), timeout=120) == sum(range(200))
    assert ray.get(consume.options(**on_node(0)).remote(200, far), timeout=120) == sum(range(200))


def test_items_not_taken_are_freed_on_the_callers_node(ray):
    from mpiray.core import current

    @ray.remote
    def items(n):
        for i in range(n):
            yield np.full(100_000, i, dtype=np.uint8)

    store = current.node().store
    gen = items.options(**on_node(last_node(ray))).remote(5)
    first = next(gen)
    tid = first.binary()[: _ids.TASK_ID_SIZE]
    ray.get(gen.completed(), timeout=60)
    ids = [_ids.object_id(tid, i + 1) for i in range(5)]
    deadline = time.monotonic() + 30
    while not all(store.contains(oid) for oid in ids):   # pushed here as they were made
        assert time.monotonic() < deadline
        time.sleep(0.05)
    del gen, first
    gc.collect()
    while any(store.contains(oid) for oid in ids):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_refs_inside_items_cross_nodes(ray):
    @ray.remote
    def wrapped(n):
        yield np.zeros(64 << 20, dtype=np.uint8)   # a big item first: the rest queue behind it
        for i in range(n):
            yield [ray.put(("payload", i))]        # each item holds a ref made on that node

    gen = wrapped.options(**on_node(last_node(ray))).remote(10)
    assert ray.get(next(gen), timeout=120).nbytes == 64 << 20
    inner = [ray.get(r, timeout=60)[0] for r in gen]
    time.sleep(1.0)   # past any grace period: the refs must still resolve
    assert ray.get(inner, timeout=60) == [("payload", i) for i in range(10)]

"""mpiray.util: ActorPool, Queue and the multiprocessing Pool on a live runtime."""

import pytest


def test_actor_pool_ordered_and_unordered(ray):
    from mpiray.util import ActorPool

    @ray.remote
    class Sq:
        def sq(self, x):
            return x * x

    pool = ActorPool([Sq.remote(), Sq.remote()])
    assert list(pool.map(lambda a, v: a.sq.remote(v), range(8))) == [i * i for i in range(8)]
    assert sorted(pool.map_unordered(lambda a, v: a.sq.remote(v), range(5))) == [0, 1, 4, 9, 16]


def test_queue_between_tasks_and_driver(ray):
    from mpiray.util.queue import Empty, Full, Queue

    q = Queue(maxsize=3)

    @ray.remote
    def produce(queue, n):
        for i in range(n):
            queue.put(i, timeout=10)
        return n

    ref = produce.remote(q, 6)
    assert [q.get(timeout=10) for _ in range(6)] == list(range(6))
    assert ray.get(ref) == 6
    with pytest.raises(Empty):
        q.get(timeout=0.1)
    for i in range(3):
        q.put_nowait(i)
    with pytest.raises(Full):
        q.put_nowait(9)


def test_multiprocessing_pool(ray):
    from mpiray.util.multiprocessing import Pool

    def sq(x):
        return x * x

    def add(a, b):
        return a + b

    with Pool() as pool:
        assert pool.map(sq, range(20)) == [i * i for i in range(20)]
        assert list(pool.imap(sq, range(5))) == [0, 1, 4, 9, 16]
        assert sorted(pool.imap_unordered(sq, range(5))) == [0, 1, 4, 9, 16]
        assert pool.starmap(add, [(1, 2), (3, 4)]) == [3, 7]
        result = pool.apply_async(add, (20, 22))
        assert result.get(timeout=30) == 42 and result.successful()
        with pytest.raises(ZeroDivisionError):
            pool.apply(lambda: 1 / 0)


def test_node_ip_address_is_the_nodes_address_everywhere(ray):
    import ipaddress

    import mpiray

    ip = mpiray.util.get_node_ip_address()   # ray.util without importing it, as in Ray
    ipaddress.IPv4Address(ip)
    assert ray.nodes()[0]["NodeManagerAddress"] == ip
    assert ray.get(ray.remote(lambda: mpiray.util.get_node_ip_address()).remote()) == ip

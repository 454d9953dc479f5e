"""Faults and lifetimes across nodes: refs, fetch routes, actors, cancel, retries.

Run like the other MPI tests, with every rank a node of its own so that every
cross-node path runs on one machine:

    timeout 300 mpiexec -n 3 env MPIRAY_NODE_PER_RANK=1 python -m pytest tests/mpi --with-mpi

Tests whose docstring says "Regression" guard bugs found in review and since fixed.
"""

import gc
import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.mpi(min_size=2)

BIG = 1 << 18   # float64 elements: 2 MiB, over the 64 KiB that travels inline


def num_nodes(ray):
    return len(ray.nodes())


def on_node(index, **extra):
    return dict(resources={f"node:{index}": 0.01}, **extra)


def last(ray):
    """The node furthest from the driver (the host of remote actors here)."""
    return num_nodes(ray) - 1


def stored_on(ray, index, oids):
    """Which of oids node `index`'s store holds now (asked by a task running there)."""

    @ray.remote
    def here(oids):
        from mpiray.core import current

        store = current.runtime().store
        return [store.contains(o) for o in oids]

    return ray.get(here.options(**on_node(index)).remote(oids), timeout=60)


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def ray3(ray):
    if num_nodes(ray) < 3:
        pytest.skip("needs three nodes (MPIRAY_NODE_PER_RANK=1, mpiexec -n 3)")
    return ray


# ---------------------------------------------------------------- objects and refs
def test_dropped_task_return_is_freed_where_it_was_made(ray):
    h = last(ray)

    @ray.remote
    def big():
        return np.ones(BIG)

    ref = big.options(**on_node(h)).remote()
    ray.wait([ref], timeout=60)
    oid = ref._id
    assert stored_on(ray, h, [oid]) == [True]
    del ref
    gc.collect()
    assert eventually(lambda: stored_on(ray, h, [oid]) == [False])


def test_fetched_actor_call_return_is_freed_on_the_host(ray):
    h = last(ray)

    @ray.remote
    class A:
        def big(self):
            return np.ones(BIG)

    a = A.options(num_cpus=0, **on_node(h)).remote()
    ref = a.big.remote()
    assert ray.get(ref, timeout=60).sum() == BIG
    oid = ref._id
    del ref
    gc.collect()
    assert eventually(lambda: stored_on(ray, h, [oid]) == [False])


def test_unfetched_actor_call_return_is_freed_on_the_host(ray):
    """Regression (fixed in b6ec0ef): ActorRouter.call_done did not free or mark the
    non-inline returns, so the host kept them until shutdown."""
    h = last(ray)

    @ray.remote
    class A:
        def big(self):
            return np.ones(BIG)

        def ping(self):
            return 1

    a = A.options(num_cpus=0, **on_node(h)).remote()
    ref = a.big.remote()
    oid = ref._id
    assert ray.get(a.ping.remote(), timeout=60) == 1   # same caller: big has ended
    assert stored_on(ray, h, [oid]) == [True]
    del ref
    gc.collect()
    assert eventually(lambda: stored_on(ray, h, [oid]) == [False], timeout=5)


def test_refs_returned_inside_a_value_outlive_the_task_that_made_them(ray3):
    ray = ray3

    @ray.remote
    def put_inner():
        return [ray.put(np.ones(BIG))]

    @ray.remote
    def total(a):
        return float(a.sum())

    [inner] = ray.get(put_inner.options(**on_node(1)).remote(), timeout=60)
    time.sleep(0.3)  # the task that put it is gone
    assert float(ray.get(inner, timeout=60).sum()) == BIG
    assert ray.get(total.options(**on_node(2)).remote(inner), timeout=60) == BIG


def test_driver_put_kept_by_a_remote_actor_outlives_the_drivers_ref(ray):
    h = last(ray)

    @ray.remote
    class Keeper:
        def keep(self, box):
            self.box = box
            return True

        def read(self):
            return float(ray.get(self.box[0]).sum())

    k = Keeper.options(num_cpus=0, **on_node(h)).remote()
    x = ray.put(np.ones(BIG))
    assert ray.get(k.keep.remote([x]), timeout=60)
    del x
    gc.collect()
    time.sleep(0.5)
    assert ray.get(k.read.remote(), timeout=60) == BIG


def test_large_return_of_a_remote_actor_called_from_a_third_node(ray3):
    ray = ray3

    @ray.remote
    class A:
        def big(self):
            return np.ones(BIG)

    @ray.remote
    def via(h):
        return float(ray.get(h.big.remote()).sum())

    a = A.options(num_cpus=0, **on_node(2)).remote()
    assert ray.get(via.options(**on_node(1)).remote(a), timeout=60) == BIG


def test_available_resources_never_exceed_the_cluster(ray3):
    """Regression: a view's CPUs are pipelined (counted twice); they are not real ones."""
    ray = ray3
    total = ray.cluster_resources()["CPU"]
    assert eventually(lambda: ray.available_resources().get("CPU", 0.0) <= total, timeout=5), \
        f"{ray.available_resources().get('CPU')} CPUs available of {total}"


# ---------------------------------------------------------------- errors, retries, cancel
def test_error_crosses_three_nodes(ray3):
    ray = ray3

    class Boom(ValueError):
        pass

    @ray.remote(max_retries=0)
    def fail():
        raise Boom("from node 2")

    @ray.remote
    def passthrough(x):
        return x

    with pytest.raises(Boom):
        ray.get(passthrough.options(**on_node(1)).remote(fail.options(**on_node(2)).remote()),
                timeout=60)


def test_application_error_retried_on_a_remote_node(ray, tmp_path):
    marker = str(tmp_path / "failed-once")

    @ray.remote(max_retries=1, retry_exceptions=True)
    def flaky(path):
        if not os.path.exists(path):
            open(path, "w").close()
            raise RuntimeError("first try")
        return "second try"

    assert ray.get(flaky.options(**on_node(last(ray))).remote(marker), timeout=60) == "second try"


def test_cancel_a_task_running_on_another_node(ray):
    from mpiray.exceptions import TaskCancelledError

    @ray.remote
    def sleeper(s):
        time.sleep(s)
        return "finished"

    ref = sleeper.options(**on_node(last(ray))).remote(20)
    time.sleep(0.5)
    ray.cancel(ref)
    start = time.monotonic()
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=60)
    assert time.monotonic() - start < 10


def test_cancel_calls_of_an_actor_on_another_node(ray):
    from mpiray.exceptions import TaskCancelledError

    @ray.remote
    class Slow:
        def __init__(self):
            self.ran = []

        def work(self, i, seconds=1.0):
            time.sleep(seconds)
            self.ran.append(i)
            return i

        def log(self):
            return self.ran

    @ray.remote
    class AsyncSlow:
        async def work(self):
            import asyncio

            await asyncio.sleep(30)

    actor = Slow.options(num_cpus=0, **on_node(last(ray))).remote()
    first, queued = actor.work.remote(1, 4.0), actor.work.remote(2)
    time.sleep(0.5)
    ray.cancel(queued)
    with pytest.raises(TaskCancelledError):
        ray.get(queued, timeout=60)
    assert not ray.wait([first], timeout=0)[0]   # answered at once, as Ray (not after `first`)
    assert ray.get(first, timeout=60) == 1
    assert ray.get(actor.log.remote(), timeout=60) == [1]
    after = actor.work.remote(3)             # the actor skipped the cancelled call
    assert ray.get(after, timeout=60) == 3 and ray.get(actor.log.remote(), timeout=60) == [1, 3]

    # A call that had started is answered at once too; what it returns later is dropped.
    started = actor.work.remote(4)
    time.sleep(0.5)
    ray.cancel(started)
    with pytest.raises(TaskCancelledError):
        ray.get(started, timeout=60)
    assert ray.get(actor.log.remote(), timeout=60) == [1, 3, 4]
    with pytest.raises(TaskCancelledError):
        ray.get(started, timeout=60)

    asy = AsyncSlow.options(num_cpus=0, **on_node(last(ray))).remote()
    running = asy.work.remote()
    time.sleep(0.5)
    start = time.monotonic()
    ray.cancel(running)
    with pytest.raises(TaskCancelledError):
        ray.get(running, timeout=60)
    assert time.monotonic() - start < 10


def test_cancel_a_task_owned_by_another_node(ray3):
    """Regression (fixed in b6ec0ef): Scheduler.cancel ignored tasks another node owns."""
    ray = ray3
    from mpiray.exceptions import TaskCancelledError

    @ray.remote
    def sleeper(s):
        time.sleep(s)
        return "finished"

    @ray.remote
    def spawn():
        return [sleeper.options(**on_node(2)).remote(4)]

    [inner] = ray.get(spawn.options(**on_node(1)).remote(), timeout=60)
    time.sleep(0.5)
    ray.cancel(inner)
    with pytest.raises(TaskCancelledError):
        ray.get(inner, timeout=60)


def test_task_bounced_between_busy_nodes_releases_args_and_capacity(ray3, tmp_path):
    """Regression (fixed in b6ec0ef): a node passed a task it was sent straight back to
    its sender, which overwrote its FORWARDED record (leaked arguments, view never
    released)."""
    ray = ray3
    from mpiray.core import current

    cpus = {n["NodeIndex"]: int(n["Resources"]["CPU"]) for n in ray.nodes()}
    views = current.node().scheduler.cluster.views
    per_cpu = views[1].totals["CPU"] / cpus[1]  # how many tasks a view promises per CPU
    idle = ray.cluster_resources()["CPU"]   # (available_resources may lag by a heartbeat)
    assert eventually(lambda: ray.available_resources().get("CPU") == idle, timeout=10)

    @ray.remote
    def hold(path, s):
        open(path, "w").close()
        time.sleep(s)
        return True

    @ray.remote(num_cpus=0)
    def fill(node, paths):  # sent by another node: node 0's view of `node` stays free
        return [hold.options(**on_node(node)).remote(p, 4) for p in paths]

    @ray.remote
    def where(a):
        return float(a.sum())

    @ray.remote
    def has(oid):
        from mpiray.core import current

        return current.runtime().store.contains(oid)

    # node 0 and node 1 full; node 1's view of node 2 no roomier than its view of node 0
    # (node 1 sent node 2 work), so node 1 passes the task on to node 0 (the first of
    # equals), the node that sent it there: 0 -> 1 -> 0 -> 2
    n2 = max(0, round(per_cpu * (cpus[2] - cpus[0])))
    busy0 = [str(tmp_path / f"n0-{i}") for i in range(cpus[0])]
    busy1 = [str(tmp_path / f"n1-{i}") for i in range(cpus[1])]
    busy2 = [str(tmp_path / f"n2-{i}") for i in range(n2)]
    held0 = [hold.options(**on_node(0)).remote(p, 4) for p in busy0]
    held1 = ray.get(fill.options(**on_node(2)).remote(1, busy1), timeout=60)
    held2 = ray.get(fill.options(**on_node(1)).remote(2, busy2), timeout=60)
    started = busy0 + busy1 + busy2[:cpus[2]]
    assert eventually(lambda: all(os.path.exists(p) for p in started), timeout=30)
    x = ray.put(np.ones(BIG))
    xid = x._id
    assert ray.get(where.remote(x), timeout=60) == BIG
    del x
    assert all(ray.get(held0 + held1 + held2, timeout=60))
    gc.collect()
    try:
        assert eventually(lambda: ray.available_resources().get("CPU") == idle, timeout=5), \
            f"available CPU {ray.available_resources().get('CPU')} when idle, {idle} before"
        assert eventually(lambda: not ray.get(has.options(**on_node(0)).remote(xid), timeout=30),
                          timeout=5), "the argument is still stored on node 0"
    finally:
        ray.shutdown()  # the views of this cycle may be wrong: the next test gets a fresh one


# ---------------------------------------------------------------- actors
def _counter_actor(ray, **options):
    """An actor class counting calls, telling its pid, and able to crash its process
    (defined in here, so it travels by value like the tests' own classes)."""
    class C:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

        def pid(self):
            return os.getpid()

        def crash(self):
            os._exit(1)

    # (as Ray, @remote() with nothing in the parentheses is refused: options may be empty)
    return ray.remote(**options)(C) if options else ray.remote(C)


def test_remote_actor_restarts_then_dies_for_good(ray):
    from mpiray.exceptions import ActorDiedError, ActorUnavailableError

    C = _counter_actor(ray, max_restarts=1)
    a = C.options(num_cpus=0, **on_node(last(ray))).remote()
    first = ray.get(a.pid.remote(), timeout=60)
    with pytest.raises(ActorUnavailableError):
        ray.get(a.crash.remote(), timeout=60)
    assert ray.get(a.incr.remote(), timeout=60) == 1           # a fresh instance
    assert ray.get(a.pid.remote(), timeout=60) != first
    with pytest.raises(ActorDiedError):
        ray.get(a.crash.remote(), timeout=60)
    with pytest.raises(ActorDiedError):
        ray.get(a.incr.remote(), timeout=60)


def test_remote_actor_call_retried_after_restart(ray, tmp_path):
    marker = str(tmp_path / "crashed")

    @ray.remote(max_restarts=1, max_task_retries=1)
    class C:
        def crash_once(self, path):
            if not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            return "retried"

    a = C.options(num_cpus=0, **on_node(last(ray))).remote()
    assert ray.get(a.crash_once.remote(marker), timeout=60) == "retried"


def test_kill_with_restart_on_a_remote_node(ray):
    @ray.remote(max_restarts=2)
    class C:
        def pid(self):
            return os.getpid()

    a = C.options(num_cpus=0, **on_node(last(ray))).remote()
    first = ray.get(a.pid.remote(), timeout=60)
    ray.kill(a, no_restart=False)

    def restarted():
        try:
            return ray.get(a.pid.remote(), timeout=30) != first
        except ray.exceptions.RayActorError:  # a call that met the restart (as in Ray)
            return False

    assert eventually(restarted, timeout=30)


def test_kill_remote_actor_fails_every_queued_call(ray):
    from mpiray.exceptions import RayActorError

    @ray.remote
    class C:
        def slow(self, s):
            time.sleep(s)
            return s

        def incr(self):
            return 1

    a = C.options(num_cpus=0, **on_node(last(ray))).remote()
    ray.get(a.incr.remote(), timeout=60)
    refs = [a.slow.remote(3)] + [a.incr.remote() for _ in range(5)]
    time.sleep(0.3)
    ray.kill(a)
    for ref in refs:
        with pytest.raises(RayActorError):
            ray.get(ref, timeout=30)


def test_remote_actor_ends_when_its_last_handle_goes(ray):
    @ray.remote
    class C:
        def pid(self):
            return os.getpid()

        def slow(self, s):
            time.sleep(s)
            return s

    a = C.options(num_cpus=0, **on_node(last(ray))).remote()
    pid = ray.get(a.pid.remote(), timeout=60)
    pending = a.slow.remote(1)
    del a
    assert ray.get(pending, timeout=60) == 1        # calls already made still run
    assert eventually(lambda: process_gone(pid), timeout=15)


def test_handle_held_only_by_a_task_on_another_node_keeps_the_actor(ray3):
    ray = ray3

    @ray.remote
    class C:
        def incr(self):
            return 1

    @ray.remote
    def use_later(h):
        time.sleep(1.0)
        return ray.get(h.incr.remote())

    a = C.options(num_cpus=0, **on_node(2)).remote()
    ray.get(a.incr.remote(), timeout=60)
    ref = use_later.options(**on_node(1)).remote(a)
    del a
    assert ray.get(ref, timeout=60) == 1


def test_actor_made_by_a_task_on_one_node_hosted_on_another(ray3):
    ray = ray3

    C = _counter_actor(ray)

    @ray.remote
    def make():
        return [C.options(num_cpus=0, **on_node(2)).remote()]

    [h] = ray.get(make.options(**on_node(1)).remote(), timeout=60)
    time.sleep(0.3)  # its creator task is gone
    assert ray.get(h.incr.remote(), timeout=60) == 1
    pid = ray.get(h.pid.remote(), timeout=60)
    del h
    assert eventually(lambda: process_gone(pid), timeout=15)


def test_an_actor_whose_owner_dies_on_another_node_says_so(ray):
    """Regression: an actor hosted on node 0 whose creator (an actor on another node) is
    killed dies with Ray's reason, its owner's death, not `ray.kill`."""
    import signal

    C = _counter_actor(ray)

    @ray.remote(num_cpus=0, **on_node(last(ray)))
    class Parent:
        def make(self):
            self.child = C.options(num_cpus=0, **on_node(0)).remote()
            return self.child, os.getpid()

    parent = Parent.remote()
    child, pid = ray.get(parent.make.remote(), timeout=60)
    assert ray.get(child.incr.remote(), timeout=60) == 1
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ray.get(child.incr.remote(), timeout=30)
            time.sleep(0.1)
        except ray.exceptions.RayActorError as err:
            assert "because its owner has died" in str(err), str(err)
            break
    else:
        pytest.fail("the child outlived its owner")


def test_constructor_error_on_a_remote_node_reaches_callers(ray):
    from mpiray.exceptions import RayActorError

    @ray.remote
    class Bad:
        def __init__(self):
            raise ValueError("ctor boom")

        def f(self):
            return 1

    b = Bad.options(num_cpus=0, **on_node(last(ray))).remote()
    with pytest.raises(RayActorError, match="ctor boom"):
        ray.get(b.f.remote(), timeout=60)


def test_calls_from_a_third_node_after_a_remote_actor_died(ray3):
    ray = ray3
    from mpiray.exceptions import RayActorError

    @ray.remote
    class C:
        def f(self):
            return 1

    @ray.remote
    def call(h):
        return ray.get(h.f.remote())

    a = C.options(num_cpus=0, **on_node(2)).remote()
    assert ray.get(call.options(**on_node(1)).remote(a), timeout=60) == 1
    ray.kill(a)
    time.sleep(0.3)
    with pytest.raises(RayActorError):
        ray.get(call.options(**on_node(1)).remote(a), timeout=60)


def test_named_detached_actor_made_on_another_node(ray3):
    ray = ray3
    name = f"faults-{os.getpid()}-{time.monotonic_ns()}"
    C = _counter_actor(ray)

    @ray.remote
    def make_named(name):
        C.options(num_cpus=0, name=name, lifetime="detached", **on_node(2)).remote()
        return True

    @ray.remote
    def by_name(name):
        return ray.get(ray.get_actor(name).incr.remote())

    assert ray.get(make_named.options(**on_node(1)).remote(name), timeout=60)
    assert eventually(lambda: _found(ray, name), timeout=10)
    assert ray.get(ray.get_actor(name).incr.remote(), timeout=60) == 1
    assert ray.get(by_name.options(**on_node(2)).remote(name), timeout=60) == 2
    ray.kill(ray.get_actor(name))
    assert eventually(lambda: not _found(ray, name), timeout=15)
    again = C.options(num_cpus=0, name=name, **on_node(1)).remote()      # the name is free again
    assert ray.get(again.incr.remote(), timeout=60) == 1
    ray.kill(again)


def _found(ray, name):
    try:
        ray.get_actor(name)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- cycles
def test_shutdown_with_remote_work_in_flight_then_reinit(ray):
    h = last(ray)

    @ray.remote
    def sleeper(s):
        time.sleep(s)
        return s

    @ray.remote
    def make(n):
        return np.ones(n)

    @ray.remote
    def total(a):
        return float(a.sum())

    @ray.remote
    class C:
        def f(self):
            return 1

    for _ in range(2):
        a = C.options(num_cpus=0, **on_node(h)).remote()
        assert ray.get(a.f.remote(), timeout=60) == 1
        big = make.options(**on_node(1)).remote(1 << 20)
        total.options(**on_node(h)).remote(big)            # a pull in flight
        sleeper.options(**on_node(h)).remote(5)           # still running at shutdown
        ray.shutdown()
        ray.init(num_cpus=1)
        assert ray.get([sleeper.options(**on_node(i)).remote(0) for i in range(num_nodes(ray))],
                       timeout=60) == [0] * num_nodes(ray)

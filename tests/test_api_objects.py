"""Objects: put/get/wait, zero copy, and reference counting that frees store memory."""

import gc
import os
import re
import time

import numpy as np
import pytest


def _stats(ray):
    from mpiray.core import current

    return current.node().store.stats()


def _wait_until(pred, limit=10.0):
    deadline = time.monotonic() + limit
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


def test_put_get_values_and_numpy_zero_copy(ray):
    arr = np.arange(1_000_000, dtype=np.int32)
    ref = ray.put(arr)
    a, b = ray.get(ref), ray.get(ref)
    np.testing.assert_array_equal(a, arr)
    assert not a.flags.writeable
    assert np.shares_memory(a, b)  # two gets view the same store bytes
    assert ray.get(ray.put({"k": [1, (2, 3)]})) == {"k": [1, (2, 3)]}


def test_put_of_objectref_and_bad_get_arguments(ray):
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.put(ref)
    with pytest.raises(ValueError):
        ray.get(42)
    with pytest.raises(TypeError):
        ray.get([ref, 42])
    with pytest.raises(ValueError):
        ray.wait([ref, ref])
    with pytest.raises(TypeError, match="Expect an `ray.actor.ActorHandle`, but got: <class 'str'>"):
        ray.put(1, _owner="not an actor")


def test_get_timeout(ray):
    @ray.remote
    def slow():
        time.sleep(2)
        return 1

    ref = slow.remote()
    start = time.monotonic()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.2)
    assert 0.15 < time.monotonic() - start < 2
    assert ray.get(ref, timeout=30) == 1


def test_wait_keeps_input_order(ray):
    @ray.remote
    def slow(x):
        time.sleep(1.0)
        return x

    s = slow.remote(0)
    fast = [ray.put(i) for i in range(3)]
    ready, pending = ray.wait([fast[0], s, fast[1], fast[2]], num_returns=3, timeout=10)
    assert ready == fast and pending == [s]


def test_wait_splits_in_input_order_and_counts_only_num_returns(ray):
    @ray.remote
    def slow():
        time.sleep(30)

    s = slow.remote()
    fast = [ray.put(i) for i in range(4)]
    refs = [fast[0], s, fast[1], fast[2], fast[3]]
    ready, pending = ray.wait(refs, num_returns=2, timeout=10)
    assert ready == fast[:2] and pending == [s, fast[2], fast[3]]
    # as Ray: a list only (no tuple), and at least one to wait for
    with pytest.raises(TypeError, match="tuple"):
        ray.wait(tuple(refs))
    with pytest.raises(ValueError, match="tuple"):
        ray.get(tuple(fast))
    with pytest.raises(ValueError, match="positive"):
        ray.wait(refs, num_returns=0)
    ray.cancel(s, force=True)


def test_wait_argument_errors(ray):
    from mpiray.object_ref import ObjectRef

    refs = [ray.put(i) for i in range(100)]
    with pytest.raises(ValueError):  # a duplicate far down a long list
        ray.wait(refs + [refs[57]], num_returns=1)
    with pytest.raises(ValueError):  # equal refs that are distinct objects
        ray.wait([refs[0], ObjectRef(refs[0].binary())])
    with pytest.raises(TypeError):  # every item's type is checked before duplicates
        ray.wait([refs[0], refs[0], "x"])
    with pytest.raises(TypeError):
        ray.wait(refs[0])
    with pytest.raises(ValueError):
        ray.wait(refs, num_returns=101)
    with pytest.raises(ValueError):
        ray.wait(refs, num_returns=-1)
    with pytest.raises(ValueError):
        ray.wait(refs, timeout=-1)
    assert ray.wait([], num_returns=0) == ([], [])
    assert ray.wait([]) == ([], [])          # as Ray: the default num_returns=1 too


def test_wait_accepts_objectref_subclasses(ray):
    from mpiray.object_ref import ObjectRef

    class Tagged(ObjectRef):
        pass

    ref = ray.put(1)
    tagged = Tagged(ref.binary())
    ready, pending = ray.wait([tagged, ray.put(2)], num_returns=2, timeout=10, fetch_local=True)
    assert ready[0] is tagged and len(ready) == 2 and pending == []


def _in_store(oids):
    from mpiray.core import current

    store = current.node().store
    return [oid for oid in oids if store.contains(oid)]


def test_dropped_refs_free_their_objects(ray):
    refs = [ray.put(np.ones(100_000)) for _ in range(20)]
    oids = [r.binary() for r in refs]
    assert _in_store(oids) == oids
    del refs
    gc.collect()
    assert _wait_until(lambda: _in_store(oids) == [])


def test_objects_held_inside_other_objects_stay_alive(ray):
    inner = ray.put(np.arange(10))
    outer = ray.put([inner])
    inner_id = inner.binary()
    del inner
    gc.collect()
    ray.put(0)
    (got,) = ray.get(outer)
    assert got.binary() == inner_id
    np.testing.assert_array_equal(ray.get(got), np.arange(10))


def test_task_return_freed_when_ref_dropped(ray):
    @ray.remote
    def big():
        return np.ones(1_000_000)

    ref = big.remote()
    ray.get(ref)
    oid = ref.binary()
    assert _in_store([oid]) == [oid]
    del ref
    gc.collect()
    assert _wait_until(lambda: _in_store([oid]) == [])


def test_repeated_large_puts_reuse_memory(fresh):
    ray = fresh
    ray.init(num_cpus=1, object_store_memory=256 << 20)
    arr = np.ones(100 << 20 >> 3)  # 100 MiB
    for i in range(20):  # 2 GB written through a 256 MiB store
        ref = ray.put(arr)
        assert ray.get(ref)[-1] == 1.0
        del ref
    assert _stats(ray)["num_spilled"] == 0


def test_objects_the_store_cannot_hold_go_to_disk(fresh):
    """Ray's fallback allocation: a put or a return bigger than the whole store, or one
    that finds the store full of pinned objects, is written to a spill file and read from
    there; an actor returning one keeps its state."""
    ray = fresh
    ray.init(num_cpus=1, object_store_memory=80 << 20)

    @ray.remote
    def too_big():
        return np.full(100 << 20, 3, dtype=np.uint8)

    @ray.remote
    def ends(a):
        return int(a[0]) + int(a[-1])

    @ray.remote
    class Holder:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

        def too_big(self):
            return np.full(100 << 20, 4, dtype=np.uint8)

    big = ray.put(np.full(100 << 20, 7, dtype=np.uint8))
    assert ray.get(big)[-1] == 7 and ray.get(ends.remote(big), timeout=60) == 14
    assert ray.get(too_big.remote(), timeout=60)[5] == 3
    h = Holder.remote()
    assert ray.get(h.incr.remote(), timeout=30) == 1
    assert ray.get(h.too_big.remote(), timeout=60)[5] == 4
    assert ray.get(h.incr.remote(), timeout=30) == 2
    held = ray.get(ray.put(np.ones(48 << 20, dtype=np.uint8)))   # pinned: cannot spill
    second = ray.put(np.full(48 << 20, 2, dtype=np.uint8))       # no room: on disk
    assert ray.get(second)[-1] == 2 and held[0] == 1


def test_an_object_neither_the_store_nor_the_disk_can_hold_is_object_store_full(fresh):
    import resource
    import signal

    ray = fresh
    ray.init(num_cpus=1, object_store_memory=80 << 20)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 20, limits[1]))   # no file over 32 MiB
    try:
        with pytest.raises(ray.exceptions.ObjectStoreFullError, match="spill directory"):
            ray.put(np.ones(100 << 20, dtype=np.uint8))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old)
    assert ray.get(ray.put(np.ones(100 << 20, dtype=np.uint8)))[0] == 1


def test_a_ref_pickled_out_of_band_keeps_its_object(ray):
    """Ray pins an object whose ref is pickled outside its own serialization (pickle,
    ray.cloudpickle): the copy reads back after every in-band ref is gone."""
    import pickle

    ref = ray.put(np.arange(5))
    data = ray.cloudpickle.dumps(ref)
    del ref
    gc.collect()
    time.sleep(0.2)
    assert list(ray.get(ray.cloudpickle.loads(data), timeout=10)) == [0, 1, 2, 3, 4]

    @ray.remote
    def made_in_a_task():
        return pickle.dumps(ray.put("from a task"))

    assert ray.get(pickle.loads(ray.get(made_in_a_task.remote())), timeout=10) == "from a task"


def test_out_of_band_refs_refused_when_ray_is_told_to(ray, monkeypatch):
    """RAY_allow_out_of_band_object_ref_serialization=0: ray.cloudpickle refuses to pickle
    a ref (Ray's OufOfBandObjectRefSerializationException), in the driver and in a task
    that has the variable; plain pickle is not checked, as in Ray."""
    import pickle

    @ray.remote
    def oob():
        return ray.cloudpickle.dumps(ray.put(1))

    monkeypatch.setenv("RAY_allow_out_of_band_object_ref_serialization", "0")
    ref = ray.put(2)
    with pytest.raises(ray.exceptions.OufOfBandObjectRefSerializationException, match=ref.hex()):
        ray.cloudpickle.dumps([ref])
    assert ray.get(pickle.loads(pickle.dumps(ref))) == 2
    told = oob.options(runtime_env={"env_vars": {"RAY_allow_out_of_band_object_ref_serialization": "0"}})
    with pytest.raises(ray.exceptions.OufOfBandObjectRefSerializationException):
        ray.get(told.remote(), timeout=30)

    # a ref a remote function or actor class captures is out of band too, as Ray counts it
    @ray.remote
    def captures():
        return ray.get(ref)

    @ray.remote
    class Captures:
        def get(self):
            return ray.get(ref)

    with pytest.raises(ray.exceptions.OufOfBandObjectRefSerializationException,
                       match="Could not serialize the function .*captures"):
        captures.remote()
    with pytest.raises(ray.exceptions.OufOfBandObjectRefSerializationException,
                       match="Could not serialize the actor class .*Captures"):
        Captures.remote()
    monkeypatch.delenv("RAY_allow_out_of_band_object_ref_serialization")
    assert ray.get(ray.cloudpickle.loads(ray.get(oob.remote(), timeout=30)), timeout=10) == 1
    assert ray.get(captures.remote(), timeout=30) == 2


def test_a_refused_object_ref_id_leaves_no_noise(capfd):
    from mpiray import ObjectRef

    with pytest.raises(ValueError, match="20 bytes"):
        ObjectRef(b"0123456789")
    gc.collect()
    assert "Exception ignored" not in capfd.readouterr().err



def test_a_put_into_a_store_full_of_pinned_objects_waits_for_room(fresh):
    """Room that comes soon (a reader drops its view) is waited for, not an error."""
    import threading

    ray = fresh
    ray.init(num_cpus=1, object_store_memory=80 << 20)
    held = ray.get(ray.put(np.ones(48 << 20, dtype=np.uint8)))   # a view: pinned, cannot spill

    def drop_later():
        nonlocal held
        time.sleep(0.5)
        held = None
        gc.collect()

    threading.Thread(target=drop_later).start()
    again = ray.put(np.full(48 << 20, 2, dtype=np.uint8))
    assert ray.get(again)[-1] == 2


def test_a_dead_workers_objects_are_freed_unless_someone_else_holds_them(ray, tmp_path):
    """What a crashed task held goes with it: objects it put (told to the node or still in
    its outbox), returns of children it submitted; an object it handed to an actor lives."""

    @ray.remote
    class Keeper:
        def keep(self, refs):
            self.refs = refs

        def value(self):
            return ray.get(self.refs[0])

    @ray.remote
    def child():
        return np.full(100_000, 7.0)

    @ray.remote(max_retries=0)
    def crash(keeper, told):
        kept = ray.put(np.full(100_000, 3.0))
        ray.get(keeper.keep.remote([kept]))
        put = ray.put(np.ones(100_000))
        child_ref = child.remote()          # (a submit: the node hears of put's ref too)
        ray.get(child_ref)
        silent = ray.put(np.zeros(100_000))  # its ref event never leaves the process
        ids = [kept.binary(), put.binary(), child_ref.binary(), silent.binary()]
        told.write_bytes(b"".join(ids))
        os._exit(1)

    keeper = Keeper.remote()
    told = tmp_path / "ids"
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(crash.remote(keeper, told), timeout=60)
    blob = told.read_bytes()
    kept, *gone = [blob[i:i + 20] for i in range(0, len(blob), 20)]
    assert _wait_until(lambda: _in_store(gone) == []), _in_store(gone)
    assert _in_store([kept]) == [kept]
    assert ray.get(keeper.value.remote())[0] == 3.0
    ray.kill(keeper)                         # and its holder's death lets it go
    assert _wait_until(lambda: _in_store([kept]) == [])


def test_get_of_a_list_raises_an_error_already_there_without_waiting(ray):
    """As Ray: get([slow, failed]) raises failed's error at once."""

    @ray.remote
    def slow():
        time.sleep(20)

    @ray.remote
    def bad():
        raise ValueError("bad")

    failed = bad.remote()
    ray.wait([failed], timeout=30)
    pending = slow.remote()
    start = time.monotonic()
    with pytest.raises(ValueError, match="bad"):
        ray.get([pending, failed], timeout=30)
    assert time.monotonic() - start < 10
    ray.cancel(pending)


def test_internal_free_releases_an_object_now(ray):
    """ray._private.internal_api.free: the memory goes at once; a get of the object
    raises ObjectFreedError; memory_summary() tells each node's store."""
    from mpiray._private import internal_api
    from mpiray._raylet import ObjectRef, ObjectRefGenerator  # noqa: F401 - Ray's docs import these

    ref = ray.put(np.ones(1_000_000))
    summary = internal_api.memory_summary().splitlines()
    assert summary[0] == "--- Aggregate object store stats across all nodes ---"
    found = re.match(r"Plasma memory usage (\d+) MiB, (\d+) objects, ([\d.]+)% full, ([\d.]+)% needed$",
                     summary[1])
    assert found and int(found.group(1)) >= 7 and int(found.group(2)) >= 1, summary
    used = _stats(ray)["used"]
    internal_api.free([ref])
    assert _stats(ray)["used"] < used - 7_000_000
    with pytest.raises(ray.exceptions.ObjectFreedError):
        ray.get(ref, timeout=10)
    with pytest.raises(TypeError):
        internal_api.free(3)
    other = ray.put(1)
    ray.internal.free([other])   # (Ray's older home of free)
    with pytest.raises(ray.exceptions.ObjectFreedError):
        ray.get(other, timeout=10)

    @ray.remote
    def frees_and_gets(refs):
        internal_api.free(refs)
        try:
            ray.get(refs[0], timeout=10)
        except ray.exceptions.ObjectFreedError:
            return "freed at once"

    other = ray.put(np.ones(10))
    assert ray.get(frees_and_gets.remote([other]), timeout=30) == "freed at once"   # (in a worker)
    with pytest.raises(ray.exceptions.ObjectFreedError):
        ray.get(other, timeout=10)


def test_get_object_locations_names_the_nodes_and_sizes(ray):
    import mpiray.experimental

    @ray.remote
    def make():
        return np.ones(1 << 20, dtype=np.uint8)

    @ray.remote
    def blocked(gate):
        while not os.path.exists(gate):
            time.sleep(0.01)

    put, made = ray.put(np.ones(1000, dtype=np.uint8)), make.remote()
    ray.wait([made], timeout=60)
    pending = blocked.remote("/nonexistent/gate")
    where = mpiray.experimental.get_object_locations([put, made, pending])
    node = ray.get_runtime_context().get_node_id()
    assert where[put]["node_ids"] == [node] and 1000 < where[put]["object_size"] < 1200
    assert where[made]["node_ids"] == [node] and where[made]["object_size"] > 1 << 20
    assert where[pending] == {"node_ids": [], "object_size": None, "did_spill": False}
    assert where[put]["did_spill"] is False
    local = mpiray.experimental.get_local_object_locations([put, pending])
    assert local[put]["node_ids"] == [node] and local[put]["object_size"] == where[put]["object_size"]
    assert local[pending]["node_ids"] == [] and local[pending]["object_size"] is None
    ray.cancel(pending, force=True)
    with pytest.raises(TypeError):
        mpiray.experimental.get_object_locations(["not a ref"])


def test_inheriting_from_an_actor_class_is_refused_clearly(ray):
    @ray.remote
    class Base:
        pass

    with pytest.raises(ray.exceptions.ActorClassInheritanceException, match="Inheriting"):
        class Derived(Base):
            pass
    from mpiray.actor import ActorClassInheritanceException   # (Ray's ray.actor has it too)

    assert ActorClassInheritanceException is ray.exceptions.ActorClassInheritanceException
    assert repr(Base).startswith(f"<{__name__}.ActorClass(Base) object at 0x")


def test_a_chain_of_thousands_of_nested_refs_is_freed(ray):
    base = _stats(ray)["num_objects"]
    r = ray.put(0)
    for _ in range(3000):
        r = ray.put([r])
    del r
    gc.collect()
    ray.put(1)   # (the driver's drops are applied before its next put)
    assert _wait_until(lambda: _stats(ray)["num_objects"] <= base + 1), _stats(ray)


def _raise(exc_type, message):
    raise exc_type(message)


class _RaisesWhenLoaded:
    """A value whose unpickling raises exc_type(message)."""

    def __init__(self, exc_type, message):
        self.exc_type, self.message = exc_type, message

    def __reduce__(self):
        return (_raise, (self.exc_type, self.message))


def _BadLoad():
    return _RaisesWhenLoaded(ValueError, "cannot load this argument")


def test_an_argument_that_cannot_be_loaded_fails_the_call_not_the_worker(ray):
    @ray.remote
    def ident(x):
        return x

    @ray.remote
    class A:
        def ident(self, x):
            return x

        def ok(self):
            return "alive"

    with pytest.raises(ValueError, match="cannot load this argument"):
        ray.get(ident.remote(_BadLoad()), timeout=30)
    a = A.remote()
    with pytest.raises(ValueError, match="cannot load this argument"):
        ray.get(a.ident.remote(_BadLoad()), timeout=30)
    assert ray.get(a.ok.remote(), timeout=30) == "alive"


def test_a_small_store_holds_a_hundred_thousand_small_returns(fresh):
    """Ray keeps small objects in their owner's memory; here they are store objects, so
    the object table is sized for many (it held 16 Ki in a small store, and the tasks
    past that were lost)."""
    ray = fresh
    ray.init(num_cpus=2, object_store_memory=80 << 20)

    @ray.remote
    def ident(i):
        return i

    refs = [ident.remote(i) for i in range(100_000)]
    assert ray.get(refs, timeout=300) == list(range(100_000))


def test_object_ref_constructors_as_rays(ray):
    r = ray.put("v")
    assert ray.get(ray.ObjectRef.from_hex(r.hex())) == "v"
    assert ray.ObjectRef.from_binary(r.binary()) == r
    assert ray.ObjectRef.nil().is_nil() and not r.is_nil()
    assert r.job_id().hex() == ray.get_runtime_context().get_job_id()


def test_a_value_that_fails_to_unpickle_raises_a_ray_error(ray):
    """As Ray's get: RaySystemError naming the failure (its cause chained), not the bare
    exception of the value's unpickling."""
    with pytest.raises(ray.exceptions.RaySystemError, match="RuntimeError: cannot rebuild") as e:
        ray.get(ray.put(_RaisesWhenLoaded(RuntimeError, "cannot rebuild")))
    assert isinstance(e.value.__cause__, RuntimeError)


def test_a_ref_a_task_put_and_returned_in_a_value_outlives_the_value(ray):
    """The driver makes and drops a ref from the value before the worker's own hold on
    the inner object is applied: the object must stay while the driver's next ref does
    (found by Ray's test_reference_counting_2::test_return_object_ref)."""
    import gc

    import numpy as np

    @ray.remote
    def put_and_return(n):
        return [ray.put(np.full(n, 7, dtype=np.uint8))]

    for n in (10, 4 << 20) * 5:
        outer = put_and_return.remote(n)
        ray.get(outer)[0]                  # a ref made and dropped at once
        inner = ray.get(outer)[0]
        del outer
        gc.collect()
        time.sleep(0.05)
        value = ray.get(inner, timeout=20)
        assert value.shape == (n,) and int(value[-1]) == 7


def test_a_filling_store_makes_every_process_collect_its_garbage(fresh):
    """Ray's global GC: objects held only by reference cycles (in an actor that turned
    its collector off) are freed once the store is 80% full."""
    ray = fresh
    ray.init(num_cpus=1, object_store_memory=100 << 20)

    @ray.remote
    class Cycles:
        def __init__(self):
            import gc

            gc.disable()
            self.collected = False
            gc.callbacks.append(lambda phase, info: setattr(self, "collected", True))

        def make_cycle(self):
            a, b = [], []
            a.append(b)
            b.append(a)
            a.append(ray.put(b"x" * (10 << 20)))
            b.append(ray.put(b"y" * (10 << 20)))

        def was_collected(self):
            return self.collected

    c = Cycles.remote()
    for _ in range(3):
        ray.get(c.make_cycle.remote())
    time.sleep(0.5)
    assert not ray.get(c.was_collected.remote())   # 60% full: nothing asked yet
    ray.get(c.make_cycle.remote())                  # 80%
    deadline = time.monotonic() + 20
    while not ray.get(c.was_collected.remote()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.get(c.was_collected.remote())
    from mpiray.api import _runtime

    while _runtime().store.stats()["used"] > 30 << 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _runtime().store.stats()["used"] <= 30 << 20   # the cycles' objects are gone


def test_awaited_values_go_with_the_callers_last_reference(ray):
    """An awaited value (and a future()'s) is freed when the caller drops it, not at a
    later cyclic collection: a loop awaiting big results must not fill the store."""
    import asyncio
    import gc
    import weakref

    @ray.remote
    def make(i):
        return np.full(1000, i)

    async def awaited():
        value = await make.remote(1)
        assert value[0] == 1
        return weakref.ref(value)

    def freed(gone):
        # (the waiter thread lets go of its callback a moment after the caller wakes)
        deadline = time.monotonic() + 2
        while gone() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        return gone() is None

    gc.disable()   # (a cycle would hold the value for good)
    try:
        value = make.remote(2).future().result()
        assert value[0] == 2
        gone = weakref.ref(value)
        del value
        assert freed(gone)
        for _ in range(3):
            assert freed(asyncio.run(awaited()))
    finally:
        gc.enable()


def test_a_ref_from_an_earlier_runtime_is_refused_at_once(fresh):
    """As Ray's test_ray_shutdown_then_get/_wait/_call: a ValueError, not a wait forever."""
    ray = fresh
    ray.init(num_cpus=1)
    stale = ray.put("from the first runtime")
    ray.shutdown()
    ray.init(num_cpus=1)

    @ray.remote
    def echo(x):
        return x

    for use in (lambda: ray.get(stale), lambda: ray.get([stale]), lambda: ray.wait([stale]),
                lambda: echo.remote(stale), lambda: echo.remote([stale]),
                lambda: echo.remote(x={"k": stale}), lambda: ray.put([stale])):
        with pytest.raises(ValueError, match="a Ray object whose owner is unknown"):
            use()
    with pytest.raises(ValueError, match="Ray objects whose owner is unknown"):   # (get's words)
        ray.get(stale)
    assert ray.get(echo.remote(ray.put("fresh"))) == "fresh"
    ray.shutdown()


def test_an_error_raised_by_get_leaves_no_pin_once_collected(ray):
    """A Ray error raised by get (here a crashed worker's) holds the store buffer in its
    traceback's frames, a cycle; once the collector frees it, the object is unpinned and
    goes with its ref (the buffer's unpin once ran only when freed by refcount)."""
    from mpiray.api import _runtime

    store = _runtime().store

    @ray.remote(max_retries=0)
    def crash():
        os._exit(9)

    before = store.stats()["num_objects"]
    for _ in range(3):
        ref = crash.remote()
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            ray.get(ref, timeout=60)
        del ref
        gc.collect()
    deadline = time.monotonic() + 10
    while store.stats()["num_objects"] > before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)   # (+1: the function's export)
    stats = store.stats()
    assert stats["pinned"] == 0 and stats["num_objects"] <= before + 1, stats


def test_ray_serialization_facts_found_by_the_ports(ray):
    """A non-contiguous array warns once that it cannot be zero-copy; Ray's exception
    names (OufOfBandObjectRefSerializationException, make_dual_exception_instance) exist;
    a generator's backpressure of 0 is refused."""
    import warnings

    strided = np.arange(1000.0)[::2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(ray.get(ray.put(strided))) == list(strided)
        ray.put(strided)
    texts = [str(w.message) for w in caught if "cannot be zero-copy" in str(w.message)]
    import mpiray.serialization as S
    assert len(texts) == 1 or S._warned_not_contiguous   # (once per process)
    assert issubclass(ray.exceptions.OufOfBandObjectRefSerializationException,
                      ray.exceptions.RayError)
    err = ray.exceptions.RayTaskError("f", "ValueError: x", ValueError("x"))
    assert isinstance(err.make_dual_exception_instance(), ValueError)
    with pytest.raises(ValueError, match="_generator_backpressure_num_objects=0"):
        @ray.remote(_generator_backpressure_num_objects=0)
        def gen():
            yield 1


class _Cycle:
    """Garbage only a cyclic collection frees, holding a big object's ref."""

    def __init__(self, ray, nbytes):
        self.loop = self
        self.ref = ray.put(np.zeros(nbytes, dtype=np.uint8))


def test_store_pressure_collects_garbage_cycles_everywhere(fresh):
    """Ray's global GC: a put that does not fit runs gc.collect() in every process of the
    node, so refs only reference cycles hold (in the driver and in actors) are freed; a
    second request soon after the first is not dropped but waits for its turn."""
    import weakref

    ray = fresh
    ray.init(num_cpus=2, object_store_memory=100 << 20)

    @ray.remote(num_cpus=0)
    class Holder:
        def __init__(self):
            gc.disable()
            self.garbage = weakref.ref(_Cycle(ray, 30 << 20))

        def has(self):
            return self.garbage() is not None

    gc.disable()
    try:
        first = Holder.remote()
        assert ray.get(first.has.remote(), timeout=30)
        ray.put(np.zeros(80 << 20, dtype=np.uint8))   # does not fit beside it: a GC
        assert _wait_until(lambda: not ray.get(first.has.remote(), timeout=30))
        second = Holder.remote()
        local = weakref.ref(_Cycle(ray, 30 << 20))
        assert ray.get(second.has.remote(), timeout=30)
        ray.put(np.zeros(80 << 20, dtype=np.uint8))   # within the GC interval: it waits
        assert _wait_until(lambda: local() is None and not ray.get(second.has.remote(), timeout=30),
                           limit=20)
    finally:
        gc.enable()


def test_an_actor_waiting_on_resources_frees_actors_only_garbage_holds(fresh):
    """Ray's global GC when actors wait on resources: an actor handle only a reference
    cycle keeps holds its CPU until a collection, which the wait starts."""
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote(num_cpus=1)
    class A:
        def f(self):
            return "ok"

    gc.disable()
    try:
        for _ in range(2):
            a = A.remote()
            cycle = [a]
            cycle.append(cycle)
            assert ray.get(a.f.remote(), timeout=30) == "ok"
            del a, cycle
    finally:
        gc.enable()


@pytest.mark.parametrize("how", ["object_spilling_directory", "_system_config"])
def test_objects_spill_where_init_says(fresh, tmp_path, how):
    """Ray's init(object_spilling_directory=) and its older
    _system_config={"object_spilling_config": ...}: spill files go there, and go with
    the session."""
    import json

    ray = fresh
    where = tmp_path / "spill"
    if how == "object_spilling_directory":
        ray.init(num_cpus=1, object_store_memory=80 << 20, object_spilling_directory=str(where))
    else:
        spec = {"type": "filesystem", "params": {"directory_path": str(where)}}
        ray.init(num_cpus=1, object_store_memory=80 << 20,
                 _system_config={"object_spilling_config": json.dumps(spec)})
    refs = [ray.put(np.full(8 << 20, i, dtype=np.uint8)) for i in range(12)]   # 96 MiB
    spilled = [f for _, _, files in os.walk(where) for f in files]
    assert spilled, "nothing spilled into the directory init() named"
    assert [int(ray.get(r)[0]) for r in refs] == list(range(12))
    ray.shutdown()
    assert not [f for _, _, files in os.walk(where) for f in files]


def test_objects_spill_over_several_directories(fresh, tmp_path):
    """Ray's "directory_path": [...]: spilled objects spread over every directory (by
    id), read back from there, and the session's files go from each at shutdown."""
    import json

    ray = fresh
    wheres = [tmp_path / f"disk{i}" for i in range(3)]
    spec = {"type": "filesystem", "params": {"directory_path": [str(w) for w in wheres]}}
    ray.init(num_cpus=1, object_store_memory=80 << 20,
             _system_config={"object_spilling_config": json.dumps(spec)})
    refs = [ray.put(np.full(4 << 20, i, dtype=np.uint8)) for i in range(40)]   # 160 MiB
    per_dir = [len([f for _, _, files in os.walk(w) for f in files]) for w in wheres]
    assert all(n > 0 for n in per_dir), per_dir
    assert [int(ray.get(r)[0]) for r in refs] == list(range(40))
    ray.shutdown()
    assert not [f for w in wheres for _, _, files in os.walk(w) for f in files]


def test_a_bad_spilling_config_is_refused_before_anything_starts(fresh, tmp_path):
    """As Ray's test_invalid_config_raises_exception: an unknown type, an unknown param or
    a param of the wrong type is a ValueError from init()."""
    import json

    ray = fresh
    good = {"type": "filesystem", "params": {"directory_path": str(tmp_path)}}
    for bad in ({"type": "abc"}, {**good, "params": {**good["params"], "random_arg": "abc"}},
                {**good, "params": {**good["params"], "buffer_size": "abc"}}):
        with pytest.raises(ValueError, match="object_spilling_config"):
            ray.init(num_cpus=1, _system_config={"object_spilling_config": json.dumps(bad)})
        assert not ray.is_initialized()


def test_a_ref_a_running_task_drops_is_released_while_it_runs(ray, tmp_path):
    """As Ray's (the owner frees an object once its count is zero): a long task that drops
    a big object it put does not keep it until it ends (its outbox is flushed when events
    wait, not only when the task reports)."""
    from mpiray.api import _runtime

    store = _runtime().store
    gate = tmp_path / "gate"

    @ray.remote
    def drops_then_waits(gate):
        big = ray.put(np.zeros(30 << 20, dtype=np.uint8))
        del big
        while not os.path.exists(gate):
            time.sleep(0.01)
        return 1

    before = store.stats()["used"]
    ref = drops_then_waits.remote(str(gate))
    deadline = time.monotonic() + 10
    peak, released = 0, False
    while time.monotonic() < deadline and not released:
        used = store.stats()["used"]
        peak = max(peak, used)
        released = peak >= before + (30 << 20) and used < before + (1 << 20)
        time.sleep(0.01)
    gate.write_text("go")   # (the task ends only now)
    assert ray.get(ref, timeout=30) == 1
    assert released, (peak, before)   # it was there, and went while the task still ran


def test_memory_summary_counts_spills_and_restores(fresh):
    """Ray's aggregate lines: "Spilled X MiB, n objects, avg write throughput T MiB/s" and
    "Restored ...", totals since init() that a restore does not take back."""
    from mpiray._private import internal_api

    ray = fresh
    ray.init(num_cpus=1, object_store_memory=80 << 20)
    assert not any(line.startswith(("Spilled", "Restored"))
                   for line in internal_api.memory_summary(stats_only=True).splitlines())
    refs = [ray.put(np.full(20 << 20, i, dtype=np.uint8)) for i in range(6)]   # 120 MiB in 80
    assert [int(ray.get(r)[0]) for r in refs] == list(range(6))   # the first ones come back
    lines = internal_api.memory_summary(stats_only=True).splitlines()
    spilled = [re.match(r"Spilled (\d+) MiB, (\d+) objects, avg write throughput (\d+) MiB/s$", line)
               for line in lines if line.startswith("Spilled")]
    restored = [re.match(r"Restored (\d+) MiB, (\d+) objects, avg read throughput (\d+) MiB/s$", line)
                for line in lines if line.startswith("Restored")]
    assert len(spilled) == 1 and spilled[0], lines
    assert len(restored) == 1 and restored[0], lines
    n_spilled, n_restored = int(spilled[0].group(2)), int(restored[0].group(2))
    assert n_spilled >= 2 and n_restored >= 2
    assert int(spilled[0].group(1)) == 20 * n_spilled and int(restored[0].group(1)) == 20 * n_restored
    assert int(spilled[0].group(3)) > 0 and int(restored[0].group(3)) > 0

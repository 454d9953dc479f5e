"""Generator tasks and actor methods: streaming (the default for a function that yields),
num_returns="dynamic", a count, errors, wait, cancel, and the store left clean."""

import asyncio
import gc
import os
import signal
import time

import numpy as np
import pytest

from mpiray import _ids


def _store(ray):
    from mpiray.core import current

    return current.node().store


def _wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_generator_function_streams_its_values_by_default(ray):
    @ray.remote
    def count(n):
        for i in range(n):
            yield i * 10

    gen = count.remote(4)
    assert isinstance(gen, ray.ObjectRefGenerator)
    refs = list(gen)
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == [0, 10, 20, 30]
    with pytest.raises(StopIteration):
        next(gen)
    assert gen.is_finished()


def test_items_come_before_the_task_ends(ray):
    @ray.remote
    def slow(n, pause):
        for i in range(n):
            yield i
            time.sleep(pause)

    start = time.monotonic()
    gen = slow.remote(3, 1.0)
    first = next(gen)
    assert ray.get(first) == 0
    assert time.monotonic() - start < 0.9   # the task still has ~2 s to go
    assert not gen.is_finished()
    assert [ray.get(r) for r in gen] == [1, 2]


def test_an_exception_comes_after_the_values_yielded_before_it(ray):
    @ray.remote(max_retries=0)
    def breaks():
        yield "a"
        yield "b"
        raise KeyError("third")

    gen = breaks.remote()
    assert ray.get(next(gen)) == "a"
    assert ray.get(next(gen)) == "b"
    bad = next(gen)
    with pytest.raises(KeyError):
        ray.get(bad)
    with pytest.raises(ray.exceptions.RayTaskError):
        ray.get(bad)
    with pytest.raises(StopIteration):
        next(gen)


def test_dynamic_returns_one_ref_to_all_the_refs(ray):
    with pytest.warns(DeprecationWarning, match='num_returns="dynamic" is deprecated'):
        @ray.remote(num_returns="dynamic")   # (as newer Ray: "streaming" is the way now)
        def split(n):
            for i in range(n):
                yield np.full(1000, i)

    ref = split.remote(5)
    assert isinstance(ref, ray.ObjectRef)
    dyn = ray.get(ref)
    assert isinstance(dyn, ray.DynamicObjectRefGenerator)
    assert len(dyn) == 5
    assert [int(ray.get(r)[0]) for r in dyn] == [0, 1, 2, 3, 4]


def test_a_generator_with_a_count_returns_that_many_refs(ray, capfd):
    """Yielding more than num_returns keeps the first values and only tells the error,
    as Ray's (its documented "known bug", #28689); the generator is not run further."""
    @ray.remote(num_returns=3)
    def three():
        yield 1
        yield 2
        yield 3

    a, b, c = three.remote()
    assert ray.get([a, b, c]) == [1, 2, 3]

    first, second = three.options(num_returns=2).remote()
    assert ray.get([first, second]) == [1, 2]

    # too few: what was yielded stays readable, the rest hold Ray's error
    one, two, third, missing = three.options(num_returns=4).remote()
    assert ray.get([one, two, third], timeout=30) == [1, 2, 3]
    with pytest.raises(ValueError, match="Task returned 3 objects, but num_returns=4"):
        ray.get(missing, timeout=30)

    @ray.remote(num_returns=2)
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    assert ray.get(list(endless.remote()), timeout=30) == [0, 1]
    assert ray.get(endless.options(num_returns=1).remote(), timeout=30) == 0   # (1 too)

    @ray.remote
    class Yields:
        @ray.method(num_returns=1)
        def two(self):
            yield "first"
            yield "second"

    assert ray.get(Yields.remote().two.remote(), timeout=30) == "first"
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Task returned more than num_returns=2 objects" in err
    assert "Task returned more than num_returns=1 objects" in err


def test_streaming_on_a_function_that_does_not_yield_is_refused_when_decorated(ray):
    """As Ray's: a function or method that returns cannot stream (nor be "dynamic")."""
    from mpiray.util.annotations import RayDeprecationWarning

    def plain():
        return 1

    with pytest.raises(ValueError, match="num_returns='streaming' can only be used with generator"):
        ray.remote(num_returns="streaming")(plain)
    with pytest.warns(RayDeprecationWarning), \
            pytest.raises(ValueError, match="num_returns='dynamic' can only be used with generator"):
        ray.remote(num_returns="dynamic")(plain)
    with pytest.raises(ValueError, match="num_returns='streaming' can only be used with generator"):
        ray.remote(plain).options(num_returns="streaming")
    with pytest.raises(ValueError, match="num_returns='streaming' can only be used with generator"):
        class Actor:
            @ray.method(num_returns="streaming")
            def method(self):
                return 1
    with pytest.raises(ValueError, match="num_returns must be >= 0"):
        class Other:
            @ray.method(num_returns=-1)
            def method(self):
                return 1

    async def agen():
        yield 1

    ray.remote(num_returns="streaming")(agen)   # (async generators stream too)


def test_bad_num_returns_is_refused_by_name(ray):
    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="num_returns"):
        f.options(num_returns="lots")


def test_an_unpicklable_value_fails_the_task_not_the_worker(ray):
    import threading

    @ray.remote(max_retries=0)
    def returns_a_lock():
        return threading.Lock()

    @ray.remote(max_retries=0)
    def yields_a_lock():
        yield 1
        yield threading.Lock()
        yield 3   # never reached: the stream ends at the value it could not store

    with pytest.raises(ray.exceptions.RayTaskError, match="could not be serialized"):
        ray.get(returns_a_lock.remote())
    gen = yields_a_lock.remote()
    assert ray.get(next(gen)) == 1
    with pytest.raises(ray.exceptions.RayTaskError, match="could not be serialized"):
        ray.get(next(gen))
    assert list(gen) == []

    @ray.remote
    def pid():
        return os.getpid()

    assert ray.get(pid.remote())  # the workers are alive and well


def test_refs_of_items_go_to_other_tasks(ray):
    @ray.remote
    def chunks():
        for i in range(3):
            yield np.arange(100_000) + i

    @ray.remote
    def total(a):
        return int(a.sum())

    sums = [total.remote(r) for r in chunks.remote()]
    base = sum(range(100_000))
    assert ray.get(sums) == [base, base + 100_000, base + 200_000]


def test_wait_takes_generators_and_refs(ray):
    @ray.remote
    def slow_items():
        time.sleep(1.5)
        yield 1

    @ray.remote
    def quick():
        return "q"

    gen = slow_items.remote()
    q = quick.remote()
    ready, pending = ray.wait([gen, q], num_returns=1, timeout=10)
    assert ready == [q] and pending == [gen]
    ready, pending = ray.wait([gen], timeout=0)
    assert ready == [] and pending == [gen]
    ready, pending = ray.wait([gen], timeout=10)
    assert ready == [gen]
    assert gen.next_ready()
    assert ray.get(next(gen)) == 1


def test_completed_is_ready_at_the_end(ray):
    @ray.remote
    def two():
        yield 1
        time.sleep(0.3)
        yield 2

    gen = two.remote()
    assert ray.get(gen.completed(), timeout=10) is None   # (Ray's value for a stream's end)
    assert gen.is_finished() is False   # ended, but nothing taken yet
    assert [ray.get(r) for r in gen] == [1, 2]
    assert gen.is_finished()


def test_async_iteration(ray):
    @ray.remote
    def letters():
        for c in "abc":
            time.sleep(0.05)
            yield c

    async def collect():
        return [await ref async for ref in letters.remote()]

    assert asyncio.run(collect()) == ["a", "b", "c"]


def test_get_of_a_generator_and_passing_one_are_refused(ray):
    @ray.remote
    def g():
        yield 1

    @ray.remote
    def takes(x):
        return x

    gen = g.remote()
    assert ray.get(gen) is gen   # (as Ray's get)
    with pytest.raises(TypeError, match="ObjectRefGenerator"):
        takes.remote(gen)
    assert [ray.get(r) for r in gen] == [1]


def test_cancel_of_a_generator_ends_its_stream(ray):
    @ray.remote
    def forever():
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.01)

    gen = forever.remote()
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    refs = []
    for ref in gen:     # the items already made, then the cancellation
        refs.append(ref)
        assert len(refs) < 10_000
    with pytest.raises(ray.exceptions.TaskCancelledError) as cancelled:
        ray.get(refs[-1])
    assert isinstance(cancelled.value, ray.exceptions.RayTaskError)   # (Ray's tests catch that)


def test_a_crashed_generator_is_retried_without_duplicates(ray, tmp_path):
    marker = tmp_path / "crashed"

    @ray.remote(max_retries=2)
    def crashes_once(path):
        yield "x"
        yield "y"
        if not os.path.exists(path):
            open(path, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        yield "z"

    assert [ray.get(r) for r in crashes_once.remote(str(marker))] == ["x", "y", "z"]


def test_a_crash_without_retries_ends_the_stream_with_the_error(ray):
    @ray.remote(max_retries=0)
    def dies():
        yield 1
        time.sleep(0.2)
        os._exit(3)

    gen = dies.remote()
    assert ray.get(next(gen)) == 1
    rest = list(gen)
    assert len(rest) == 1
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(rest[0])


def test_actor_generator_methods_sync_threaded_and_async(ray):
    @ray.remote
    class Sync:
        def __init__(self):
            self.base = 100

        def items(self, n):
            for i in range(n):
                yield self.base + i

        @ray.method(num_returns="dynamic")
        def dyn(self, n):
            yield from range(n)

    @ray.remote(max_concurrency=4)
    class Threaded:
        def items(self, n):
            yield from range(n)

    @ray.remote
    class Async:
        async def items(self, n):
            for i in range(n):
                await asyncio.sleep(0.01)
                yield i * i

        async def plain(self):
            return "plain"

    s, t, a = Sync.remote(), Threaded.remote(), Async.remote()
    assert [ray.get(r) for r in s.items.remote(3)] == [100, 101, 102]
    assert [ray.get(r) for r in ray.get(s.dyn.remote(4))] == [0, 1, 2, 3]
    assert [ray.get(r) for r in t.items.remote(5)] == [0, 1, 2, 3, 4]
    assert [ray.get(r) for r in a.items.remote(4)] == [0, 1, 4, 9]
    assert ray.get(a.plain.remote()) == "plain"
    assert [ray.get(r) for r in s.items.options(num_returns="streaming").remote(1)] == [100]


def test_items_are_freed_with_the_generator(ray):
    @ray.remote
    def big(n):
        for i in range(n):
            yield np.full(200_000, i, dtype=np.uint8)

    store = _store(ray)
    gen = big.remote(6)
    kept = next(gen)
    tid = kept.binary()[: _ids.TASK_ID_SIZE]
    ray.get(gen.completed(), timeout=30)
    item_ids = [_ids.object_id(tid, i + 1) for i in range(6)]
    assert all(store.contains(oid) for oid in item_ids)
    del gen
    gc.collect()
    # the five never taken go with the generator; the one taken lives while its ref does
    _wait_until(lambda: not any(store.contains(oid) for oid in item_ids[1:]))
    assert store.contains(item_ids[0])
    assert int(ray.get(kept)[0]) == 0
    del kept
    gc.collect()
    _wait_until(lambda: not store.contains(item_ids[0]))


def test_a_generator_dropped_while_running_leaves_nothing(ray):
    @ray.remote
    def slowly(n):
        for i in range(n):
            time.sleep(0.05)
            yield np.full(100_000, i, dtype=np.uint8)

    store = _store(ray)
    gen = slowly.remote(8)
    tid = next(gen).binary()[: _ids.TASK_ID_SIZE]
    del gen
    gc.collect()
    time.sleep(0.8)   # the task runs on and ends
    ids = [_ids.object_id(tid, i + 1) for i in range(8)] + [_ids.stream_end(tid)]
    _wait_until(lambda: not any(store.contains(oid) for oid in ids))


def test_many_items(ray):
    @ray.remote
    def many(n):
        yield from range(n)

    assert sum(ray.get(r) for r in many.remote(5000)) == sum(range(5000))


def test_items_of_a_generator_that_died_go_with_it(ray):
    @ray.remote(max_retries=0)
    def dies():
        yield b"x" * 1000
        yield b"y" * 1000
        time.sleep(0.3)
        os._exit(1)

    store = _store(ray)
    gen = dies.remote()
    tid = gen.completed().binary()[: _ids.TASK_ID_SIZE]
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(gen.completed(), timeout=30)
    items = [_ids.object_id(tid, i) for i in (1, 2)]
    assert all(store.contains(oid) for oid in items)   # (the worker may not have reported them)
    del gen
    gc.collect()
    _wait_until(lambda: not any(store.contains(oid) for oid in items))


def test_items_made_after_the_generator_is_dropped_are_not_kept(ray):
    @ray.remote
    def many():
        for i in range(60):
            time.sleep(0.01)
            yield np.full(50_000, i % 250, dtype=np.uint8)

    store = _store(ray)
    gen = many.remote()
    tid = next(gen).binary()[: _ids.TASK_ID_SIZE]
    del gen
    gc.collect()
    time.sleep(1.2)   # the task has yielded the rest by now
    ids = [_ids.object_id(tid, i + 1) for i in range(60)] + [_ids.stream_end(tid)]
    _wait_until(lambda: not any(store.contains(oid) for oid in ids))


def test_async_def_generator_tasks_run_and_async_def_tasks_are_refused(ray):
    """As Ray's: an async generator function is a task (its items streamed), a
    coroutine function is refused when decorated."""
    @ray.remote
    async def ticks(n):
        for i in range(n):
            await asyncio.sleep(0.01)
            yield i

    with pytest.raises(ValueError, match="'async def' should not be used for remote tasks"):
        @ray.remote
        async def plain(x):
            return x * 2

    @ray.remote(num_returns=2)
    async def two():
        yield "a"
        yield "b"

    assert [ray.get(r) for r in ticks.remote(4)] == [0, 1, 2, 3]
    assert ray.get(two.remote()) == ["a", "b"]


def test_a_cancelled_await_of_the_next_item_loses_nothing(ray):
    @ray.remote
    def slow(n):
        for i in range(n):
            time.sleep(0.4)
            yield i

    async def main():
        gen, got = slow.remote(3), []
        while True:
            try:
                ref = await asyncio.wait_for(gen.__anext__(), 0.1)
            except asyncio.TimeoutError:
                continue
            except StopAsyncIteration:
                return got
            got.append(await ref)

    assert asyncio.run(main()) == [0, 1, 2]


def test_cancel_ends_an_actor_generator_method(ray):
    @ray.remote
    class Source:
        def forever(self):
            i = 0
            while True:
                time.sleep(0.01)
                yield i
                i += 1

        def ping(self):
            return "pong"

    @ray.remote
    class AsyncSource:
        async def forever(self):
            i = 0
            while True:
                await asyncio.sleep(0.01)
                yield i
                i += 1

    sync = Source.remote()
    for actor in (sync, AsyncSource.remote()):
        gen = actor.forever.remote()
        assert ray.get(next(gen), timeout=30) == 0
        ray.cancel(gen)
        refs = []
        for ref in gen:
            refs.append(ref)
            assert len(refs) < 5000
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(refs[-1], timeout=30)
    assert ray.get(sync.ping.remote(), timeout=30) == "pong"   # its stream ended: it serves again


def test_a_generator_with_num_returns_that_raises_keeps_what_it_yielded(ray):
    """Ray's docs: the returns it yielded hold their values, the rest hold the error; if
    every return has a value, the error is only logged."""

    @ray.remote
    def two_then_raise():
        yield 0
        yield 1
        raise ValueError("after two")

    @ray.remote
    def one_then_raise():
        yield "only"
        raise ValueError("after one")

    r1, r2, r3, r4 = two_then_raise.options(num_returns=4).remote()
    assert ray.get([r1, r2], timeout=30) == [0, 1]
    for r in (r3, r4):
        with pytest.raises(ValueError, match="after two"):
            ray.get(r, timeout=30)
    assert ray.get(list(two_then_raise.options(num_returns=2).remote()), timeout=30) == [0, 1]
    a, b, c = one_then_raise.options(num_returns=3).remote()
    assert ray.get(a, timeout=30) == "only"
    with pytest.raises(ValueError, match="after one"):
        ray.get(c, timeout=30)


def test_an_async_actors_generator_is_retried_on_exceptions_from_its_start(ray):
    """As Ray's: retry_exceptions reruns the generator; the items an earlier attempt made
    are not made twice, and max_task_retries bounds the attempts."""
    @ray.remote
    class Tally:
        def __init__(self):
            self.n = 0

        def next(self):
            self.n += 1
            return self.n - 1

    class Flaky(Exception):
        pass

    @ray.remote(max_task_retries=3)
    class Source:
        async def items(self, tally, plan):
            while True:   # (each attempt goes on where the plan is)
                i = await tally.next.remote()
                if plan[i] == "raise":
                    raise Flaky()
                yield plan[i]
                if i == len(plan) - 1:
                    return

    plan = [1, "raise", 1, "raise", 1, 2, 3]
    gen = Source.remote().items.options(retry_exceptions=[Flaky]).remote(Tally.remote(), plan)
    assert [ray.get(r, timeout=30) for r in gen] == [1, 2, 3]

    too_flaky = [1, "raise"] * 4 + [1, 2]
    gen = Source.remote().items.options(retry_exceptions=[Flaky]).remote(Tally.remote(), too_flaky)
    assert ray.get(next(gen), timeout=30) == 1
    with pytest.raises(Flaky):
        ray.get(next(gen), timeout=30)


def test_items_taken_and_dropped_go_while_the_generator_lives(ray):
    """As Ray: an item next() handed out goes with its last ref, also once the task has
    ended (its end no longer holds the items); items not taken yet stay until then."""
    from mpiray.api import _runtime

    store = _runtime().store

    @ray.remote
    def produce(n):
        for i in range(n):
            yield np.full(1 << 20, i, dtype=np.uint8)

    before = store.stats()["used"]
    gen = produce.remote(8)
    ray.get(gen.completed(), timeout=60)   # (every item made, the task over)
    first = next(gen)
    assert ray.get(first)[0] == 0
    del first
    for i, ref in enumerate(gen, start=1):
        assert ray.get(ref)[0] == i
    del ref
    deadline = time.monotonic() + 10
    while store.stats()["used"] - before > (1 << 20) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.stats()["used"] - before < (1 << 20), store.stats()
    assert not gen.next_ready() and gen.is_finished()   # (as Ray: next() would stop)
    with pytest.raises(StopIteration):
        next(gen)


def test_async_for_ends_and_wait_sees_an_exhausted_generator_as_ready(ray):
    """async for stops after the last item (or the task's error); ray.wait() returns an
    exhausted generator as ready at once (next() would not block: it stops)."""
    @ray.remote
    def produce(n):
        for i in range(n):
            yield i

    @ray.remote
    def fails_after_one():
        yield 1
        raise ValueError("second")

    async def collect(gen):
        out = []
        async for ref in gen:
            try:
                out.append(await ref)
            except ValueError:
                out.append("error")
        return out

    async def bounded(gen):
        return await asyncio.wait_for(collect(gen), 30)

    assert asyncio.run(bounded(produce.remote(3))) == [0, 1, 2]
    assert asyncio.run(bounded(fails_after_one.remote())) == [1, "error"]
    gen = produce.remote(1)
    assert [ray.get(r) for r in gen] == [0]
    start = time.process_time()
    ready, pending = ray.wait([gen], timeout=2)
    assert ready == [gen] and pending == []
    assert time.process_time() - start < 0.5


def test_a_cancelled_async_generator_method_sees_cancelled_error(ray):
    """As Ray's: cancelling an async actor's streaming method throws CancelledError into
    the generator, items coming fast or slow, so its clean-up runs."""
    import asyncio

    @ray.remote
    class Server:
        def __init__(self):
            self.seen = []

        async def generate(self, delay):
            try:
                for i in range(100_000):
                    await asyncio.sleep(delay)
                    yield i
            except BaseException as e:
                self.seen.append(type(e).__name__)
                raise

        async def log(self):
            return self.seen

    s = Server.remote()
    for delay in (0.001, 0.5):
        gen = s.generate.remote(delay)
        assert ray.get(next(gen), timeout=30) == 0
        ray.cancel(gen)
        with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
            for ref in gen:
                ray.get(ref, timeout=30)
    deadline = time.monotonic() + 10
    while len(ray.get(s.log.remote())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.get(s.log.remote()) == ["CancelledError", "CancelledError"]


@pytest.mark.parametrize("where", ["task", "sync_actor", "async_actor"])
def test_a_cancelled_generators_completed_raises_the_cancel(ray, where):
    """As Ray's: completed() of a generator cancelled mid-stream raises; the items made
    before stay readable and the cancellation is the stream's last item. A sync actor's
    method (only stopped between items) gives a plain TaskCancelledError."""
    import asyncio

    @ray.remote
    def task_gen():
        for i in range(100):
            time.sleep(0.05)
            yield i

    @ray.remote
    class Streams:
        def gen(self):
            for i in range(100):
                time.sleep(0.05)
                yield i

        async def agen(self):
            for i in range(100):
                await asyncio.sleep(0.05)
                yield i

    gen = {"task": task_gen.remote, "sync_actor": lambda: Streams.remote().gen.remote(),
           "async_actor": lambda: Streams.remote().agen.remote()}[where]()
    assert ray.get(next(gen), timeout=60) == 0
    ray.cancel(gen)
    with pytest.raises(ray.exceptions.TaskCancelledError) as info:
        ray.get(gen.completed(), timeout=60)
    assert isinstance(info.value, ray.exceptions.RayTaskError) == (where != "sync_actor")
    refs = list(gen)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(refs[-1], timeout=60)
    assert ray.get(refs[:-1], timeout=60) == list(range(1, len(refs)))


def test_an_object_ref_generator_is_a_generator_with_rays_private_members(ray):
    """As Ray's: a collections.abc.Generator whose send/throw/close are not implemented;
    _generator_ref is the end's ref; _next_sync gives a nil ref when nothing is ready."""
    import collections.abc

    @ray.remote
    def slow_pair(path):
        while not os.path.exists(path):
            time.sleep(0.01)
        yield 1
        yield 2

    gate = f"/tmp/mpiray-gen-gate-{os.getpid()}"
    gen = slow_pair.remote(gate)
    assert isinstance(gen, collections.abc.Generator)
    for name in ("send", "throw"):
        with pytest.raises(NotImplementedError):
            getattr(gen, name)(None)
    with pytest.raises(NotImplementedError):
        gen.close()
    assert gen._generator_ref == gen.completed()
    assert gen._next_sync(timeout_s=0.1).is_nil()
    open(gate, "w").close()
    try:
        assert ray.get(gen._next_sync(), timeout=60) == 1
        assert ray.get(gen._next_sync(timeout_s=30), timeout=60) == 2
        with pytest.raises(StopIteration):
            gen._next_sync()
    finally:
        os.remove(gate)

"""Actors end to end: state, ordering, handles, restarts, kill, named, concurrency, GC."""

import asyncio
import os
import signal
import threading
import time

import pytest


@pytest.fixture(scope="module")
def Counter(ray_module):
    @ray_module.remote
    class Counter:
        def __init__(self, start=0):
            self.value = start

        def incr(self, by=1):
            self.value += by
            return self.value

        def pid(self):
            return os.getpid()

        def crash(self):
            os._exit(1)

    return Counter


def test_state_and_per_caller_order(ray, Counter):
    c = Counter.remote(10)
    refs = [c.incr.remote() for _ in range(300)]
    assert ray.get(refs) == list(range(11, 311))


def test_handles_work_inside_tasks_and_actors(ray, Counter):
    c = Counter.remote()

    @ray.remote
    def use(counter):
        return ray.get(counter.incr.remote(5))

    @ray.remote
    class Proxy:
        def __init__(self, counter):
            self.counter = counter

        def go(self):
            return ray.get(self.counter.incr.remote(100))

    assert sorted(ray.get([use.remote(c) for _ in range(3)])) == [5, 10, 15]
    assert ray.get(Proxy.remote(c).go.remote()) == 115


def test_four_actors_and_their_tasks_on_two_cpus(ray, Counter):
    actors = [Counter.remote(i) for i in range(4)]

    @ray.remote
    def poke(a):
        return ray.get(a.incr.remote())

    assert ray.get([poke.remote(a) for a in actors], timeout=60) == [1, 2, 3, 4]


def test_sigkill_of_actor_process_never_hangs_callers(ray, Counter):
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    pending = [c.incr.remote() for _ in range(5)]
    os.kill(pid, signal.SIGKILL)
    for ref in pending:
        try:
            ray.get(ref, timeout=30)
        except ray.exceptions.RayActorError:
            pass
    with pytest.raises(ray.exceptions.RayActorError, match="OOM killer"):   # (Ray's hint)
        ray.get(c.incr.remote(), timeout=30)


def test_restart_gives_fresh_state_and_new_process(ray):
    @ray.remote(max_restarts=2)
    class Phoenix:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

        def pid(self):
            return os.getpid()

        def reborn(self):
            return ray.get_runtime_context().was_current_actor_reconstructed

    p = Phoenix.remote()
    assert ray.get([p.incr.remote() for _ in range(3)]) == [1, 2, 3]
    assert ray.get(p.reborn.remote()) is False
    first = ray.get(p.pid.remote())
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            value = ray.get(p.incr.remote(), timeout=30)
            break
        except ray.exceptions.RayActorError:
            assert time.monotonic() < deadline
    assert value == 1
    assert ray.get(p.pid.remote()) != first
    assert ray.get(p.reborn.remote()) is True


def test_max_task_retries_reruns_the_interrupted_call(ray, tmp_path):
    flag = tmp_path / "crashed"

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Once:
        def work(self):
            if not flag.exists():
                flag.write_text("1")
                os._exit(1)
            return "done on retry"

    assert ray.get(Once.remote().work.remote(), timeout=60) == "done on retry"


def test_kill_and_named_actors(ray, Counter):
    named = Counter.options(name="the-counter", namespace="tests").remote(7)
    found = ray.get_actor("the-counter", namespace="tests")
    assert ray.get(found.incr.remote()) == 8
    with pytest.raises(ValueError):
        Counter.options(name="the-counter", namespace="tests").remote()
    same = Counter.options(name="the-counter", namespace="tests", get_if_exists=True).remote()
    assert ray.get(same.incr.remote()) == 9
    ray.kill(named)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(named.incr.remote(), timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            ray.get_actor("the-counter", namespace="tests")
            time.sleep(0.05)
        except ValueError:
            break
    else:
        pytest.fail("a killed actor's name was never released")


@pytest.mark.parametrize("round_", range(3))
def test_get_if_exists_from_many_tasks_at_once_shares_one_live_actor(ray, Counter, round_):
    """The race's loser gets the winner's handle before its actor exists: its calls wait
    in the actor's queue (made before the name is claimed) instead of finding no actor."""
    @ray.remote
    def use_shared(name):
        # (detached: as in Ray, a named actor dies with its creator's handles, and the
        # task that made it returns while the others still use it)
        c = Counter.options(name=name, get_if_exists=True, lifetime="detached").remote()
        return ray.get(c.incr.remote(), timeout=30)

    name = f"shared-{round_}"
    assert sorted(ray.get([use_shared.remote(name) for _ in range(4)], timeout=60)) == [1, 2, 3, 4]
    ray.kill(ray.get_actor(name))


def test_constructor_failure_reaches_every_call(ray):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("no way 42")

        def f(self):
            return 1

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(ray.exceptions.RayActorError, match="no way 42"):
            ray.get(b.f.remote(), timeout=30)


def test_a_failed_constructor_argument_is_the_actors_death_cause(ray):
    """As a task's: the argument's own error, named, and none of mpiray's frames."""
    @ray.remote
    def boom():
        raise KeyError("lost key")

    @ray.remote
    class Holds:
        def __init__(self, value):
            self.value = value

        def get(self):
            return self.value

    holder = Holds.remote(boom.remote())
    with pytest.raises(ray.exceptions.ActorDiedError) as info:
        ray.get(holder.get.remote(), timeout=60)
    text = str(info.value)
    assert "At least one of the input arguments" in text and "KeyError: 'lost key'" in text
    assert "mpiray/core" not in text and "DependencyFailed" not in text


@pytest.mark.parametrize("copied", [False, True])
def test_actor_process_ends_when_no_handle_remains(ray, Counter, copied):
    import copy
    import pickle

    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    if copied:   # copies, and a pickle made outside mpiray, do not keep the actor alive
        other, data = copy.copy(c), pickle.dumps(c)
        assert ray.get(other.pid.remote()) == pid
        del other, data
    del c
    import gc

    gc.collect()
    ray.put(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            return
    pytest.fail("the actor process outlived its last handle")


def _call_once_restarted(ray, method, timeout=30):
    """method.remote()'s value once the actor is up again: as in Ray, a call that is not
    retried fails at once (ActorUnavailableError) while its actor restarts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ray.get(method.remote(), timeout=timeout)
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _ends_within(pid, seconds=10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            return True
    return False


@pytest.mark.parametrize("kind", ["async", "threaded"])
def test_async_and_threaded_actors_end_when_no_handle_remains(ray, kind):
    @ray.remote
    class Async:
        async def pid(self):
            return os.getpid()

    @ray.remote(max_concurrency=4)
    class Threaded:
        def pid(self):
            return os.getpid()

    a = (Async if kind == "async" else Threaded).remote()
    pid = ray.get(a.pid.remote())
    del a
    import gc

    gc.collect()
    assert _ends_within(pid), "the actor process outlived its last handle"


@pytest.mark.parametrize("kind", ["sync", "async", "threaded"])
def test_ray_shutdown_hook_runs_on_a_graceful_end_only(ray, tmp_path, kind):
    """Ray's __ray_shutdown__(): run when the actor ends gracefully (no handle left,
    __ray_terminate__, exit_actor), not on ray.kill."""
    opts = {"max_concurrency": 4} if kind == "threaded" else {}

    def make(kind):
        if kind == "async":
            @ray.remote
            class A:
                def __init__(self, path):
                    self.path = path

                async def pid(self):
                    return os.getpid()

                async def bye(self):
                    ray.actor.exit_actor()

                async def __ray_shutdown__(self):
                    with open(self.path, "w") as f:
                        f.write("cleaned")
            return A

        @ray.remote
        class A:
            def __init__(self, path):
                self.path = path

            def pid(self):
                return os.getpid()

            def bye(self):
                ray.actor.exit_actor()

            def __ray_shutdown__(self):
                with open(self.path, "w") as f:
                    f.write("cleaned")
        return A

    A = make(kind).options(**opts)
    ends = {}
    for how in ("out_of_scope", "terminate", "exit_actor", "kill"):
        a = A.remote(str(tmp_path / how))
        ends[how] = ray.get(a.pid.remote())
        if how == "terminate":
            a.__ray_terminate__.remote()
        elif how == "exit_actor":
            a.bye.remote()
        elif how == "kill":
            ray.kill(a)
        del a
    import gc

    gc.collect()
    for how, pid in ends.items():
        assert _ends_within(pid), how
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exit_actor", "out_of_scope", "terminate"]
    assert all(p.read_text() == "cleaned" for p in tmp_path.iterdir())


def test_a_shutdown_hook_that_hangs_is_cut_short(fresh):
    """Ray's actor_graceful_shutdown_timeout_ms: a __ray_shutdown__ still running then is
    cut short, the actor's process ends and its CPU comes back."""
    ray = fresh
    ray.init(num_cpus=1, _system_config={"actor_graceful_shutdown_timeout_ms": 1000})

    @ray.remote(num_cpus=1)
    class Hangs:
        def pid(self):
            return os.getpid()

        def __ray_shutdown__(self):
            time.sleep(1000)

    a = Hangs.remote()
    pid = ray.get(a.pid.remote(), timeout=30)
    del a
    assert _ends_within(pid, 15)
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU") != 1.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.available_resources().get("CPU") == 1.0


def test_threaded_and_async_actors(ray):
    @ray.remote(max_concurrency=3)
    class Meet:
        def __init__(self):
            self.barrier = threading.Barrier(3, timeout=10)

        def meet(self, i):
            self.barrier.wait()
            return i

    @ray.remote
    class Async:
        def __init__(self):
            self.ev = asyncio.Event()

        async def wait_for_it(self):
            await asyncio.wait_for(self.ev.wait(), 10)
            return "released"

        async def release(self):
            self.ev.set()
            return "ok"

        async def await_ref(self, ref_list):
            return await ref_list[0]

    m = Meet.remote()
    assert ray.get([m.meet.remote(i) for i in range(3)], timeout=30) == [0, 1, 2]
    a = Async.remote()
    waiting = a.wait_for_it.remote()
    assert ray.get(a.release.remote(), timeout=30) == "ok"
    assert ray.get(waiting, timeout=30) == "released"
    assert ray.get(a.await_ref.remote([ray.put(99)]), timeout=30) == 99


def test_methods_with_a_leading_underscore_are_callable(ray):
    @ray.remote
    class Worker:
        def _reset(self):
            return "reset"

    w = Worker.remote()
    assert ray.get(w._reset.remote(), timeout=30) == "reset"
    with pytest.raises(AttributeError):
        w._missing.remote()


@pytest.mark.parametrize("kind", ["sync", "threaded", "async"])
def test_exit_actor_runs_the_actors_own_atexit_handlers(ray, tmp_path, kind):
    import atexit

    marker = tmp_path / "ran"

    @ray.remote
    class Leaving:
        def __init__(self, path):
            atexit.register(lambda: path.write_text("ran"))

        def leave(self):
            ray.actor.exit_actor()

    @ray.remote
    class LeavingAsync:
        def __init__(self, path):
            atexit.register(lambda: path.write_text("ran"))

        async def leave(self):
            ray.actor.exit_actor()

    cls = LeavingAsync if kind == "async" else Leaving
    a = cls.options(max_concurrency=4 if kind == "threaded" else None).remote(marker)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.leave.remote(), timeout=30)
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text() == "ran") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == "ran"


def test_an_async_actor_runs_hundreds_of_calls_at_once_and_recovers_them_all(ray, tmp_path):
    """Ray's default max_concurrency of an async actor is 1000: 400 calls all run at once
    (the actor queue records each, past its default 256 slots), and when the process dies
    every one of them is run again by the restarted actor."""
    gate = tmp_path / "gate"

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Many:
        def __init__(self):
            self.now = self.most = 0

        async def work(self, i, gate):
            self.now += 1
            self.most = max(self.most, self.now)
            while not gate.exists():
                await asyncio.sleep(0.01)
            self.now -= 1
            return i

        async def peak(self):
            return self.most

        def pid(self):
            return os.getpid()

    m = Many.remote()
    first = ray.get(m.pid.remote(), timeout=30)
    refs = [m.work.remote(i, gate) for i in range(400)]
    deadline = time.monotonic() + 30
    while ray.get(m.peak.remote(), timeout=30) < 400 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.get(m.peak.remote(), timeout=30) == 400
    os.kill(first, signal.SIGKILL)
    gate.write_text("1")
    assert ray.get(refs, timeout=120) == list(range(400))
    assert ray.get(m.pid.remote(), timeout=30) != first


def test_misuse_errors(ray, Counter):
    with pytest.raises(TypeError):
        Counter()
    c = Counter.remote()
    with pytest.raises(AttributeError):
        c.nope.remote()
    with pytest.raises(TypeError):
        c.incr()
    with pytest.raises(ValueError):
        ray.kill("not an actor")


def test_method_calls_are_checked_against_the_signature_at_remote(ray):
    @ray.remote
    class Methods:
        def two(self, a, b):
            return a * b

        def keywords(self, x, y=2, *, z=3):
            return x + y + z

        @staticmethod
        def static(a):
            return a

    @ray.remote
    def call_badly(handle):
        try:
            handle.two.remote(1)
        except TypeError as e:
            return str(e)

    m = Methods.remote()
    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        m.two.remote(1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        m.two.remote(1, 2, 3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        m.keywords.options(num_returns=1).remote(1, w=0)
    # the check travels with the handle into a task
    assert ray.get(call_badly.remote(m)) == "missing a required argument: 'b'"
    assert ray.get([m.two.remote(b=2, a=3), m.keywords.remote(x=1, z=0), m.static.remote(5)],
                   timeout=30) == [6, 3, 5]


def test_cancel_of_a_child_an_actor_just_returned(ray):
    """An actor method submits a task and returns its ref; the caller cancels it at once.
    The submit must reach the scheduler before the caller can hold the ref (else the
    cancel names a task the scheduler does not know yet, and is dropped)."""
    from mpiray.exceptions import TaskCancelledError

    @ray.remote(num_cpus=0)
    def slow():
        time.sleep(3)
        return "ran to the end"

    @ray.remote(num_cpus=0)
    class Maker:
        def make(self, n):
            return [slow.remote() for _ in range(n)]

    m = Maker.remote()
    ray.get(m.make.remote(0))
    outcomes = []
    for _ in range(3):
        refs = ray.get(m.make.remote(4))
        for r in refs:
            ray.cancel(r)
        for r in refs:
            try:
                outcomes.append(ray.get(r, timeout=30))
            except TaskCancelledError:
                outcomes.append("cancelled")
    assert outcomes == ["cancelled"] * len(outcomes), outcomes


def test_a_job_without_a_namespace_gets_an_anonymous_one_of_its_own(fresh):
    """As Ray: a random UUID, the same in the job's tasks, under which its named actors
    are found (and which a second job, with a new one, does not see)."""
    import uuid

    ray = fresh
    ray.init(num_cpus=1)
    namespace = ray.get_runtime_context().namespace
    assert str(uuid.UUID(namespace)) == namespace

    @ray.remote
    class Named:
        def namespace(self):
            return ray.get_runtime_context().get_namespace()

    actor = Named.options(name="mine").remote()
    assert ray.get(actor.namespace.remote()) == namespace
    assert ray.get(ray.get_actor("mine", namespace=namespace).namespace.remote()) == namespace
    assert ray.util.list_named_actors(all_namespaces=True) == [{"name": "mine", "namespace": namespace}]
    ray.shutdown()
    ray.init(num_cpus=1)
    assert ray.get_runtime_context().namespace not in ("", namespace)


def test_list_named_actors_by_namespace(fresh):
    ray = fresh
    ray.init(num_cpus=2, namespace="team")

    @ray.remote
    class Named:
        def ping(self):
            return 1

    first = Named.options(name="first").remote()
    other = Named.options(name="elsewhere", namespace="other").remote()
    anonymous = Named.remote()

    @ray.remote
    def make_one():   # named from inside a task: listed too
        keep = Named.options(name="from_task", lifetime="detached").remote()
        return ray.get(keep.ping.remote())

    assert ray.get([first.ping.remote(), other.ping.remote(), anonymous.ping.remote(),
                    make_one.remote()]) == [1, 1, 1, 1]
    assert ray.util.list_named_actors() == ["first", "from_task"]
    assert ray.util.list_named_actors(all_namespaces=True) == [
        {"name": "elsewhere", "namespace": "other"}, {"name": "first", "namespace": "team"},
        {"name": "from_task", "namespace": "team"}]
    ray.kill(first)
    deadline = time.monotonic() + 10
    while "first" in ray.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ray.util.list_named_actors() == ["from_task"]


def test_cancel_of_actor_calls_queued_running_and_async(ray):
    """As in Ray: a queued call is cancelled and never runs; a running sync call finishes
    but sees is_canceled(), and ends cancelled whatever it returns; a running async call
    is cancelled on the loop (and one that catches CancelledError ends cancelled too)."""

    @ray.remote
    class Sync:
        def __init__(self):
            self.ran = []

        def slow(self, i):
            time.sleep(1.0)
            self.ran.append(i)
            return i

        def polite(self):
            for _ in range(200):
                if ray.get_runtime_context().is_canceled():
                    return "stopped"
                time.sleep(0.02)
            return "never told"

        def log(self):
            return self.ran

    @ray.remote
    class Async:
        async def slow(self):
            await asyncio.sleep(30)
            return "finished"

        async def quick(self):
            return "quick"

        async def stubborn(self):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return "caught it"

    s = Sync.remote()
    first, queued = s.slow.remote(1), s.slow.remote(2)
    time.sleep(0.3)
    ray.cancel(queued)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(queued, timeout=30)
    assert ray.get(first, timeout=30) == 1
    assert ray.get(s.log.remote(), timeout=30) == [1]   # the cancelled call never ran

    polite = s.polite.remote()
    time.sleep(0.3)
    ray.cancel(polite)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(polite, timeout=30)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        ray.cancel(s.slow.remote(4), force=True)

    a = Async.remote()
    slow = a.slow.remote()
    time.sleep(0.3)
    start = time.monotonic()
    ray.cancel(slow)
    with pytest.raises(ray.exceptions.TaskCancelledError) as cancelled:
        ray.get(slow, timeout=30)
    # (a running async call: Ray's docs catch its cancel as RayTaskError; a queued one is plain)
    assert isinstance(cancelled.value, ray.exceptions.RayTaskError)
    assert time.monotonic() - start < 5
    assert ray.get(a.quick.remote(), timeout=30) == "quick"
    stubborn = a.stubborn.remote()
    time.sleep(0.3)
    ray.cancel(stubborn)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(stubborn, timeout=30)

    done = s.slow.remote(3)
    assert ray.get(done, timeout=30) == 3
    ray.cancel(done)   # ended already: nothing happens
    assert ray.get(done) == 3


def test_cancel_of_an_actor_call_not_started_answers_at_once(ray):
    """As Ray's owner does: a call waiting behind a long one, for its actor to be placed,
    or for its argument, raises TaskCancelledError at once (not when the actor reaches
    it), and never runs."""

    @ray.remote
    class Busy:
        def __init__(self):
            self.ran = []

        def work(self, seconds, tag):
            time.sleep(seconds)
            self.ran.append(tag)
            return tag

        def pair(self):
            self.ran.append("pair")
            return 1, 2

        def log(self):
            return self.ran

    @ray.remote
    def late(x):
        time.sleep(20)
        return x

    b = Busy.remote()
    ray.get(b.__ray_ready__.remote())
    running = b.work.remote(5, "running")
    queued = b.work.remote(0, "queued")
    first, second = b.pair.options(num_returns=2).remote()
    waits_for_arg = b.work.remote(late.remote(0), "arg")
    time.sleep(0.3)
    start = time.monotonic()
    for ref in (queued, second, waits_for_arg):
        ray.cancel(ref)
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=30)
    assert time.monotonic() - start < 3, "answered only when the actor got there"
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(first, timeout=30)   # the call's other return, when the actor skips it
    assert ray.get(running, timeout=30) == "running"
    assert ray.get(b.log.remote(), timeout=30) == ["running"]

    unplaced = Busy.options(resources={"nowhere": 1}).remote()
    call = unplaced.log.remote()
    ray.cancel(call)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(call, timeout=10)
    ray.kill(unplaced)

    # A running call is not interrupted, and is answered when it ends, as in Ray: with
    # TaskCancelledError, whatever it returned.
    busy = b.work.remote(1.0, "cancelled while running")
    time.sleep(0.3)
    ray.cancel(busy)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(busy, timeout=30)
    assert ray.get(b.log.remote(), timeout=30)[-1] == "cancelled while running"


def test_concurrency_groups_keep_one_busy_group_from_blocking_another(ray):
    """Ray's concurrency groups: the default group (max_concurrency=1 here) is busy
    waiting for an event that a call in the "signal" group sets; groups have their own
    threads (or, for async actors, their own limits), so that call still runs."""

    @ray.remote(concurrency_groups={"signal": 1, "io": 2})
    class Gate:
        def __init__(self):
            self.event = threading.Event()
            self.active = 0
            self.most = 0
            self.lock = threading.Lock()

        def wait_open(self):
            return self.event.wait(20)

        @ray.method(concurrency_group="signal")
        def open(self):
            self.event.set()
            return "opened"

        def open_plain(self):   # in the default group, unless a call says otherwise
            self.event.set()
            return "opened"

        @ray.method(concurrency_group="io")
        def io(self):
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
            time.sleep(0.3)
            with self.lock:
                self.active -= 1
            return self.most

    g = Gate.remote()
    waiting = g.wait_open.remote()
    time.sleep(0.2)
    assert ray.get(g.open.remote(), timeout=30) == "opened"
    assert ray.get(waiting, timeout=30) is True
    assert max(ray.get([g.io.remote() for _ in range(4)], timeout=30)) == 2   # io: 2 at once
    # a call may name its group itself
    g2 = Gate.remote()
    waiting = g2.wait_open.remote()
    time.sleep(0.2)
    assert ray.get(g2.open_plain.options(concurrency_group="signal").remote(), timeout=30) == "opened"
    assert ray.get(waiting, timeout=30) is True
    with pytest.raises(ValueError, match="nope"):
        ray.get(g.io.options(concurrency_group="nope").remote(), timeout=30)

    @ray.remote(concurrency_groups={"fast": 1})
    class AsyncGate:
        def __init__(self):
            self.event = asyncio.Event()

        async def wait_open(self):
            await self.event.wait()
            return "through"

        @ray.method(concurrency_group="fast")
        async def open(self):
            self.event.set()

    a = AsyncGate.options(max_concurrency=1).remote()
    waiting = a.wait_open.remote()
    time.sleep(0.2)
    ray.get(a.open.remote(), timeout=30)
    assert ray.get(waiting, timeout=30) == "through"

    with pytest.raises(ValueError, match="concurrency group 'other'"):
        @ray.remote
        class Bad:
            @ray.method(concurrency_group="other")
            def f(self):
                pass

        Bad.remote()
    with pytest.raises(ValueError, match="concurrency_groups"):
        Gate.options(concurrency_groups={"io": 0})


def test_ray_terminate_ends_the_actor_after_earlier_calls(ray):
    @ray.remote
    class Worker:
        def slow(self):
            time.sleep(0.4)
            return "done"

        def me(self):
            ctx = ray.get_runtime_context()
            return ctx.get_actor_name(), ctx.current_actor._ray_actor_id

    @ray.remote
    class AsyncWorker:
        async def slow(self):
            await asyncio.sleep(0.4)
            return "done"

    for actor in (Worker.options(name="terminated").remote(), Worker.options(max_concurrency=3).remote(),
                  AsyncWorker.remote()):
        earlier = actor.slow.remote()
        with pytest.raises(ray.exceptions.ActorDiedError):   # (as Ray's: it exits the actor)
            ray.get(actor.__ray_terminate__.remote(), timeout=30)
        assert ray.get(earlier, timeout=30) == "done"
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.slow.remote(), timeout=30)
    named = Worker.options(name="who").remote()
    assert ray.get(named.me.remote(), timeout=30) == ("who", named._ray_actor_id)
    assert ray.get_runtime_context().get_actor_name() is None


def test_dropping_the_handles_of_a_killed_actor(ray):
    """Regression: kill() closes the actor's queue at once; its last handle going before
    the death was seen pushed the end-of-calls mark onto the closed queue, and the
    driver's next call raised QueueClosed."""

    @ray.remote
    class Short:
        def ping(self):
            return 1

    for _ in range(5):
        a = Short.remote()
        ray.get(a.ping.remote())
        ray.kill(a)
        del a
        assert ray.get(Short.remote().ping.remote(), timeout=30) == 1


def test_a_busy_group_does_not_hold_back_other_groups_calls(ray):
    """Regressions: the calls waiting for one group's turn took every queue slot, so a
    call of another group was not even read; a group actor's crash lost the calls past
    max_concurrency slots (callers waited for ever); exit_actor() did not end a threaded
    actor."""

    @ray.remote(concurrency_groups={"io": 1})
    class Busy:
        @ray.method(concurrency_group="io")
        def slow(self):
            time.sleep(1.0)

        def fast(self):
            return "fast"

        def pid(self):
            return os.getpid()

        def bye(self):
            ray.actor.exit_actor()

    @ray.remote(concurrency_groups={"io": 1})
    class AsyncBusy:
        @ray.method(concurrency_group="io")
        async def slow(self):
            await asyncio.sleep(0.5)

        async def fast(self):
            return "fast"

    b = Busy.remote()
    ray.get(b.fast.remote(), timeout=30)
    slow = [b.slow.remote() for _ in range(3)]
    time.sleep(0.3)
    start = time.monotonic()
    assert ray.get(b.fast.remote(), timeout=30) == "fast"
    assert time.monotonic() - start < 0.8   # not after the slow ones
    a = AsyncBusy.remote()
    queued = [a.slow.remote() for _ in range(150)]
    time.sleep(0.3)
    assert ray.get(a.fast.remote(), timeout=10) == "fast"
    ray.kill(a)

    pid = ray.get(b.pid.remote(), timeout=30)
    more = [b.slow.remote() for _ in range(3)] + [b.fast.remote()]
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    for ref in slow + more:   # each ends (done, or the actor's death), none waits for ever
        try:
            ray.get(ref, timeout=30)
        except ray.exceptions.RayActorError:
            pass
    del queued

    c = Busy.remote()
    ray.get(c.fast.remote(), timeout=30)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(c.bye.remote(), timeout=30)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(c.fast.remote(), timeout=30)


def test_async_actor_calls_each_see_their_own_task_id(ray):
    @ray.remote
    class Interleaved:
        async def same_id_after_await(self, delay):
            before = ray.get_runtime_context().get_task_id()
            await asyncio.sleep(delay)
            return before is not None and before == ray.get_runtime_context().get_task_id()

    a = Interleaved.remote()
    assert all(ray.get([a.same_id_after_await.remote(0.2 - i * 0.02) for i in range(8)], timeout=30))


def test_actor_methods_retried_on_exceptions_when_asked(ray):
    @ray.remote(max_task_retries=3)
    class Flaky:
        def __init__(self):
            self.n = 0

        @ray.method(retry_exceptions=True)
        def decorated(self):
            self.n += 1
            if self.n < 3:
                raise ValueError("not yet")
            return self.n

        def plain(self):
            self.n += 1
            raise KeyError("always")

        def reset(self):
            self.n = 0

    @ray.remote
    class AsyncFlaky:
        def __init__(self):
            self.n = 0

        async def later(self):
            self.n += 1
            if self.n < 2:
                raise ValueError("not yet")
            return self.n

    f = Flaky.remote()
    assert ray.get(f.decorated.remote(), timeout=30) == 3
    with pytest.raises(KeyError):   # not asked: no retry
        ray.get(f.plain.remote(), timeout=30)
    ray.get(f.reset.remote())
    with pytest.raises(KeyError):
        ray.get(f.plain.options(retry_exceptions=[KeyError], max_task_retries=1).remote(), timeout=30)
    a = AsyncFlaky.remote()
    assert ray.get(a.later.options(retry_exceptions=True, max_task_retries=2).remote(), timeout=30) == 2


def test_a_wrong_number_of_returns_fails_the_call_not_the_actor(ray):
    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        @ray.method(num_returns=2)
        def two(self):
            return 5

        def incr(self):
            self.n += 1
            return self.n

    @ray.remote(num_returns=2, max_retries=0)
    def two():
        return 1

    c = Counter.remote()
    assert ray.get(c.incr.remote()) == 1
    x, _ = c.two.remote()
    with pytest.raises(ray.exceptions.RayTaskError, match="num_returns=2"):
        ray.get(x, timeout=30)
    assert ray.get(c.incr.remote(), timeout=30) == 2   # state kept: the actor lived on
    with pytest.raises(ray.exceptions.RayTaskError, match="num_returns=2"):
        ray.get(two.remote()[0], timeout=30)


def test_an_actor_dies_with_the_process_that_created_it_unless_detached(ray):
    @ray.remote(max_restarts=-1)
    class Child:
        def ping(self):
            return "hello"

    @ray.remote
    class Parent:
        def make(self, detached):
            opts = {"lifetime": "detached", "name": f"orphan-{os.getpid()}"} if detached else {}
            self.child = Child.options(**opts).remote()
            return self.child, os.getpid()

    @ray.remote
    def make_from_a_task():
        return Child.remote()

    parents = [Parent.remote(), Parent.remote()]   # (held: an actor no handle holds ends)
    child, pid = ray.get(parents[0].make.remote(False))
    kept, pid2 = ray.get(parents[1].make.remote(True))
    assert ray.get([child.ping.remote(), kept.ping.remote()], timeout=30) == ["hello"] * 2
    os.kill(pid, signal.SIGKILL)
    os.kill(pid2, signal.SIGKILL)
    with pytest.raises(ray.exceptions.RayActorError, match="owner"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ray.get(child.ping.remote(), timeout=30)
            time.sleep(0.05)
    assert ray.get(kept.ping.remote(), timeout=30) == "hello"   # detached: lives on
    ray.kill(kept)
    # a task that created an actor and ended normally: the actor lives while its handle does
    made = ray.get(make_from_a_task.remote())
    time.sleep(1.5)   # (idle task workers retire after a second)
    assert ray.get(made.ping.remote(), timeout=30) == "hello"


def test_method_retries_with_user_exception_classes_and_cancel(ray):
    """Regressions: exception classes in @method(retry_exceptions=[...]) made the actor
    unstartable (the method table went through plain pickle); a cancel did not stop a
    call that kept retrying; get_if_exists wanted constructor arguments."""

    class Transient(Exception):
        pass

    @ray.remote(max_task_retries=-1)
    class Flaky:
        def __init__(self, start):
            self.n = start

        @ray.method(retry_exceptions=[Transient])
        def settle(self):
            self.n += 1
            if self.n < 3:
                raise Transient()
            return self.n

        def forever(self):
            time.sleep(0.01)
            raise Transient()

    f = Flaky.options(name="flaky-once").remote(0)
    assert ray.get(f.settle.remote(), timeout=30) == 3
    loop = f.forever.options(retry_exceptions=True).remote()
    time.sleep(0.3)
    ray.cancel(loop)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(loop, timeout=30)
    assert Flaky.options(name="flaky-once", get_if_exists=True).remote() == f


def test_any_number_of_awaits_may_wait_and_timed_out_ones_leave_nothing_behind(ray):
    """One waiter thread serves every await (there was a pool of 32 threads, each held
    by a pending await until its object came, even after a timeout)."""

    @ray.remote
    class Gate:
        def __init__(self):
            self.ev = asyncio.Event()

        async def wait(self):
            await self.ev.wait()
            return "open"

        async def open(self):
            self.ev.set()

    @ray.remote
    class Relay:
        async def relay(self, gate):
            return await gate.wait.remote()

        async def quick(self, ref_list):
            return await ref_list[0] + 1

    @ray.remote
    def one(x):
        return x

    gate, relay = Gate.remote(), Relay.remote()

    async def driver():
        for _ in range(40):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(gate.wait.remote(), 0.02)
        assert await asyncio.wait_for(one.remote(1), 30) == 1
        assert await asyncio.gather(*[one.remote(i) for i in range(300)]) == list(range(300))

    asyncio.run(driver())
    relayed = [relay.relay.remote(gate) for _ in range(60)]    # 60 awaits inside one actor
    assert ray.get(relay.quick.remote([one.remote(41)]), timeout=30) == 42
    ray.get(gate.open.remote())
    assert ray.get(relayed, timeout=30) == ["open"] * 60


def test_an_await_pending_at_shutdown_fails_instead_of_holding_the_process(fresh):
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def slow():
        time.sleep(30)

    future = slow.remote().future()
    start = time.monotonic()
    ray.shutdown()
    assert time.monotonic() - start < 10
    with pytest.raises(ray.exceptions.RaySystemError, match="shut down"):
        future.result(timeout=5)


def test_sys_exit_in_an_actor_or_task(ray):
    """sys.exit() / sys.exit(0) in a method is the actor's intended end (no restart, as in
    Ray); sys.exit(n) is a crash with exit code n, restarted; a task's exit code is kept."""
    import sys

    @ray.remote(max_restarts=2)
    class A:
        def bye(self, code):
            sys.exit(code)

        async def bye_async(self):
            sys.exit()

        def ok(self):
            return "ok"

    a = A.remote()
    with pytest.raises(ray.exceptions.ActorDiedError, match="sys.exit.*exit code 0"):
        ray.get(a.bye.remote(0), timeout=30)
    with pytest.raises(ray.exceptions.ActorDiedError):
        ray.get(a.ok.remote(), timeout=30)

    b = A.remote()
    with pytest.raises(ray.exceptions.ActorUnavailableError, match="exit code 4"):
        ray.get(b.bye.remote(4), timeout=30)
    assert _call_once_restarted(ray, b.ok) == "ok"

    @ray.remote
    class Async:
        async def bye(self):
            sys.exit()

        async def ok(self):
            return "ok"

    c = Async.options(max_restarts=1).remote()
    with pytest.raises(ray.exceptions.ActorDiedError, match="sys.exit"):
        ray.get(c.bye.remote(), timeout=30)

    @ray.remote(max_retries=0)
    def task_exits():
        sys.exit(3)

    with pytest.raises(ray.exceptions.WorkerCrashedError, match="exit code 3"):
        ray.get(task_exits.remote(), timeout=30)


def test_every_actor_has_ray_ready_and_ray_call(ray):
    @ray.remote
    class A:
        def __init__(self, x):
            self.x = x

    @ray.remote
    class Async:
        async def f(self):
            return 1

    @ray.remote
    class Bad:
        def __init__(self):
            raise ValueError("no")

    a = A.remote(5)
    assert ray.get(a.__ray_ready__.remote(), timeout=30) is True
    assert ray.get(a.__ray_call__.remote(lambda actor, y: actor.x + y, 2), timeout=30) == 7
    assert ray.get(Async.remote().__ray_ready__.remote(), timeout=30) is True
    with pytest.raises(ray.exceptions.RayActorError, match="creation task") as info:
        ray.get(Bad.remote().__ray_ready__.remote(), timeout=30)
    assert info.value.actor_init_failed and not info.value.preempted
    assert isinstance(info.value.cause, ValueError)


def test_a_blocking_get_inside_an_async_actor_warns_once(ray, capfd):
    @ray.remote
    def one():
        return 1

    @ray.remote
    class A:
        async def blocking(self):
            return ray.get(one.remote()) + ray.get(one.remote())

    a = A.remote()
    assert ray.get([a.blocking.remote(), a.blocking.remote()], timeout=30) == [2, 2]
    deadline = time.monotonic() + 10
    err = ""
    while "blocking ray.get inside async actor" not in err and time.monotonic() < deadline:
        time.sleep(0.1)
        err += capfd.readouterr().err
    assert err.count("Using blocking ray.get inside async actor method") == 1, err


def test_an_actor_that_can_never_start_fails_its_calls_once_its_handles_go(ray):
    import gc

    @ray.remote(num_cpus=10_000)
    class Huge:
        def f(self):
            return 1

    a = Huge.remote()
    call = a.f.remote()
    del a
    gc.collect()
    with pytest.raises(ray.exceptions.ActorDiedError, match="never ran"):
        ray.get(call, timeout=30)


def test_max_pending_calls_limits_a_callers_calls_not_ended(ray):
    @ray.remote(max_pending_calls=2)
    class Slow:
        def nap(self):
            time.sleep(0.3)
            return 1

    a = Slow.remote()
    first = [a.nap.remote(), a.nap.remote()]
    with pytest.raises(ray.exceptions.PendingCallsLimitExceeded):
        a.nap.remote()
    assert ray.get(first, timeout=30) == [1, 1]
    assert ray.get(a.nap.remote(), timeout=30) == 1      # room again once they ended
    with pytest.raises(ValueError):
        Slow.options(max_pending_calls=0)


def test_an_async_actors_constructor_runs_on_its_event_loop(ray):
    """As Ray's: __init__ runs on the loop its methods run on, so it may start tasks and
    make futures there; more calls than 1000 run at once up to max_concurrency."""

    @ray.remote
    class Starts:
        def __init__(self, n):
            self.n, self.count = n, 0
            self.loop = asyncio.get_running_loop()
            self.ready = self.loop.create_future()
            self.task = asyncio.create_task(self.background())
            self.all_in = asyncio.Event()

        async def background(self):
            self.ready.set_result("started in __init__")

        async def check(self):
            return await self.ready, asyncio.get_running_loop() is self.loop

        async def gather(self):
            self.count += 1
            if self.count == self.n:
                self.all_in.set()
            await self.all_in.wait()
            return 1

    a = Starts.options(max_concurrency=3000).remote(2500)
    assert ray.get(a.check.remote(), timeout=30) == ("started in __init__", True)
    assert sum(ray.get([a.gather.remote() for _ in range(2500)], timeout=60)) == 2500


def test_an_async_actors_concurrency_groups_run_on_loops_of_their_own(ray):
    """As Ray's: a call that blocks its group's event loop (a sync sleep in an async
    method) does not hold up another group's calls, nor the default group's."""
    import threading

    @ray.remote(concurrency_groups={"slow": 1, "quick": 1})
    class Groups:
        @ray.method(concurrency_group="slow")
        async def block(self, seconds):
            time.sleep(seconds)   # (blocks this group's loop)
            return threading.current_thread().name

        @ray.method(concurrency_group="quick")
        async def quick(self):
            return threading.current_thread().name

        async def default(self):
            return threading.current_thread().name

    g = Groups.remote()
    ray.get(g.default.remote(), timeout=30)
    blocked = g.block.remote(3)
    time.sleep(0.5)
    quick = ray.get(g.quick.remote(), timeout=2)
    default = ray.get(g.default.remote(), timeout=2)
    assert len({quick, default, ray.get(blocked, timeout=30)}) == 3


def test_a_named_actor_is_freed_with_its_creators_handles_not_its_found_ones(ray, Counter):
    import gc

    made = Counter.options(name="freed-when-dropped").remote()
    pid = ray.get(made.pid.remote())
    found = ray.get_actor("freed-when-dropped")   # (weak, as in Ray)
    assert ray.get(found.pid.remote()) == pid
    del made
    gc.collect()
    assert _ends_within(pid), "a named actor outlived its creator's handles"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # (its name goes once its end is applied)
        try:
            ray.get_actor("freed-when-dropped")
            time.sleep(0.05)
        except ValueError:
            break
    else:
        pytest.fail("the freed actor's name was never released")
    again = Counter.options(name="freed-when-dropped").remote(5)   # the name is free
    assert ray.get(again.incr.remote()) == 6
    detached = Counter.options(name="kept-detached", lifetime="detached").remote()
    dpid = ray.get(detached.pid.remote())
    del detached
    gc.collect()
    assert not _ends_within(dpid, 1.0)
    ray.kill(ray.get_actor("kept-detached"))
    assert _ends_within(dpid)


def test_calls_not_retried_fail_while_their_actor_restarts_and_retried_ones_keep_order(ray, tmp_path):
    """As Ray's at-most-once default (max_task_retries=0): the calls a restartable actor
    had when its process died, running or queued, fail with ActorUnavailableError, and
    one made while it restarts fails at once. With retries they all run on the new
    instance, in the order they were made."""
    from mpiray._private.test_utils import SignalActor

    gate = SignalActor.remote()

    @ray.remote(max_restarts=1)
    class NotRetried:
        def __init__(self, gate):
            if ray.get_runtime_context().was_current_actor_reconstructed:
                ray.get(gate.wait.remote())   # the restart waits until released

        def pid(self):
            return os.getpid()

        def slow(self):
            time.sleep(30)

    a = NotRetried.remote(gate)
    pid = ray.get(a.pid.remote())
    running, queued = a.slow.remote(), a.pid.remote()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    for ref in (running, queued):
        with pytest.raises(ray.exceptions.ActorUnavailableError):
            ray.get(ref, timeout=30)
    start = time.monotonic()
    with pytest.raises(ray.exceptions.ActorUnavailableError):   # restarting: at once
        ray.get(a.pid.remote(), timeout=30)
    assert time.monotonic() - start < 10
    ray.get(gate.send.remote())
    assert _call_once_restarted(ray, a.pid) != pid

    log = tmp_path / "log"

    @ray.remote(max_restarts=1, max_task_retries=2)
    class Retried:
        def pid(self):
            return os.getpid()

        def add(self, i, seconds=0.0):
            time.sleep(seconds)
            with open(log, "a") as f:
                f.write(f"{i}\n")
            return i

    b = Retried.remote()
    pid = ray.get(b.pid.remote())
    refs = [b.add.remote(0, 2.0)] + [b.add.remote(i) for i in range(1, 5)]
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    assert ray.get(refs, timeout=60) == [0, 1, 2, 3, 4]
    assert log.read_text().split() == ["0", "1", "2", "3", "4"]   # (0 was cut short first)


def test_an_instance_attribute_does_not_hide_a_method_of_the_same_name(ray):
    @ray.remote
    class Flags:
        def __init__(self):
            self.ready = False        # (as Ray calls the class's method, not this)

        def ready(self):
            return "the method"

        @staticmethod
        def static():
            return "static"

    f = Flags.remote()
    assert ray.get([f.ready.remote(), f.static.remote()]) == ["the method", "static"]


def test_a_base_exception_from_an_actor_method_comes_back_and_the_actor_lives(ray):
    """As Ray's test_baseexceptionandgroup.py, for sync and async methods; one raised by
    the constructor is the actor's death cause."""
    class Fatal(BaseException):
        pass

    @ray.remote(max_restarts=0)
    class Survivor:
        def boom(self):
            raise Fatal("not an Exception")

        async def async_boom(self):
            raise Fatal("not an Exception either")

        def pid(self):
            return os.getpid()

    s = Survivor.remote()
    pid = ray.get(s.pid.remote())
    with pytest.raises(Fatal):
        ray.get(s.boom.remote(), timeout=30)
    with pytest.raises(Fatal):
        ray.get(s.async_boom.remote(), timeout=30)
    assert ray.get(s.pid.remote()) == pid

    @ray.remote
    class Unborn:
        def __init__(self):
            raise Fatal("in the constructor")

    with pytest.raises(ray.exceptions.ActorDiedError, match="Fatal"):
        ray.get(Unborn.remote().__ray_ready__.remote(), timeout=30)


def test_a_killed_actors_name_is_free_when_kill_returns(ray, Counter):
    for _ in range(3):
        c = Counter.options(name="killed-and-reused").remote()
        ray.get(c.incr.remote())
        ray.kill(c)
        with pytest.raises(ValueError):
            ray.get_actor("killed-and-reused")
        again = Counter.options(name="killed-and-reused").remote(10)
        assert ray.get(again.incr.remote()) == 11
        ray.kill(again)


@pytest.mark.parametrize("actions", [["raise", "exit", "raise"], ["raise", "raise", "exit"],
                                     ["exit", "raise", "raise"]])
def test_retries_on_exceptions_and_on_crashes_share_max_task_retries(ray, actions):
    """As Ray's test_method_raise_and_exit_no_over_retry: a call retried on an exception
    in its actor, then after a crash, has 1 + max_task_retries attempts in all."""
    import sys

    class Flaky(Exception):
        pass

    @ray.remote
    class Tally:
        def __init__(self):
            self.n = 0

        def next(self):
            self.n += 1
            return self.n - 1

        def count(self):
            return self.n

    @ray.remote(max_restarts=-1)
    class Trouble:
        @ray.method(retry_exceptions=[Flaky])
        def act(self, tally, actions):
            i = ray.get(tally.next.remote())
            what = actions[i] if i < len(actions) else "return"
            if what == "raise":
                raise Flaky()
            if what == "exit":
                sys.exit(1)
            return i

    tally = Tally.remote()
    with pytest.raises((Flaky, ray.exceptions.RayActorError)):
        ray.get(Trouble.remote().act.options(max_task_retries=2).remote(tally, actions), timeout=60)
    assert ray.get(tally.count.remote()) == 3


def test_a_cancelled_async_call_is_answered_after_its_clean_up(ray):
    """As Ray's: the caller's answer is what the cancelled coroutine ends with, so its
    `except asyncio.CancelledError` clean-up has run when get raises."""
    @ray.remote
    class Log:
        def __init__(self):
            self.lines = []

        def add(self, line):
            self.lines.append(line)

        def read(self):
            return self.lines

    @ray.remote
    class Worker:
        async def work(self, log):
            try:
                await log.add.remote("running")
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                await asyncio.sleep(0.3)
                await log.add.remote("cleaned up")
                raise

    log, w = Log.remote(), Worker.remote()
    ref = w.work.remote(log)
    deadline = time.monotonic() + 30
    while "running" not in ray.get(log.read.remote()) and time.monotonic() < deadline:
        time.sleep(0.02)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert ray.get(log.read.remote()) == ["running", "cleaned up"]


def test_what_a_cancelled_async_calls_clean_up_submits_is_never_cancelled(ray):
    """Ray's test_async_actor_cancel, many times: the cancel takes what the call submitted
    before it (set_running), never the clean-up's call, whichever of the cancel's watchers
    acts first (it lost that call about 1 time in 100)."""
    @ray.remote
    class Flags:
        def __init__(self):
            self.running = self.cleaned = False

        def set_running(self):
            self.running = True

        def clean(self):
            self.cleaned = True

        def state(self):
            running, cleaned = self.running, self.cleaned
            if cleaned:
                self.running = self.cleaned = False
            return running, cleaned

    @ray.remote
    class Worker:
        async def work(self, flags):
            try:
                await flags.set_running.remote()
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                await flags.clean.remote()
                raise

    flags, w = Flags.remote(), Worker.remote()
    for _ in range(100):
        ref = w.work.remote(flags)
        while not ray.get(flags.state.remote(), timeout=30)[0]:
            time.sleep(0.005)
        ray.cancel(ref)
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=30)
        assert ray.get(flags.state.remote(), timeout=30) == (True, True)


@pytest.mark.parametrize("started_in", ["method", "constructor"])
def test_exit_actor_from_an_async_actors_own_task_ends_it(ray, started_in):
    """As Ray's: exit_actor() in a task the actor's code started (not a call) still ends
    the actor, though nobody sees that task's exception."""
    @ray.remote
    class Quitter:
        def __init__(self, at_start):
            if at_start:
                self.task = asyncio.get_event_loop().create_task(self.quit_soon())

        async def quit_soon(self):
            await asyncio.sleep(0.2)
            ray.actor.exit_actor()

        async def start_quitting(self):
            self.task = asyncio.create_task(self.quit_soon())

        async def pid(self):
            return os.getpid()

    q = Quitter.remote(started_in == "constructor")
    pid = ray.get(q.pid.remote())
    if started_in == "method":
        ray.get(q.start_quitting.remote())
    assert _ends_within(pid)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(q.pid.remote(), timeout=30)


def test_a_recursive_cancel_of_an_actor_call_cancels_what_it_submitted(ray):
    """As Ray's: a task and an actor call the cancelled call started are cancelled, and
    so on down a chain of actors; what its clean-up submits after the cancel runs."""
    from mpiray._private.test_utils import SignalActor

    @ray.remote
    def child_task(gate):
        ray.get(gate.wait.remote())
        return "ran"

    @ray.remote
    class Link:
        def __init__(self, next_link=None):
            self.next_link, self.child = next_link, None

        async def run(self, gate):
            if self.next_link is None:
                await gate.wait.remote()
                return "bottom"
            self.child = self.next_link.run.remote(gate)
            return await self.child

        async def spawn(self, gate):
            self.child = child_task.remote(gate)
            return await self.child

        def child_ref(self):
            return self.child

    gate = SignalActor.remote()
    bottom = Link.remote()
    chain = [bottom, Link.remote(bottom)]
    chain.append(Link.remote(chain[-1]))
    top = chain[-1].run.remote(gate)
    spawner = Link.remote()
    spawned = spawner.spawn.remote(gate)
    deadline = time.monotonic() + 30
    while ray.get(gate.cur_num_waiters.remote()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    ray.cancel(top)
    ray.cancel(spawned)
    time.sleep(0.5)
    ray.get(gate.send.remote())
    for ref in [top, spawned] + [ray.get(link.child_ref.remote()) for link in
                                 (chain[2], chain[1], spawner)]:
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(ref, timeout=30)


def test_is_canceled_is_for_sync_actors_only(ray):
    @ray.remote
    class Async:
        async def ask(self):
            return ray.get_runtime_context().is_canceled()

    with pytest.raises(RuntimeError, match="not supported in an async actor"):
        ray.get(Async.remote().ask.remote(), timeout=30)


def test_a_restart_with_more_calls_than_its_queue_holds_retries_them_all_in_order(ray):
    """A crash with a full queue behind it: every call retries (max_task_retries=-1),
    none is failed for want of room, and the caller sees their values in order."""
    @ray.remote(max_restarts=1, max_task_retries=-1)
    class Echo:
        def echo(self, i):
            if i == 300 and not ray.get_runtime_context().was_current_actor_reconstructed:
                os._exit(1)
            return i

    e = Echo.remote()
    refs = [e.echo.remote(i) for i in range(3000)]
    assert ray.get(refs, timeout=120) == list(range(3000))


def test_kill_from_a_task_frees_the_name_and_owned_actors_die_with_their_owner(ray):
    """As Ray's: a kill made in a task has freed the name when it returns, and killing
    an actor ends the actors it created at once (their callers are told the owner died)."""
    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    @ray.remote
    def kill_and_reuse():
        Named.options(name="reused-from-a-task", lifetime="detached").remote()
        ray.kill(ray.get_actor("reused-from-a-task"))
        again = Named.options(name="reused-from-a-task", lifetime="detached").remote()
        answer = ray.get(again.ping.remote())
        ray.kill(again)
        return answer

    assert ray.get(kill_and_reuse.remote(), timeout=60) == "pong"

    @ray.remote
    class Parent:
        def make_child(self):
            self.child = Named.remote()
            return self.child

    parent = Parent.remote()
    child = ray.get(parent.make_child.remote())
    assert ray.get(child.ping.remote()) == "pong"
    ray.kill(parent)
    with pytest.raises(ray.exceptions.RayActorError, match="its owner has died"):
        ray.get(child.ping.remote(), timeout=30)
    with pytest.raises(ValueError, match="cannot be an empty string"):
        Named.options(name="").remote()
    with pytest.raises(TypeError):
        Named.options(name=1).remote()


def test_calls_made_before_a_restartable_actor_is_up_survive_its_constructor_crashes(ray):
    """As Ray's: calls wait while the actor's constructor crashes and restarts (no
    instance took them), and one made right after kill(no_restart=False) reaches the
    restarted instance."""
    @ray.remote
    class Count:
        def __init__(self):
            self.n = 0

        def next(self):
            self.n += 1
            return self.n

    @ray.remote(max_restarts=3)
    class Fragile:
        def __init__(self, count):
            if ray.get(count.next.remote()) <= 2:
                os._exit(1)

        def pid(self):
            return os.getpid()

    f = Fragile.remote(Count.remote())
    first = ray.get(f.pid.remote(), timeout=60)
    ray.kill(f, no_restart=False)
    assert ray.get(f.pid.remote(), timeout=60) != first


def test_actor_classes_handles_and_method_names_as_rays(ray):
    """dir() of an actor class and of a handle lists the actor's methods (what editors
    complete); handle.method.options(name=) names that call's task; @remote() with
    nothing in the parentheses is refused as Ray refuses it."""
    @ray.remote
    class Foo:
        def method_one(self):
            return ray.get_runtime_context().get_task_name()

    assert {n for n in dir(Foo) if not n.startswith("_")} == {"method_one", "options", "remote", "bind",
                                                              "get_or_create"}
    f = Foo.remote()
    assert [n for n in dir(f) if not n.startswith("_")] == ["method_one"]
    assert {"__ray_ready__", "__ray_terminate__"} <= set(dir(f))
    assert ray.get(f.method_one.options(name="renamed").remote(), timeout=30) == "renamed"
    assert ray.get(f.method_one.remote(), timeout=30) == "Foo.method_one"
    with pytest.raises(AssertionError, match="no arguments and no parentheses"):
        @ray.remote()
        def g():
            pass


def test_a_call_made_just_after_the_actor_was_killed_fails_and_never_hangs(ray):
    """A call pushed while the scheduler handles the actor's death is failed from the
    queue's drain, in the batch that began before the driver made its ref: the ref's hold
    must count (it was freed at once, and get() waited for ever, about 1 round in 2)."""
    import signal

    @ray.remote(max_restarts=0)
    class Victim:
        def pid(self):
            return os.getpid()

    for delay in [i * 0.002 for i in range(15)] * 2:   # (around when the death is handled)
        a = Victim.remote()
        os.kill(ray.get(a.pid.remote(), timeout=30), signal.SIGKILL)
        time.sleep(delay)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(a.pid.remote(), timeout=20)
        del a


@pytest.mark.parametrize("kind", ["sync", "threaded", "async"])
def test_exit_actor_ends_the_actor_even_when_the_method_catches_it(ray, kind):
    """As Ray's: exit_actor() raises SystemExit (AsyncioActorExit in an async actor) and
    marks the actor to exit, so a method that catches it still ends the actor, and its
    call answers RayActorError."""
    import mpiray.exceptions

    class Leaves:
        def leave(self):
            try:
                ray.actor.exit_actor()
            except BaseException as exc:  # noqa: BLE001 - what user code may do
                return type(exc).__mro__

        def ping(self):
            return "alive"

    class AsyncLeaves:
        async def leave(self):
            try:
                ray.actor.exit_actor()
            except Exception as exc:  # noqa: BLE001 - Ray's AsyncioActorExit is an Exception
                return type(exc).__mro__

        async def ping(self):
            return "alive"

    cls = ray.remote(AsyncLeaves if kind == "async" else Leaves)
    actor = cls.options(max_concurrency=4 if kind == "threaded" else None).remote()
    assert ray.get(actor.ping.remote(), timeout=60) == "alive"
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.leave.remote(), timeout=60)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.ping.remote(), timeout=60)

    @ray.remote
    class Kinds:
        def sync_kind(self):
            try:
                ray.actor.exit_actor()
            except SystemExit as exc:
                return isinstance(exc, SystemExit)

    with pytest.raises(ray.exceptions.RayActorError):   # (a SystemExit, caught: still the end)
        ray.get(Kinds.remote().sync_kind.remote(), timeout=60)
    assert issubclass(mpiray.exceptions.AsyncioActorExit, ray.exceptions.RayError)


def test_exit_actor_in_a_threaded_actor_lets_running_calls_answer(ray, tmp_path):
    """As Ray's (since its threaded-actor shutdown fix): the calls already running on other
    threads finish and deliver their values or errors; the exiting call and every later
    one get the actor's death."""
    gate = tmp_path / "go"

    @ray.remote(max_concurrency=3)
    class Threaded:
        def work(self, v):
            while not gate.exists():
                time.sleep(0.01)
            time.sleep(0.5)   # (still running when exit_actor() is called)
            if v < 0:
                raise ValueError(f"bad {v}")
            return v

        def leave(self):
            gate.touch()
            ray.actor.exit_actor()

    a = Threaded.remote()
    ok, bad = a.work.remote(1), a.work.remote(-1)
    time.sleep(0.5)
    gone = a.leave.remote()
    assert ray.get(ok, timeout=30) == 1
    with pytest.raises(ValueError, match="bad -1"):
        ray.get(bad, timeout=30)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(gone, timeout=30)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.work.remote(2), timeout=30)


def test_recursive_cancel_reaches_the_end_of_a_chain_of_async_calls_first(ray):
    """Ray's test_cancel_recursive_chain: cancel(recursive=True) of the first of four
    async actor calls, each awaiting the next, then at once the signal that lets the last
    one finish: every level is cancelled (each level marks the next call itself, so the
    cancel outruns the result coming up the chain)."""
    import asyncio

    @ray.remote(num_cpus=0)
    class Signal:
        def __init__(self):
            self.event, self.waiters = asyncio.Event(), 0

        async def wait(self):
            self.waiters += 1
            await self.event.wait()

        def send(self):
            self.event.set()

        def count(self):
            return self.waiters

    @ray.remote(num_cpus=0)
    class Link:
        def __init__(self, child=None):
            self.child, self.child_ref = child, None

        async def run(self, sig):
            if self.child is None:
                await sig.wait.remote()
                return True
            self.child_ref = self.child.run.remote(sig)
            return await self.child_ref

        def get_child_ref(self):
            return self.child_ref

    for _ in range(5):
        sig = Signal.remote()
        chain = [Link.remote()]
        for _ in range(3):
            chain.append(Link.remote(chain[-1]))
        ref = chain[-1].run.remote(sig)
        deadline = time.monotonic() + 30
        while ray.get(sig.count.remote(), timeout=30) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ray.cancel(ref, recursive=True)
        ray.get(sig.send.remote(), timeout=30)
        refs = [ref] + [ray.get(a.get_child_ref.remote(), timeout=30) for a in chain[:0:-1]]
        for r in refs:
            with pytest.raises(ray.exceptions.TaskCancelledError):
                ray.get(r, timeout=30)
        for a in chain + [sig]:
            ray.kill(a)


def test_workers_start_with_no_garbage_cycles(fresh):
    """Ray's test_python_object_leak: gc.collect() with DEBUG_SAVEALL finds nothing in a
    fresh task worker or actor (mpiray's own start-up leaves no reference cycle)."""
    import gc

    ray = fresh
    ray.init(num_cpus=1)   # (task workers no earlier test ran anything in)

    def garbage():
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            return sorted({type(o).__name__ for o in gc.garbage})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    @ray.remote
    class Sync:
        def check(self):
            return garbage()

    @ray.remote
    class Async:
        async def check(self):
            return garbage()

    assert ray.get(ray.remote(garbage).remote(), timeout=30) == []
    assert ray.get(Sync.remote().check.remote(), timeout=30) == []
    assert ray.get(Async.remote().check.remote(), timeout=30) == []


def test_a_constructor_error_is_printed_even_if_no_call_reads_it(tmp_path):
    """As Ray's worker logs it: "Exception raised in creation task: ..." reaches the
    driver's stderr, prefixed by the actor's process, whether or not a call reads it."""
    import subprocess
    import sys

    script = tmp_path / "job.py"
    script.write_text(
        "import time\nimport mpiray as ray\nray.init(num_cpus=1)\n\n"
        "@ray.remote\nclass A:\n    def __init__(self):\n        raise ValueError('boom in init')\n\n"
        "a = A.remote()\ntime.sleep(2)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 0, proc.stderr
    assert "(A pid=" in proc.stderr and "Exception raised in creation task: The actor died " \
        "because of an error raised in its creation task" in proc.stderr, proc.stderr
    assert "ValueError: boom in init" in proc.stderr


def test_allow_out_of_order_execution_runs_ready_calls_first(fresh):
    """A plain actor runs one caller's calls in order, the one waiting for its argument
    first; with allow_out_of_order_execution=True a ready call goes ahead. False is refused
    for async and threaded actors, which never keep that order (as Ray)."""
    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote
    def late(x):
        time.sleep(0.5)
        return x

    @ray.remote
    class Log:
        def __init__(self):
            self.seen = []

        def add(self, x):
            self.seen.append(x)

        def get(self):
            return self.seen

    for out_of_order, order in [(False, ["late", "early"]), (True, ["early", "late"])]:
        log = Log.options(allow_out_of_order_execution=out_of_order).remote()
        ray.get([log.add.remote(late.remote("late")), log.add.remote("early")], timeout=60)
        assert ray.get(log.get.remote()) == order

    @ray.remote
    class Async:
        async def get(self):
            return 1

    with pytest.raises(ValueError, match="not supported for async actors"):
        Async.options(allow_out_of_order_execution=False).remote()
    with pytest.raises(ValueError, match="threaded"):
        Log.options(max_concurrency=2, allow_out_of_order_execution=False).remote()
    assert ray.get(Async.options(allow_out_of_order_execution=True).remote().get.remote()) == 1


def test_small_actor_apis_as_rays(ray):
    """ActorClass keeps its class's module; current_actor outside an actor is Ray's
    RuntimeError; an unknown method option is refused; ActorPool's queue and idle list
    have Ray's names; ObjectRef._on_completed calls back with the value or the error."""
    import threading

    from mpiray.util import ActorPool

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

        def fail(self):
            raise KeyError("no")

    assert Echo.__module__ == __name__ and Echo.__qualname__.endswith("Echo")
    with pytest.raises(RuntimeError, match="only available in an actor"):
        ray.get_runtime_context().current_actor
    echo = Echo.remote()
    with pytest.raises(ValueError, match="no_such_option"):
        echo.echo.options(no_such_option=1)
    assert ray.get(echo.echo.options(enable_task_events=False).remote(3)) == 3
    pool = ActorPool([echo])
    pool.submit(lambda a, v: a.echo.remote(v), 1)
    pool.submit(lambda a, v: a.echo.remote(v), 2)
    assert len(pool._pending_submits) == 1 and pool._idle_actors == []
    assert [pool.get_next(), pool.get_next()] == [1, 2]
    got, done = [], threading.Event()
    for ref in (echo.echo.remote("value"), echo.fail.remote()):
        ref._on_completed(lambda v: (got.append(v), len(got) == 2 and done.set()))
    assert done.wait(30)
    assert "value" in got and any(isinstance(v, KeyError) for v in got)


def test_a_queued_or_waiting_actor_call_cancelled_is_a_plain_task_cancelled_error(ray):
    """As Ray's: not a RayTaskError, which `except RayTaskError` would take for the
    method's own failure."""
    @ray.remote
    class Slow:
        def slow(self, s):
            time.sleep(s)
            return s

    @ray.remote
    def later():
        time.sleep(5)

    actor = Slow.remote()
    ray.get(actor.slow.remote(0))
    running = actor.slow.remote(1.0)
    queued = actor.slow.remote(0)
    waiting = actor.slow.remote(later.remote())
    ray.cancel(queued)
    ray.cancel(waiting)
    for ref in (queued, waiting):
        with pytest.raises(ray.exceptions.TaskCancelledError) as info:
            ray.get(ref, timeout=60)
        assert not isinstance(info.value, ray.exceptions.RayTaskError)
    assert ray.get(running, timeout=60) == 1.0


def test_a_methods_invocation_decorator_wraps_the_call_at_the_caller(ray):
    """Ray's __ray_invocation_decorator__: .remote(*args, **kwargs) goes through it as
    decorator(invoke)(args, kwargs), in the caller, through handles passed on too."""
    def invoke_twice_the_first(invoke):
        def call(args, kwargs):
            return invoke([args[0], args[0]], {}), kwargs
        return call

    def adds_two(f):
        def method(self, b, c):
            return f(self, b + c)
        method.__ray_invocation_decorator__ = invoke_twice_the_first
        return method

    @ray.remote
    class Plus:
        @adds_two
        def plus_one(self, x):
            return x + 1

        def plain(self, x):
            return x

    actor = Plus.remote()
    ref, extra = actor.plus_one.remote(3, kwarg=3)
    assert ray.get(ref, timeout=60) == 7 and extra == {"kwarg": 3}
    ref, _ = actor.plus_one.options(name="renamed").remote(5)
    assert ray.get(ref, timeout=60) == 11

    @ray.remote
    def through(handle):
        ref, _ = handle.plus_one.remote(1)
        return ray.get(ref), ray.get(handle.plain.remote(2))

    assert ray.get(through.remote(actor), timeout=60) == (3, 2)


def test_a_functions_invocation_decorator_wraps_the_call_at_the_caller(ray):
    """As Ray's test_decorated_function: a remote function's __ray_invocation_decorator__
    wraps .remote() (and .options().remote()) as decorator(invoke)(args, kwargs)."""
    def f(a, b, c, d=None):
        return a, b, c, d

    f.__ray_invocation_decorator__ = \
        lambda invoke: (lambda args, kwargs: (invoke(args[::-1], {"d": 5}), kwargs))
    remote_f = ray.remote(f)
    ref, kwargs = remote_f.remote(1, 2, 3, d=4)
    assert kwargs == {"d": 4} and ray.get(ref, timeout=60) == (3, 2, 1, 5)
    ref, _ = remote_f.options(name="renamed").remote(1, 2, 3)
    assert ray.get(ref, timeout=60) == (3, 2, 1, 5)
    with pytest.raises(ValueError, match="needs to have length"):   # (Ray's words for an id)
        ray.ObjectRef(b"0" * 24)



def _threads_by_name():
    import collections

    names = collections.Counter()
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{tid}/comm") as f:
                names[f.read().strip()] += 1
        except OSError:
            pass   # (a thread that ended while we looked)
    return names


def test_actor_threads_do_not_grow_under_load(ray):
    """As Ray's test_actor_bounded_threads: a threaded or async actor (with concurrency
    groups too) has all its threads from the start; many callers add none."""

    @ray.remote
    def fib(actor, i, method):
        if i < 2:
            return 1
        return ray.get(getattr(actor, method).remote(fib.remote(actor, i - 1, method),
                                                     fib.remote(actor, i - 2, method)))

    @ray.remote
    class Threaded:
        def threads(self):
            return _threads_by_name()

        def add(self, i, j):
            return i + j

    @ray.remote
    class Async:
        async def threads(self):
            return _threads_by_name()

        async def add(self, i, j):
            return i + j

    @ray.remote(concurrency_groups={"io": 2, "compute": 4})
    class Groups:
        async def threads(self):
            return _threads_by_name()

        @ray.method(concurrency_group="io")
        async def add(self, i, j):
            return i + j

        @ray.method(concurrency_group="compute")
        async def add_too(self, i, j):
            return i + j

    for cls, method in ((Threaded, "add"), (Async, "add"), (Groups, "add"), (Groups, "add_too")):
        actor = cls.options(max_concurrency=2).remote()
        before = ray.get(actor.threads.remote(), timeout=30)
        assert ray.get(fib.remote(actor, 7, method), timeout=60) == 21
        after = ray.get(actor.threads.remote(), timeout=30)
        assert all(n <= before.get(name, 0) for name, n in after.items()), (cls, before, after)
        ray.kill(actor)


def test_get_or_create_makes_the_named_actor_once(ray):
    """Ray's .options(name=...).get_or_create(*args): made with the first args, the same
    actor (args ignored) after; a name is required."""

    @ray.remote
    class Greeter:
        def __init__(self, value):
            self.value = value

        def hello(self):
            return self.value

    first = Greeter.options(name="greeter-once").get_or_create("Hi Alice")
    second = Greeter.options(name="greeter-once").get_or_create("Hi Dave")
    assert ray.get([first.hello.remote(), second.hello.remote()], timeout=30) == ["Hi Alice"] * 2
    named = ray.remote(name="greeter-decorated")(Greeter._cls).get_or_create("from the decorator")
    assert ray.get(named.hello.remote(), timeout=30) == "from the decorator"
    with pytest.raises(ValueError, match="name must be specified"):
        Greeter.options().get_or_create("nameless")
    ray.kill(first)
    ray.kill(named)

"""Actor calls whose arguments are not ready yet wait at their caller, not in the actor:
other callers' calls go on, one caller's calls keep their order, nothing deadlocks."""

import time

import pytest


@pytest.fixture(scope="module")
def Log(ray_module):
    @ray_module.remote
    class Log:
        def __init__(self):
            self.entries = []

        def add(self, x):
            self.entries.append(x)
            return x

        def entries_now(self):
            return list(self.entries)

    return Log


@pytest.fixture(scope="module")
def slow(ray_module):
    @ray_module.remote
    def slow(x, seconds=0.3):
        time.sleep(seconds)
        return x

    return slow


def test_an_argument_whose_task_calls_the_same_actor_does_not_deadlock(ray, Log):
    @ray.remote
    def calls_it(log):
        time.sleep(0.2)   # (its caller's next call reaches the actor first)
        return ray.get(log.add.remote("inner")) + "-done"

    log = Log.remote()
    out = log.add.remote(calls_it.remote(log))
    assert ray.get(out, timeout=20) == "inner-done"
    assert ray.get(log.entries_now.remote()) == ["inner", "inner-done"]


def test_other_callers_calls_go_past_a_call_waiting_for_its_argument(ray, Log, slow):
    @ray.remote
    def other_caller(log):
        return ray.get([log.add.remote(f"other{i}") for i in range(3)])

    log = Log.remote()
    waiting = log.add.remote(slow.remote("late", 2.0))
    assert ray.get(other_caller.remote(log), timeout=1.5) == ["other0", "other1", "other2"]
    assert ray.get(waiting, timeout=20) == "late"
    assert ray.get(log.entries_now.remote()) == ["other0", "other1", "other2", "late"]


def test_one_callers_calls_keep_their_order_behind_one_that_waits(ray, Log, slow):
    log = Log.remote()
    refs = [log.add.remote(slow.remote(i, 0.1 * (8 - i)) if i % 2 == 0 else i)
            for i in range(8)]
    assert ray.get(refs, timeout=30) == list(range(8))
    assert ray.get(log.entries_now.remote()) == list(range(8))


def test_a_failed_argument_fails_the_call_and_the_actor_lives_on(ray, Log):
    @ray.remote
    def fails():
        time.sleep(0.2)
        raise ValueError("no value")

    log = Log.remote()
    bad = log.add.remote(fails.remote())
    after = log.add.remote("after")
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(bad, timeout=20)
    assert isinstance(info.value, ValueError)
    assert ray.get(after, timeout=20) == "after"
    assert ray.get(log.entries_now.remote()) == ["after"]


def test_cancelling_a_call_that_waits_for_its_argument_lets_the_next_go(ray, Log, slow):
    log = Log.remote()
    stuck = log.add.remote(slow.remote("never", 30))
    after = log.add.remote("after")
    ray.cancel(stuck)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
        ray.get(stuck, timeout=20)
    assert ray.get(after, timeout=20) == "after"
    assert ray.get(log.entries_now.remote()) == ["after"]


def test_calls_a_task_left_waiting_still_reach_the_actor_after_it_returns(ray, Log, slow):
    @ray.remote
    def fire_and_forget(log):
        for i in range(3):
            log.add.remote(slow.remote(i, 0.2))
        return "returned"

    log = Log.remote()
    assert ray.get(fire_and_forget.remote(log), timeout=20) == "returned"
    deadline = time.monotonic() + 20
    while ray.get(log.entries_now.remote()) != [0, 1, 2] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.get(log.entries_now.remote()) == [0, 1, 2]


def test_an_async_actor_serves_other_calls_while_one_waits_for_its_argument(ray, slow):
    @ray.remote
    class Echo:
        async def echo(self, x):
            return x

    e = Echo.remote()
    waiting = e.echo.remote(slow.remote("late", 2.0))
    assert ray.get([e.echo.remote(i) for i in range(5)], timeout=1.5) == list(range(5))
    assert ray.get(waiting, timeout=20) == "late"


def test_a_ref_inside_a_container_is_not_waited_for(ray, Log, slow):
    @ray.remote
    class Holder:
        def keep(self, box):
            self.box = box
            return "kept"

        def value(self):
            return ray.get(self.box[0])

    h = Holder.remote()
    start = time.monotonic()
    assert ray.get(h.keep.remote([slow.remote("v", 1.0)]), timeout=20) == "kept"
    assert time.monotonic() - start < 0.9   # (as in Ray: only top-level refs are resolved)
    assert ray.get(h.value.remote(), timeout=20) == "v"


def test_a_threaded_actor_runs_one_callers_ready_call_past_one_that_waits(ray, slow):
    @ray.remote(max_concurrency=2)
    class Echo:
        def echo(self, x):
            return x

    e = Echo.remote()
    waiting = e.echo.remote(slow.remote("late", 2.0))
    assert ray.get(e.echo.remote(ray.put(2)), timeout=1.5) == 2
    assert ray.get(waiting, timeout=20) == "late"


def test_a_named_actors_handle_knows_how_it_orders_calls(ray, slow):
    @ray.remote
    class Echo:
        async def echo(self, x):
            return x

    keep = Echo.options(name="echo-order").remote()   # (its creator's handle keeps it)
    e = ray.get_actor("echo-order")
    waiting = e.echo.remote(slow.remote("late", 2.0))
    assert ray.get(e.echo.remote(1), timeout=1.5) == 1
    assert ray.get(waiting, timeout=20) == "late"
    ray.kill(keep)


def test_calls_beyond_what_the_actors_queue_holds_never_block_the_caller(ray):
    """As in Ray, .remote() returns at once however many calls wait: the ones the actor's
    queue cannot hold wait in the caller, in order (here the actor can only go on once
    the caller has made them all)."""
    import threading

    from mpiray._private.test_utils import SignalActor

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def hold(self, gate):
            ray.get(gate.wait.remote())

        def incr(self):
            self.n += 1
            return self.n

    gate = SignalActor.remote()
    c = Counter.remote()
    held = c.hold.remote(gate)
    refs = []
    maker = threading.Thread(target=lambda: refs.extend(c.incr.remote() for _ in range(3000)))
    maker.start()
    maker.join(timeout=60)
    assert not maker.is_alive(), ".remote() blocked on a full actor queue"
    ray.get(gate.send.remote())
    assert ray.get(refs, timeout=120) == list(range(1, 3001))
    assert ray.get(held, timeout=30) is None


def test_a_worker_ending_with_calls_waiting_for_arguments_does_not_deadlock(fresh):
    """The task whose worker ends (max_calls=1) left a call waiting for an argument that
    only that worker's CPU can make: the call goes to its actor as the worker ends."""
    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    class Log:
        def __init__(self):
            self.got = []

        def add(self, x):
            self.got.append(x)
            return x

        def read(self):
            return self.got

    @ray.remote
    def make(x):
        return x

    @ray.remote(max_calls=1)
    def fire_and_exit(log):
        log.add.remote(make.remote("made"))
        return "returned"

    log = Log.remote()
    assert ray.get(fire_and_exit.remote(log), timeout=30) == "returned"
    deadline = time.monotonic() + 30
    while ray.get(log.read.remote()) != ["made"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.get(log.read.remote()) == ["made"]


def test_a_call_waiting_for_its_argument_keeps_its_actor(ray, slow):
    """As Ray's pending calls: a caller may drop its last handle right after a call whose
    argument is not ready; the actor lives to answer it (and ends after)."""
    @ray.remote
    class Adder:
        def add(self, x):
            return x + 1

    def call(arg):
        return Adder.remote().add.remote(arg)   # (the handle goes with this frame)

    assert ray.get(call(slow.remote(1)), timeout=30) == 2
    assert ray.get([call(slow.remote(i)) for i in range(3)], timeout=30) == [1, 2, 3]

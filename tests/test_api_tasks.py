"""Tasks end to end on a real one-node runtime: values, options, nesting, errors, retries."""

import os
import re
import threading
import time

import numpy as np
import pytest


def test_task_result_and_arguments_by_value_and_ref(ray):
    @ray.remote
    def combine(a, b, *, scale=1):
        return (a + b) * scale

    ref = ray.put(40)
    assert ray.get(combine.remote(ref, 2, scale=2)) == 84
    assert ray.get([combine.remote(i, i) for i in range(10)]) == [2 * i for i in range(10)]


def test_refs_inside_containers_stay_refs(ray):
    @ray.remote
    def kinds(items):
        return [type(x).__name__ for x in items], ray.get(items)

    refs = [ray.put(i) for i in range(3)]
    assert ray.get(kinds.remote(refs)) == (["ObjectRef"] * 3, [0, 1, 2])


def test_num_returns_and_zero_returns(ray):
    @ray.remote(num_returns=3)
    def three():
        return 1, 2, 3

    @ray.remote(num_returns=0)
    def nothing():
        return None

    assert ray.get(three.remote()) == [1, 2, 3]
    assert nothing.remote() is None


def test_wrong_number_of_returns_is_a_task_error(ray):
    @ray.remote(num_returns=2)
    def one():
        return (1,)

    a, b = one.remote()
    with pytest.raises(ray.exceptions.RayTaskError, match="num_returns=2"):
        ray.get(a)


def test_recursive_tasks_do_not_deadlock_two_cpus(ray):
    @ray.remote
    def fib(n):
        return n if n < 2 else sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fib.remote(10), timeout=120) == 55


def _descendants(pid):
    """Every process below pid (its zygote, the zygote's workers), from /proc."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return []
    return children + [d for c in children for d in _descendants(c)]


def test_nested_tasks_run_deepest_first_so_workers_grow_with_depth_not_width(ray):
    """A blocked parent's CPU goes to the deepest waiting task (its children), not to the
    next of many parents: a recursion 16 deep, and 400 parents each waiting for a child,
    both finish on 2 CPUs, well under the node's 250 task workers (FIFO order started a
    worker per blocked parent and then waited for ever at 250)."""
    @ray.remote
    def fib(n):
        return n if n < 2 else sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    @ray.remote
    def child(i):
        time.sleep(0.002)
        return i

    @ray.remote
    def parent(i):
        return ray.get(child.remote(i))

    assert ray.get(fib.remote(16), timeout=120) == 987
    assert ray.get([parent.remote(i) for i in range(400)], timeout=120) == list(range(400))
    assert len(_descendants(os.getpid())) < 150   # (fib(16) alone needed 60-70 here)


def test_parents_getting_children_from_thread_pools_do_not_deadlock(ray):
    """More parents than CPUs, each waiting for its children in several threads at once:
    a wait in any of a task's threads lends its CPU, and only the last one takes it back."""
    import concurrent.futures

    @ray.remote
    def child(i):
        return i

    @ray.remote
    def parent(n):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return sum(pool.map(lambda i: ray.get(child.remote(i)), range(n)))

    assert ray.get([parent.remote(10) for _ in range(4)], timeout=60) == [45] * 4
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU") != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ray.available_resources().get("CPU") == 2   # every CPU came back, once


def test_tasks_submitted_by_a_busy_task_start_while_it_computes(ray, tmp_path):
    """A task's submits may go out in batches; one that keeps the CPU (pure Python, no
    get) must still see its children run meanwhile, the last of a burst included."""
    @ray.remote(num_cpus=0)
    def touch(path):
        open(path, "w").close()

    @ray.remote(num_cpus=1)
    def parent(paths):
        refs = [touch.remote(p) for p in paths]   # a burst: all but the first may wait
        deadline = time.monotonic() + 20
        while not all(os.path.exists(p) for p in paths):
            if time.monotonic() > deadline:
                return "children never ran while the parent computed"
        return len(refs)

    paths = [str(tmp_path / f"child-{i}") for i in range(5)]
    assert ray.get(parent.remote(paths)) == 5


def test_children_start_while_the_parent_holds_the_gil_in_c(ray, tmp_path):
    """A parent that submits a few children and then computes in one long C call that
    keeps the GIL (a builtin sum, a regex, a big-int product, numpy without a release...)
    must not hold its children back for the whole call: they were submitted before it."""
    @ray.remote(num_cpus=0)
    def touch(path):
        with open(path, "w") as f:
            f.write(repr(time.time()))

    @ray.remote(num_cpus=1)
    def parent(paths, n):
        refs = [touch.remote(p) for p in paths]   # a burst: all but the first may wait
        start = time.time()
        sum(range(n))                             # one C call: the GIL is never dropped
        end = time.time()
        ray.get(refs)
        return start, end

    ray.get(parent.remote([str(tmp_path / f"warm-{i}") for i in range(7)], 1))  # warm
    paths = [str(tmp_path / f"child-{i}") for i in range(7)]
    start, end = ray.get(parent.remote(paths, 200_000_000), timeout=120)
    if end - start < 1.0:
        pytest.skip(f"the C call took only {end - start:.2f} s here")
    began = [float(open(p).read()) for p in paths]
    late = [round(t - start, 2) for t in began if t > start + 0.5]
    assert not late, (f"children started {late} s after the parent's {end - start:.2f} s "
                      f"C call began (they were submitted before it)")


def test_wait_with_a_timeout_inside_a_task_sees_its_own_children(ray):
    @ray.remote
    def child(i):
        return i

    @ray.remote
    def parent():
        refs = [child.remote(i) for i in range(6)]
        ready, rest = ray.wait(refs, num_returns=6, timeout=30)
        return len(ready), len(rest), sorted(ray.get(ready))

    assert ray.get(parent.remote()) == (6, 0, list(range(6)))


def test_tree_reduction_inside_a_task(ray):
    @ray.remote
    def leaf(i):
        return np.full(1000, i, dtype=np.int64)

    @ray.remote
    def add(a, b):
        return a + b

    @ray.remote
    def reduce_all(n):
        refs = [leaf.remote(i) for i in range(n)]
        while len(refs) > 1:
            refs = [add.remote(refs[i], refs[i + 1]) for i in range(0, len(refs), 2)]
        return int(ray.get(refs[0])[0])

    assert ray.get(reduce_all.remote(16), timeout=120) == sum(range(16))


def test_large_argument_and_return_are_zero_copy_views(ray):
    data = np.arange(4_000_000, dtype=np.float64)  # 32 MB, goes through the store

    @ray.remote
    def echo_stats(a):
        return a, float(a.sum())

    @ray.remote(num_returns=2)
    def split(a):
        return a[:10].copy(), a

    back, total = ray.get(echo_stats.remote(data))
    assert total == float(data.sum())
    np.testing.assert_array_equal(back, data)
    assert not back.flags.writeable
    head, whole = ray.get(split.remote(data))
    assert list(head) == list(range(10)) and whole.shape == data.shape


def test_exception_is_ray_task_error_and_original_class(ray):
    class Custom(Exception):
        pass

    @ray.remote
    def fail():
        raise Custom("custom failure 17")

    with pytest.raises(Custom) as info:
        ray.get(fail.remote())
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "custom failure 17" in str(info.value)
    assert "Traceback" in info.value.traceback_str


def test_error_text_shows_the_users_frames_and_each_nested_level(ray):
    @ray.remote
    def inner():
        raise ValueError("boom from inner")

    @ray.remote
    def outer():
        return ray.get(inner.remote())

    @ray.remote
    class Broken:
        def fail(self):
            raise KeyError("from a method")

    with pytest.raises(ValueError) as info:
        ray.get(outer.remote(), timeout=30)
    text = str(info.value)
    assert __file__ in text                                    # the file, not <dynamic-code>
    assert 'raise ValueError("boom from inner")' in text       # and its source lines
    assert "return ray.get(inner.remote())" in text            # the outer task's frame too
    assert text.index("outer") < text.index("inner()") and "mpiray/core" not in text
    assert text.startswith("ray::outer() (pid=") and "Traceback (most recent" not in text
    assert "RayTaskError(ValueError): ray::inner() (pid=" in text   # Ray's nested form
    assert info.value.proctitle == "ray::outer" and info.value.actor_repr is None
    with pytest.raises(KeyError) as info:
        ray.get(Broken.remote().fail.remote(), timeout=30)
    assert 'raise KeyError("from a method")' in str(info.value)
    assert str(info.value).startswith("ray::Broken.fail() (pid=")
    assert "repr=<" in str(info.value).split("\n")[0]

    @ray.remote
    def takes(x):
        return x

    with pytest.raises(ValueError) as info:   # (the argument's error class, as Ray's)
        ray.get(takes.remote(inner.remote()), timeout=30)
    first, second = str(info.value).split("\n")[:2]
    assert first.startswith("ray::takes() (pid=")
    assert second == "  At least one of the input arguments for this task could not be computed:"
    assert "boom from inner" in str(info.value)


class FinalError(Exception):
    """Refuses subclasses (Ray's test_final_user_exception)."""

    def __init_subclass__(cls, **kwargs):
        raise TypeError("FinalError is final")


class NeedsArgsToBeMade(Exception):
    """As pydantic's ValidationError: __new__ itself wants the arguments."""

    def __new__(cls, msg, errors):
        self = super().__new__(cls, msg)
        self.errors = errors
        return self

    def __reduce__(self):
        return (NeedsArgsToBeMade, (self.args[0], self.errors))


def test_errors_whose_class_needs_arguments_or_cannot_be_subclassed(ray, caplog):
    @ray.remote(max_retries=0)
    def fail(kind):
        if kind == "group":
            raise ExceptionGroup("two failures", [ValueError("a"), TypeError("b")])
        if kind == "memory":
            raise MemoryError("too big")
        if kind == "final":
            raise FinalError("no subclass of me")
        raise NeedsArgsToBeMade("invalid", ["e1"])

    with pytest.raises(NeedsArgsToBeMade) as info:
        ray.get(fail.remote("args"))
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert info.value.errors == ["e1"]
    with pytest.raises(ExceptionGroup) as info:
        ray.get(fail.remote("group"))
    assert [str(e) for e in info.value.exceptions] == ["a", "b"]
    with pytest.raises(MemoryError) as info:
        ray.get(fail.remote("memory"))
    assert isinstance(info.value.cause, MemoryError) and "too big" in str(info.value)
    # a class that refuses subclasses: Ray's RayTaskError alone, with the cause
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(fail.remote("final"))
    assert not isinstance(info.value, FinalError) and isinstance(info.value.cause, FinalError)
    # (Ray's warning, on its module's logger: Ray's test_final_user_exception reads it so)
    assert any(r.name == "mpiray.exceptions" and "This exception is raised as RayTaskError only. "
               "You can use `ray_task_error.cause` to access the user exception." in r.getMessage()
               for r in caplog.records)


def test_error_propagates_to_dependents_without_running_them(ray, tmp_path):
    marker = tmp_path / "ran"

    @ray.remote
    def fail():
        raise KeyError("root cause")

    @ray.remote
    def after(x):
        marker.write_text("ran")
        return x

    with pytest.raises(KeyError):
        ray.get(after.remote(after.remote(fail.remote())))
    assert not marker.exists()


def test_retry_exceptions_counts_attempts(ray, tmp_path):
    counter = tmp_path / "n"

    @ray.remote(max_retries=2, retry_exceptions=[ValueError])
    def flaky():
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        if n < 2:
            raise ValueError(f"attempt {n}")
        return n

    assert ray.get(flaky.remote()) == 2
    assert counter.read_text() == "3"


def test_crashed_worker_is_replaced_and_task_retried(ray, tmp_path):
    counter = tmp_path / "n"

    @ray.remote(max_retries=1)
    def crash_first():
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        if n == 0:
            os._exit(3)
        return "second attempt"

    @ray.remote(max_retries=0)
    def crash_always():
        os._exit(4)

    assert ray.get(crash_first.remote(), timeout=60) == "second attempt"
    with pytest.raises(ray.exceptions.WorkerCrashedError, match="exit code 4"):
        ray.get(crash_always.remote(), timeout=60)

    @ray.remote
    def ok(x):
        return x

    assert ray.get([ok.remote(i) for i in range(4)], timeout=60) == [0, 1, 2, 3]


def test_a_crashed_parents_children_end_with_it_but_a_finished_ones_run_on(ray, tmp_path):
    """Ray's ownership: the tasks a process submitted die with it (running ones killed,
    queued ones dropped), so a crashed parent's child does not run on beside its retry;
    a parent that returned normally leaves its children to whoever holds their refs."""
    log = tmp_path / "log"
    log.write_text("")

    @ray.remote(num_cpus=0)
    def child(tag, seconds):
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(tag + "\n")
        return tag

    @ray.remote(max_retries=0)
    def crashes():
        child.remote("orphan", 1.5)
        child.options(num_cpus=100).remote("never placed", 0)   # (queued for ever)
        time.sleep(0.5)
        os._exit(1)

    @ray.remote
    def returns_its_child():
        return [child.remote("kept", 0.5)]

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(crashes.remote(), timeout=60)
    kept = ray.get(returns_its_child.remote(), timeout=60)[0]
    assert ray.get(kept, timeout=60) == "kept"
    time.sleep(2)
    assert log.read_text().split() == ["kept"]
    children = ray.util.state.list_tasks(filters=[("name", "=", "child")])
    assert [t for t in children if t["state"] not in ("FINISHED", "FAILED")] == []


def test_a_force_cancel_ends_a_task_that_caught_the_first_cancel(ray, tmp_path):
    """As Ray's: a task that swallows the KeyboardInterrupt of a soft cancel keeps running,
    and a later ray.cancel(force=True) still ends it (and frees its CPU)."""
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"

    @ray.remote
    def stubborn():
        started.write_text("1")
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                interrupted.write_text("1")

    ref = stubborn.remote()
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    ray.cancel(ref)
    while not interrupted.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert interrupted.exists()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)   # it caught that one and goes on
    ray.cancel(ref, force=True)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(ref, timeout=30)

    @ray.remote(num_cpus=2)
    def needs_every_cpu():
        return "ran"

    assert ray.get(needs_every_cpu.remote(), timeout=30) == "ran"


def test_cancel_pending_and_running(ray, tmp_path):
    started = tmp_path / "started"

    @ray.remote
    def spin():
        started.write_text("1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return "finished"

    running = spin.remote()
    while not started.exists():
        time.sleep(0.01)
    ray.cancel(running)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(running, timeout=30)

    @ray.remote(num_cpus=2)
    def hog():
        time.sleep(0.5)
        return "hog"

    hog_ref = hog.remote()
    pending = hog.remote()
    ray.cancel(pending)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(pending, timeout=30)
    assert ray.get(hog_ref, timeout=30) == "hog"



@pytest.mark.parametrize("force", [False, True])
def test_recursive_cancel_ends_the_tasks_the_task_submitted(ray, tmp_path, force):
    @ray.remote
    def child(path, steps):
        for i in range(steps):
            path.write_text(str(i))
            time.sleep(0.02)
        return "child done"

    @ray.remote
    def quick():
        return 1

    @ray.remote
    def parent(path, steps):
        assert ray.get([quick.remote() for _ in range(5)]) == [1] * 5   # (ended before)
        return ray.get(child.remote(path, steps))

    def started(path):
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return path.exists()

    progress = tmp_path / "recursive"
    ref = parent.remote(progress, 10_000)
    assert started(progress)
    ray.cancel(ref, force=force)            # recursive=True is Ray's default
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    time.sleep(0.3)
    seen = progress.read_text()
    time.sleep(0.3)
    assert progress.read_text() == seen     # the child stopped too

    # the children that ended long ago get no cancel mark of their own
    from mpiray.core import current

    assert not current.node().scheduler.actors.cancelled_calls

    alone = tmp_path / "not_recursive"
    ref = parent.remote(alone, 250 if force else 25)
    assert started(alone)
    ray.cancel(ref, force=force, recursive=False)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    if force:   # its worker was killed: what it submitted dies with it, as Ray's owner's
        time.sleep(0.3)
        seen = alone.read_text()
        time.sleep(0.3)
        assert alone.read_text() == seen != "249"
        return
    deadline = time.monotonic() + 30
    while alone.read_text() != "24" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert alone.read_text() == "24"        # the child ran to its end

def test_recursive_cancel_of_a_task_submitting_in_a_loop_stops_every_child(ray, tmp_path):
    """The cancel lands while the parent submits: every child it made stops (one whose
    submit had not reached the node yet included)."""
    log = tmp_path / "log"

    @ray.remote
    def child(i):
        for _ in range(200):
            with open(log, "a") as f:
                f.write(f"{i}\n")
            time.sleep(0.01)

    @ray.remote
    def parent():
        refs = []
        while True:
            refs.append(child.remote(len(refs)))

    ref = parent.remote()
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    time.sleep(1.0)
    seen = log.read_text()
    time.sleep(0.5)
    assert log.read_text() == seen     # no child runs on


def test_direct_call_and_bad_options_raise(ray):
    @ray.remote
    def f():
        return 1

    with pytest.raises(TypeError):
        f()
    with pytest.raises(ValueError, match="num_returns"):
        f.options(num_returns=-1)
    with pytest.raises(ValueError, match="Invalid option keyword"):
        f.options(no_such_option=1)
    with pytest.raises(ValueError, match="num_cpus"):
        f.options(num_cpus=-2)


def test_runtime_context_in_tasks(ray):
    @ray.remote
    def ctx():
        c = ray.get_runtime_context()
        return c.get_task_id(), c.get_task_name(), c.get_actor_id()

    tid, name, actor = ray.get(ctx.options(name="named-task").remote())
    assert isinstance(tid, str) and len(tid) == 32
    assert name == "named-task" and actor is None

    @ray.remote
    def old_form():
        return ray.get_runtime_context().get()

    got = ray.get(old_form.remote())   # (Ray's older dict: id objects, .hex() and all)
    assert got["task_id"].hex() != tid and got["job_id"].hex() == ray.get_runtime_context().get_job_id()
    assert "actor_id" not in got


def test_older_id_properties_warn_and_give_id_objects(ray):
    import warnings

    rtc = ray.get_runtime_context()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert rtc.job_id.hex() == rtc.get_job_id()
        assert rtc.node_id.hex() == rtc.get_node_id()
    assert {str(w.message) for w in caught} == {"Use get_job_id() instead",
                                                  "Use get_node_id() instead"}

    @ray.remote
    def in_a_task():
        c = ray.get_runtime_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return c.task_id.hex() == c.get_task_id(), c.task_id.job_id().hex()

    assert ray.get(in_a_task.remote()) == (True, rtc.get_job_id())


def test_task_function_name_as_rays_function_descriptor(ray):
    @ray.remote
    def fn():
        return ray.get_runtime_context().get_task_function_name()

    @ray.remote
    class Sync:
        def m(self):
            return ray.get_runtime_context().get_task_function_name()

    @ray.remote
    class Async:
        async def m(self):
            return ray.get_runtime_context().get_task_function_name()

    assert ray.get(fn.remote()) == f"{__name__}.fn"
    assert ray.get(Sync.remote().m.remote()) == f"{__name__}.Sync.m"
    # (Ray writes an async actor's methods by their qualified name)
    assert ray.get(Async.remote().m.remote()) == (
        f"{__name__}.test_task_function_name_as_rays_function_descriptor.<locals>.Async.m")


def test_workers_started_for_blocked_parents_retire_when_idle(fresh):
    """Parents blocked in get() lend their CPUs, so the node starts workers beyond
    num_cpus; once idle for a while those extra workers exit (no task is lost, and
    later work still runs)."""
    from mpiray.core import current

    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote
    def leaf(i):
        return i

    @ray.remote
    def parent(n):
        return sum(ray.get([leaf.remote(i) for i in range(n)]))

    assert ray.get([parent.remote(20) for _ in range(4)], timeout=60) == [190] * 4
    sched = current.node().scheduler
    assert sched.task_workers > 2
    deadline = time.monotonic() + 20
    while sched.task_workers > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sched.task_workers == 2
    assert ray.get([leaf.remote(i) for i in range(10)], timeout=60) == list(range(10))
    assert ray.get(parent.remote(5), timeout=60) == 10


def test_cancelling_a_task_that_waits_for_a_cpu_ends_it_at_once(fresh, tmp_path):
    """A task that has not started (every CPU busy) is cancelled at once: get() raises
    TaskCancelledError without waiting for the running task to free the CPU, even when
    the task was already queued for the next free worker (dispatched ahead)."""
    ray = fresh
    ray.init(num_cpus=1)
    gate = tmp_path / "gate"

    @ray.remote
    def hold():
        (tmp_path / "started").write_text("")
        deadline = time.monotonic() + 30  # hang guard
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return gate.exists()

    @ray.remote
    def pending():
        return "ran"

    first = hold.remote()
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second = pending.remote()
    ray.cancel(second)
    try:
        with pytest.raises(ray.exceptions.TaskCancelledError):
            ray.get(second, timeout=10)
    finally:
        gate.write_text("1")
    assert ray.get(first, timeout=60) is True


def test_api_call_made_while_the_inbox_is_drained_does_not_deadlock(fresh):
    """A user's __del__ run by a collection inside the inbox thread's drain may call the
    API: a submit and a get from there must not wait for the drain they are part of."""
    from mpiray.core import current

    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def double(x):
        return 2 * x

    from mpiray.core import protocol as P

    node = current.node()
    sched = node.scheduler
    original = sched.handle_event_lists
    inner, armed = [], [threading.current_thread()]

    def handle_then_call_the_api(lists):
        original(lists)
        # As a __del__ would, once, from the inbox thread while it drains.
        if armed and threading.current_thread() is not armed[0]:
            armed.clear()
            node.inbox.push(P.dumps([]))  # more events wait: the submit would drain them
            inner.append(ray.get(double.remote(21), timeout=20))

    sched.handle_event_lists = handle_then_call_the_api
    try:
        assert ray.get(double.remote(1), timeout=30) == 2
        deadline = time.monotonic() + 30
        while not inner and time.monotonic() < deadline:
            time.sleep(0.01)
        assert inner == [42]
    finally:
        sched.handle_event_lists = original


def test_a_failing_dispatch_does_not_kill_the_inbox_thread(fresh):
    """One bug in a dispatch must not stop the node: before the batched drain it was
    reported and the inbox thread went on; a worker's nested submits still get applied."""
    from mpiray.core import current

    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote
    def child(x):
        return x

    @ray.remote
    def parent():
        return ray.get(child.remote(7))

    assert ray.get(parent.remote(), timeout=30) == 7
    sched = current.node().scheduler
    original = sched._dispatch
    armed = [True]

    def dispatch_failing_once():
        if armed and threading.current_thread().name != "MainThread":
            armed.clear()
            raise RuntimeError("injected dispatch bug (expected in this test's output)")
        return original()

    sched._dispatch = dispatch_failing_once
    try:
        ray.get(parent.remote(), timeout=30)   # the inbox thread meets the failure here...
    except Exception:  # noqa: BLE001 - what this call sees is not the point
        pass
    assert not armed, "the injected failure never ran"
    sched._dispatch = original
    # ...and must still be there to apply a worker's nested submit
    assert ray.get([parent.remote() for _ in range(3)], timeout=30) == [7, 7, 7]


def test_task_cancelled_error_pickles_with_its_message():
    import pickle

    from mpiray.exceptions import TaskCancelledError

    err = pickle.loads(pickle.dumps(TaskCancelledError("abc")))
    assert str(err) == "Task: abc was cancelled. " and err.task_id == "abc"   # (Ray's words)


def test_what_does_not_pickle_is_named(ray):
    lock = threading.Lock()

    @ray.remote
    def takes(x):
        return 1

    @ray.remote
    def closes_over_a_lock():
        with lock:
            return 1

    with pytest.raises(TypeError, match="Could not serialize the argument <unlocked _thread.lock "
                       "object at .*> for a task or actor .*takes"):   # (Ray's words)
        takes.remote(threading.Lock())
    with pytest.raises(TypeError, match="Could not serialize the function .*closes_over_a_lock:\n") as err:
        closes_over_a_lock.remote()
    # inspect_serializability's report follows: which part does not pickle, and its parent
    assert "Serializing 'lock' <unlocked _thread.lock" in str(err.value)
    assert "lock [obj=<unlocked _thread.lock" in str(err.value)
    with pytest.raises(TypeError, match="Could not serialize the put value <unlocked _thread.lock"):
        ray.put(threading.Lock())

    # as Ray's, only a TypeError is reworded: another error a __reduce__ raises is the caller's
    class Refuses:
        def __reduce__(self):
            raise RuntimeError("not today")

    with pytest.raises(RuntimeError, match="not today"):
        ray.put(Refuses())
    with pytest.raises(RuntimeError, match="not today"):
        takes.remote(Refuses())
    # ray.cloudpickle's dumps_debug prints the report, then raises pickle's own error
    with pytest.raises(TypeError, match="cannot pickle"):
        ray.cloudpickle.dumps_debug(threading.Lock())


def test_errors_keep_their_cause_attributes_or_say_why_not(ray):
    import subprocess

    class CodedError(Exception):
        def __init__(self, msg="", code=0):
            super().__init__(msg)
            self.code = code

    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}-{b}")

    @ray.remote(max_retries=0)
    def coded():
        raise CodedError("bad", 7)

    @ray.remote(max_retries=0)
    def fails_a_command():
        subprocess.run(["false"], check=True)

    @ray.remote(max_retries=0)
    def needs_two():
        raise NeedsTwo(1, 2)

    @ray.remote(max_retries=0)
    def noted():
        error = ValueError("bad row")
        error.add_note("while parsing row 17")
        raise error

    with pytest.raises(CodedError) as info:
        ray.get(coded.remote())
    assert info.value.code == 7
    with pytest.raises(ValueError) as info:
        ray.get(noted.remote())
    assert info.value.__notes__ == ["while parsing row 17"]   # (the cause's, as Ray's)
    import copy
    import pickle

    assert copy.copy(info.value).__notes__ == pickle.loads(pickle.dumps(info.value)).__notes__
    with pytest.raises(subprocess.CalledProcessError) as info:
        ray.get(fails_a_command.remote())
    assert info.value.returncode == 1
    with pytest.raises(ray.exceptions.UnserializableException, match="unpickle") as info:
        ray.get(needs_two.remote())   # (newer Ray's class; older Ray's RaySystemError too)
    assert isinstance(info.value, ray.exceptions.RaySystemError)

    class NeedsTwoWithData(Exception):
        def __init__(self, a, b):
            super().__init__("x")
            self.data = np.zeros(1 << 18)   # (sent out of band: the other read path)

    @ray.remote(max_retries=0)
    def needs_two_with_data():
        raise NeedsTwoWithData(1, 2)

    with pytest.raises(ray.exceptions.RaySystemError, match="unpickle"):
        ray.get(needs_two_with_data.remote())


def test_a_call_that_does_not_fit_the_signature_fails_at_remote(ray):
    @ray.remote
    def f(a, b, *, c, d=1):
        return a + b + c + d

    @ray.remote
    class Holder:
        def __init__(self, x):
            self.x = x

    with pytest.raises(TypeError, match="missing a required argument: 'b'"):
        f.remote(1)
    with pytest.raises(TypeError, match="'c'"):
        f.remote(1, 2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'e'"):
        f.remote(1, 2, c=3, e=4)
    with pytest.raises(TypeError, match="multiple values for argument 'a'"):
        f.options(name="again").remote(1, a=1, b=2, c=3)
    with pytest.raises(TypeError, match="'x'"):
        Holder.remote()
    assert ray.get(f.remote(1, 2, c=3)) == 7
    assert ray.get(f.remote(*[1], b=2, c=3, d=0)) == 6


def test_signature_checks_of_positional_only_and_partials(ray):
    import functools

    def base(a, /, **kw):
        return a, kw

    g = ray.remote(base)
    with pytest.raises(TypeError, match="'a'"):
        g.remote(a=1)           # a is positional-only: the keyword goes to **kw
    assert ray.get(g.remote(1, a=2)) == (1, {"a": 2})

    def add(a, b):
        return a + b

    inc = ray.remote(functools.partial(add, b=1))
    assert ray.get(inc.remote(41)) == 42
    with pytest.raises(TypeError):
        inc.remote()


def test_a_worker_killed_while_writing_its_return_is_retried_or_fails(ray, tmp_path):
    """The half-written return goes with the dead worker: the retry writes it again, or
    the error takes its place (the getter waited for ever)."""
    tries = tmp_path / "tries"

    @ray.remote
    def dies_mid_write(first_only):
        n = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(n + 1))
        if n == 0 or not first_only:
            from mpiray.core import current

            rt = current.runtime()

            def write_half_and_die(oid, sobj):
                rt.store.create_object(oid, sobj.total_size)   # made, never sealed
                os._exit(9)

            rt.write = write_half_and_die
        return np.arange(1000)

    assert ray.get(dies_mid_write.options(max_retries=1).remote(True), timeout=60)[999] == 999
    tries.unlink()
    with pytest.raises(ray.exceptions.WorkerCrashedError, match="exit code 9"):
        ray.get(dies_mid_write.options(max_retries=0).remote(False), timeout=60)


def test_a_cancel_raises_keyboard_interrupt_in_the_task_as_rays_does(ray, tmp_path):
    """`except Exception` in the task does not swallow a cancel, `except KeyboardInterrupt`
    clean-up runs, and a task or actor method raising KeyboardInterrupt itself ends
    cancelled (not retried; the actor lives on)."""
    cleaned = tmp_path / "cleaned"

    @ray.remote
    def swallow_all(path):
        try:
            with open(path, "w"):
                pass
            time.sleep(30)
        except Exception:  # noqa: BLE001
            return "swallowed"
        except KeyboardInterrupt:
            cleaned.write_text("yes")
            raise

    started = tmp_path / "started"
    ref = swallow_all.remote(started)
    while not started.exists():
        time.sleep(0.01)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert cleaned.read_text() == "yes"

    tries = tmp_path / "tries"

    @ray.remote(max_retries=3, retry_exceptions=True)
    def interrupts():
        tries.write_text(tries.read_text() + "x" if tries.exists() else "x")
        raise KeyboardInterrupt

    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(interrupts.remote(), timeout=30)
    assert tries.read_text() == "x"

    @ray.remote
    class A:
        def interrupt(self):
            raise KeyboardInterrupt

        def pid(self):
            return os.getpid()

    a = A.remote()
    pid = ray.get(a.pid.remote())
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(a.interrupt.remote(), timeout=30)
    assert ray.get(a.pid.remote(), timeout=30) == pid


class CodedError(Exception):
    def __init__(self, message, code=7):
        super().__init__(message)
        self.code = code


def test_a_ray_error_returned_or_put_is_raised_by_get_keeping_its_class(ray):
    """As Ray's get: a value that is a RayError is raised, not returned (a caught task
    error returned by a task, or put), and keeps its class and attributes."""
    @ray.remote
    def bad():
        raise CodedError("bad")

    @ray.remote
    def catch():
        try:
            ray.get(bad.remote())
        except CodedError as e:
            return e

    with pytest.raises(CodedError) as caught:
        ray.get(catch.remote(), timeout=30)
    err = caught.value
    assert isinstance(err, ray.exceptions.RayTaskError) and err.code == 7
    with pytest.raises(CodedError) as again:
        ray.get([ray.put(err)])
    assert again.value.code == 7
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ray.put(ray.exceptions.TaskCancelledError()))
    assert isinstance(ray.get(ray.put(ValueError("a plain error is a value"))), ValueError)


def test_a_get_of_many_fails_as_soon_as_one_is_an_error(ray):
    """As Ray's: whatever the get still waits for, with or without a timeout; from the
    driver and from a task."""
    @ray.remote(num_cpus=0)
    def slow(seconds):
        time.sleep(seconds)
        return seconds

    @ray.remote
    def fails(after):
        time.sleep(after)
        raise CodedError("first to fail")

    @ray.remote(num_cpus=0)
    def gets_both(slow_one):   # (in a list: a ref inside an argument stays a ref)
        ray.get([slow_one[0], fails.remote(0.5)])

    slow_ones = [slow.remote(20) for _ in range(3)]
    for call in (lambda: ray.get([slow_ones[0], fails.remote(0.5)]),
                 lambda: ray.get([slow_ones[1], fails.remote(0.5)], timeout=10),
                 lambda: ray.get(gets_both.remote([slow_ones[2]]))):
        start = time.monotonic()
        with pytest.raises(CodedError):
            call()
        assert time.monotonic() - start < 8, "waited for the slow one"
    assert ray.get([slow.remote(0) for _ in range(100)]) == [0] * 100
    for ref in slow_ones:
        ray.cancel(ref, force=True)


def _slowly_rebuilt(value):
    time.sleep(1.0)
    return value


class _SlowToLoad:
    def __reduce__(self):
        return (_slowly_rebuilt, ("loaded",))


def test_a_task_cancelled_while_its_arguments_load_does_not_start(ray, tmp_path):
    """Its worker is loading a big (or, here, slow) argument when the cancel comes: the
    task ends cancelled without its function running (under MPI an argument fetched
    from another node takes seconds, and the task then ran)."""
    ran = tmp_path / "ran"

    @ray.remote
    def uses(arg):
        ran.write_text(arg)
        return arg

    arg = ray.put(_SlowToLoad())
    ref = uses.remote(arg)
    time.sleep(0.4)
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    time.sleep(1.0)
    assert not ran.exists()


def test_a_base_exception_that_is_not_an_exception_comes_back_as_the_error(ray, tmp_path):
    """As Ray's test_baseexceptionandgroup.py: the caller gets it (a RayTaskError and an
    instance of the user's class), the task is not run again, the worker lives on."""
    class Fatal(BaseException):
        pass

    runs = tmp_path / "runs"

    @ray.remote(max_retries=1)
    def boom():
        with open(runs, "a") as f:
            f.write("x")
        raise Fatal("not an Exception")

    with pytest.raises(Fatal) as info:
        ray.get(boom.remote(), timeout=60)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert runs.read_text() == "x"

    @ray.remote
    def group():
        raise BaseExceptionGroup("base group", [BaseException("inner")])  # noqa: F821

    with pytest.raises(ray.exceptions.RayTaskError, match="base group"):
        ray.get(group.remote(), timeout=60)


def test_an_error_that_cannot_be_pickled_keeps_its_text_and_says_so(ray):
    """As Ray's test_unserializable_exception: the traceback text comes home; the cause
    is a RayError saying the original isn't serializable."""
    import threading

    class Locked(Exception):
        def __init__(self):
            super().__init__("holds a lock")
            self.lock = threading.Lock()

    @ray.remote
    def fails():
        raise Locked()

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(fails.remote(), timeout=60)
    assert isinstance(info.value.cause, ray.exceptions.RayError)
    assert "isn't serializable" in str(info.value.cause)
    text = str(info.value)
    assert text.startswith("ray::fails()") and "raise Locked()" in text and "\\n" not in text


def test_option_errors_and_oversized_definitions_as_rays(ray, monkeypatch):
    """Ray's option checks, in its words; a function or actor class whose pickle reaches
    RAY_FUNCTION_SIZE_ERROR_THRESHOLD (a large array captured by mistake) is refused when
    first called; ray.ObjectID is ObjectRef."""
    def f():
        return 1

    class A:
        pass

    for opts, text in ((dict(max_calls=-1), "The keyword 'max_calls' only accepts None, 0 or a positive integer"),
                       (dict(num_returns=-1), "The keyword 'num_returns' only accepts None, a non-negative integer, "
                        "or \"dynamic\""),
                       (dict(max_retries=-5), "The keyword 'max_retries' only accepts None, 0, -1 or a positive integer, where -1 represents infinity."),
                       (dict(num_gpus=1e-7), "The precision of the fractional quantity of resource num_gpus cannot go beyond 0.0001")):
        with pytest.raises(ValueError, match=re.escape(text)):
            ray.remote(**opts)(f)
    with pytest.raises(ValueError, match=re.escape("The keyword 'max_restarts' only accepts None, 0, -1")):
        ray.remote(max_restarts=-5)(A)
    # (Ray's _default_options: what @remote was given)
    assert ray.remote(num_gpus=2)(f)._default_options == {"num_gpus": 2}
    assert ray.remote(num_cpus=1)(A)._default_options == {"num_cpus": 1}

    monkeypatch.setenv("RAY_FUNCTION_SIZE_ERROR_THRESHOLD", str(2 * 1024 * 1024))
    big = bytes(3 * 1024 * 1024)

    @ray.remote
    def captures():
        return len(big)

    @ray.remote
    class Captures:
        def size(self):
            return len(big)

    with pytest.raises(ValueError, match="The remote function .*captures is too large"):
        captures.remote()
    with pytest.raises(ValueError, match="The actor Captures is too large"):
        Captures.remote()
    assert ray.ObjectID is ray.ObjectRef and isinstance(ray.put(1), ray.ObjectID)


def test_error_texts_are_rays():
    """The fixed sentences of Ray's exceptions, which users' code and logs match on."""
    from mpiray import exceptions as E

    assert str(E.TaskPlacementGroupRemoved()) == \
        "The placement group corresponding to this task has been removed."
    assert str(E.RuntimeEnvSetupError("boom")) == "Failed to set up runtime environment.\nboom"
    assert str(E.TaskUnschedulableError("x")) == "The task is not schedulable: x"
    assert str(E.ActorUnschedulableError("x")) == "The actor is not schedulable: x"
    assert str(E.TaskCancelledError()) == ""
    assert str(E.LocalRayletDiedError()).startswith("The task's local raylet died.")
    assert issubclass(E.AuthenticationError, E.RayError)
    import pickle

    again = pickle.loads(pickle.dumps(E.TaskUnschedulableError("why")))
    assert str(again) == "The task is not schedulable: why" and again.error_message == "why"


def test_get_timeout_text_is_rays(ray):
    @ray.remote
    def slow():
        time.sleep(5)

    with pytest.raises(ray.exceptions.GetTimeoutError, match=re.escape("Get timed out: some object(s) not ready.")):
        ray.get(slow.remote(), timeout=0.1)


def test_a_function_whose_module_workers_cannot_import_fails_as_rays(fresh, tmp_path, monkeypatch):
    """A module only the driver can import (its directory put on sys.path after init):
    the task fails with RayTaskError, a RuntimeError ("failed to import on the worker");
    the actor with ActorDiedError saying so. The worker lives on."""
    ray = fresh
    ray.init(num_cpus=1)
    (tmp_path / "only_in_driver.py").write_text("def f():\n    return 1\n\nclass Base:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_in_driver

    @ray.remote
    def uses():
        return only_in_driver.f()

    @ray.remote
    class Derived(only_in_driver.Base):
        def ping(self):
            return 1

    with pytest.raises(RuntimeError, match="The remote function failed to import on the worker") as err:
        ray.get(uses.remote(), timeout=60)
    assert isinstance(err.value, ray.exceptions.RayTaskError)
    assert "No module named 'only_in_driver'" in str(err.value)
    with pytest.raises(ray.exceptions.ActorDiedError, match="The actor with name Derived failed to import"):
        ray.get(Derived.remote().ping.remote(), timeout=60)

    @ray.remote
    def fine():
        return 2

    assert ray.get(fine.remote(), timeout=60) == 2


def test_a_cancelled_task_is_not_retried_whatever_its_clean_up_raises(ray, tmp_path):
    """A task whose code turns the cancel's KeyboardInterrupt into an error that
    retry_exceptions matches ends at once with that error (it ran forever, retried)."""
    started = tmp_path / "started"

    @ray.remote(retry_exceptions=True)
    def cleans_up(path):
        try:
            open(path, "w").close()
            while True:
                time.sleep(0.01)
        except KeyboardInterrupt:
            raise ValueError("interrupted while busy") from None

    ref = cleans_up.remote(str(started))
    while not started.exists():
        time.sleep(0.01)
    ray.cancel(ref)
    with pytest.raises(ValueError, match="interrupted while busy"):
        ray.get(ref, timeout=60)


def test_exception_retries_pause_as_rays_and_a_cancel_ends_the_pause(ray, tmp_path, monkeypatch):
    """As Ray 2.60 (measured): about a second between attempts that retry_exceptions
    allows, the CPU free meanwhile; MPIRAY_TASK_RETRY_DELAY_MS changes it; a task
    cancelled while it pauses ends cancelled at once."""
    log = tmp_path / "attempts"

    @ray.remote(max_retries=2, retry_exceptions=True)
    def flaky(path):
        with open(path, "a") as f:
            f.write(f"{time.time()}\n")
        raise ValueError("again")

    with pytest.raises(ValueError):
        ray.get(flaky.remote(str(log)), timeout=60)
    times = [float(x) for x in log.read_text().split()]
    assert len(times) == 3 and all(b - a >= 0.8 for a, b in zip(times, times[1:])), times

    monkeypatch.setenv("MPIRAY_TASK_RETRY_DELAY_MS", "30000")
    paused = flaky.remote(str(tmp_path / "paused"))
    while not (tmp_path / "paused").exists():
        time.sleep(0.01)
    time.sleep(0.2)
    start = time.monotonic()
    ray.cancel(paused)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(paused, timeout=20)
    assert time.monotonic() - start < 15   # (not the 30 s pause)
    assert len((tmp_path / "paused").read_text().split()) == 1   # (never ran again)


def test_threads_a_task_starts_see_its_task(ray):
    """As Ray's: a thread the task starts has its task id, and what it submits is the
    task's child (cancelled with it)."""
    import threading

    @ray.remote
    def child():
        return ray.get_runtime_context().get_task_id()

    @ray.remote
    def parent():
        seen = []

        def run():
            seen.append((ray.get_runtime_context().get_task_id(), ray.get(child.remote())))

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return ray.get_runtime_context().get_task_id(), seen[0]

    me, (in_thread, its_child) = ray.get(parent.remote(), timeout=60)
    assert in_thread == me and its_child not in (None, me)


def test_a_segfaulting_task_prints_its_stack_and_fails_as_rays(ray, capfd):
    """As Ray's test_segfault_stack_trace: the worker's faulthandler prints the Python
    stack of a crash, and get raises WorkerCrashedError in Ray's words."""

    @ray.remote(max_retries=0)
    def crash():
        import ctypes

        ctypes.string_at(0)

    with pytest.raises(ray.exceptions.WorkerCrashedError, match="The worker died unexpectedly"):
        ray.get(crash.remote(), timeout=60)
    deadline = time.monotonic() + 10
    err = ""
    while "Fatal Python error: Segmentation fault" not in err and time.monotonic() < deadline:
        time.sleep(0.1)
        err += capfd.readouterr().err
    assert "Fatal Python error: Segmentation fault" in err, err[-2000:]


def test_force_cancel_ends_a_task_stuck_in_c_code(ray):
    """A task that never returns to Python's bytecode loop (a long C call) cannot run the
    worker's signal handler: the node kills its worker, as Ray's does, and get raises
    TaskCancelledError; the CPU is free again after."""
    import itertools

    @ray.remote(max_retries=3)
    def stuck():
        return sum(itertools.repeat(1, 10**12))

    @ray.remote
    def one():
        return 1

    ref = stuck.remote()
    time.sleep(1.0)
    ray.cancel(ref, force=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert ray.get([one.remote() for _ in range(4)], timeout=30) == [1] * 4

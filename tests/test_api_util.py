"""mpiray.util: ActorPool, Queue and the multiprocessing Pool on a live runtime."""

import os
import time

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


def test_actor_pool_drops_an_actor_that_died(ray):
    """As Ray's pool: an actor whose call raised ActorDiedError leaves the pool, so what
    is submitted later runs on the actors still alive; an empty pool has nothing next."""
    import os

    from mpiray.util import ActorPool

    @ray.remote(max_restarts=0)
    class Maybe:
        def f(self, x):
            if x == 0:
                os._exit(1)
            return x

    pool = ActorPool([Maybe.remote(), Maybe.remote()])
    pool.submit(lambda a, v: a.f.remote(v), 0)
    with pytest.raises(ray.exceptions.ActorDiedError):
        pool.get_next()
    for i in range(1, 5):
        pool.submit(lambda a, v: a.f.remote(v), i)
    assert [pool.get_next() for _ in range(4)] == [1, 2, 3, 4]
    assert not pool.has_next()
    empty = ActorPool([])
    empty.submit(lambda a, v: a.f.remote(v), 1)
    assert not empty.has_next()
    with pytest.raises(StopIteration, match="No more results to get"):
        empty.get_next()


def test_actor_pool_timeouts_and_methods_with_several_returns(ray, tmp_path):
    import time

    from mpiray.util import ActorPool

    @ray.remote
    class Slow:
        def wait_for(self, path):
            while not path.exists():
                time.sleep(0.01)
            return "done"

        @ray.method(num_returns=2)
        def both(self, v):
            return v, -v

    gate = tmp_path / "open"
    pool = ActorPool([Slow.remote()])
    pool.submit(lambda a, v: a.wait_for.remote(v), gate)
    with pytest.raises(TimeoutError, match="Timed out"):
        pool.get_next(timeout=0.1)
    assert pool.has_next()                      # a plain timeout keeps the submission
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next()                  # ... ignore_if_timedout drops it
    gate.write_text("1")
    pool.submit(lambda a, v: list(a.both.remote(v)), 5)
    assert pool.get_next(timeout=30) == [5, -5]
    assert sorted(map(tuple, pool.map_unordered(lambda a, v: list(a.both.remote(v)), [1, 2]))) == \
        [(1, -1), (2, -2)]


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
    with pytest.raises(ValueError, match="nonnegative"):
        q.get_nowait_batch(-1)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    unbounded = Queue(maxsize=-1)               # as queue.Queue: below 1 is unbounded
    unbounded.put_nowait_batch(list(range(50)))
    assert unbounded.qsize() == 50 and unbounded.maxsize == -1   # (kept as given, as Ray's)
    half = Queue(maxsize=1.5)                   # (as Ray's asyncio.Queue: full at 2 items)
    half.put_nowait_batch([1, 2])
    with pytest.raises(Full):
        half.put_nowait(3)
    with pytest.raises(ValueError, match="non-negative"):
        ray.wait([], timeout=-1)   # (checked before the empty list returns, as Ray's)


def test_multiprocessing_pool(ray):
    from mpiray.util.multiprocessing import JoinableQueue, Pool

    assert JoinableQueue is __import__("multiprocessing").JoinableQueue   # (as Ray exports it)

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


def _count_init(path):
    import os

    with open(path / str(os.getpid()), "a") as f:
        f.write("x")


def test_pool_initializer_runs_once_per_worker_and_imap_is_an_iterator(ray, tmp_path):
    from multiprocessing import TimeoutError as PoolTimeout

    from mpiray.util.multiprocessing import Pool

    def sq(x):
        return x * x

    def slow(x):
        import time

        time.sleep(x)
        return x

    with Pool(2, initializer=_count_init, initargs=(tmp_path,)) as pool:
        assert pool.map(sq, range(100)) == [i * i for i in range(100)]
        runs = [p.read_text() for p in tmp_path.iterdir()]
        assert runs and all(r == "x" for r in runs)   # once in each process, not per item
        it = pool.imap(sq, range(4))
        assert it.next(timeout=30) == 0 and list(it) == [1, 4, 9]
        with pytest.raises(PoolTimeout):
            pool.imap(slow, [5]).next(timeout=0.1)


def test_node_ip_address_is_the_nodes_address_everywhere(ray):
    import ipaddress

    import mpiray

    ip = mpiray.util.get_node_ip_address()   # ray.util without importing it, as in Ray
    ipaddress.IPv4Address(ip)
    assert ray.nodes()[0]["NodeManagerAddress"] == ip
    assert ray.get(ray.remote(lambda: mpiray.util.get_node_ip_address()).remote()) == ip


def test_state_api_lists_actors_tasks_nodes_and_groups(ray):
    import time

    from mpiray.util.state import (get_actor, list_actors, list_nodes, list_placement_groups,
                                   list_tasks)

    @ray.remote
    class Member:
        def ping(self):
            return "pong"

    alive = Member.options(name="state-member").remote()
    gone = Member.remote()
    ray.get([alive.ping.remote(), gone.ping.remote()])
    ray.kill(gone)
    deadline = time.monotonic() + 10
    while get_actor(gone._actor_id)["state"] != "DEAD":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    mine = {a["actor_id"]: a for a in list_actors(limit=10_000)}
    assert mine[alive._actor_id.hex()]["state"] == "ALIVE"
    assert mine[alive._actor_id.hex()]["name"] == "state-member"
    assert mine[alive._actor_id.hex()]["pid"] > 0
    assert mine[gone._actor_id.hex()]["state"] == "DEAD"
    assert mine[gone._actor_id.hex()]["pid"] > 0   # (as Ray: a dead actor keeps its pid)
    assert isinstance(gone._actor_id, ray.ActorID) and gone._ray_actor_id == gone._actor_id
    died = mine[gone._actor_id.hex()]["death_cause"]["actor_died_error_context"]   # (Ray's shape)
    assert "ray.kill" in died["error_message"] and died["reason"] == "RAY_KILL"
    assert gone._actor_id.hex() in {a["actor_id"] for a in list_actors(filters=[("STATE", "=", "dead")])}
    alive_ids = {a["actor_id"] for a in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000)}
    assert alive._actor_id.hex() in alive_ids and gone._actor_id.hex() not in alive_ids

    @ray.remote
    def sleeper():
        time.sleep(1.0)

    refs = [sleeper.remote() for _ in range(2)]
    time.sleep(0.3)
    running = [t for t in ray.util.state.list_tasks() if t["name"].endswith("sleeper")]
    assert len(running) == 2 and all(t["state"] in ("RUNNING", "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY") for t in running)
    # (as Ray's rows: the worker running it, as list_workers names it)
    workers = {w["pid"]: w["worker_id"] for w in ray.util.state.list_workers()}
    assert all(t.worker_pid in workers and workers[t.worker_pid] == t.worker_id for t in running)
    # Ray's forms: a task's bare name, case-blind text, numbers compared as numbers
    assert len(list_tasks(filters=[("name", "=", "SLEEPER"), ("attempt_number", "=", 0)])) == 2
    assert ray.util.state.get_task(running[0]["task_id"])["func_or_class_name"] == "sleeper"
    assert alive._actor_id.hex() in {a["actor_id"] for a in list_actors(filters=[("state", "=", "alive")])}

    @ray.remote
    def from_a_task():   # (a task asks too: its node answers, in a one-node cluster)
        return ray.util.list_named_actors(), [a["name"] for a in list_actors() if a["name"]]

    assert ray.get(from_a_task.remote(), timeout=30) == (["state-member"], ["state-member"])
    assert ray.util.state.list_jobs()[0]["status"] == "RUNNING"
    ray.get(refs)
    deadline = time.monotonic() + 10   # (a worker reports a task's end a moment after its value)
    while [t for t in list_tasks() if t["name"].endswith("sleeper") and t["state"] != "FINISHED"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(list_tasks(filters=[("name", "=", "sleeper"), ("state", "=", "FINISHED")])) == 2

    @ray.remote(max_retries=1, retry_exceptions=True)
    def fails():
        raise ValueError("each attempt")

    ref = fails.remote()
    with pytest.raises(ValueError):
        ray.get(ref, timeout=30)
    deadline = time.monotonic() + 10
    while len(list_tasks(filters=[("name", "=", "fails")])) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    attempts = list_tasks(filters=[("task_id", "=", ref.task_id().hex())])
    assert sorted((t["attempt_number"], t["state"]) for t in attempts) == [(0, "FAILED"), (1, "FAILED")]
    # (Ray's error_type and error_message on FAILED rows; None on the others)
    assert all(t["error_type"] == "TASK_EXECUTION_EXCEPTION" and "each attempt" in t["error_message"]
               for t in attempts)
    assert all(t["error_type"] is None for t in list_tasks(filters=[("state", "=", "FINISHED")]))

    nodes = list_nodes()
    assert len(nodes) == 1 and nodes[0]["state"] == "ALIVE" and nodes[0]["is_head_node"]
    assert nodes[0]["labels"] == ray.nodes()[0]["Labels"] and nodes[0]["labels"]
    pg = ray.util.placement_group([{"CPU": 1}], name="state-pg")
    pg.wait(10)
    assert [g["state"] for g in list_placement_groups(filters=[("name", "=", "state-pg")])] == ["CREATED"]
    ray.util.remove_placement_group(pg)
    for op in ("~", "<"):   # (as Ray's: = and != only)
        with pytest.raises(ValueError, match="Unsupported filter predicate"):
            list_actors(filters=[("state", op, "ALIVE")])
    ray.kill(alive)

    import os
    import signal

    @ray.remote(max_restarts=-1)
    class Phoenix:
        def pid(self):
            return os.getpid()

    bird = Phoenix.remote()
    os.kill(ray.get(bird.pid.remote()), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        row = get_actor(bird._ray_actor_id)
        if row["state"] == "ALIVE" and row["num_restarts"] == 1:
            break
        assert row["state"] in ("ALIVE", "RESTARTING", "PENDING_CREATION"), row
        assert time.monotonic() < deadline, row
        time.sleep(0.02)
    ray.kill(bird)


def test_queue_async_put_and_get(ray):
    import asyncio

    from mpiray.util.queue import Empty, Full, Queue

    q = Queue(maxsize=1)

    async def main():
        await q.put_async("a")
        with pytest.raises(Full):
            await q.put_async("b", timeout=0.1)
        got = await q.get_async()
        with pytest.raises(Empty):
            await q.get_async(block=False)
        return got

    assert asyncio.run(main()) == "a"
    q.shutdown()


def test_inspect_serializability_names_the_part_that_fails(ray, capsys):
    import threading

    lock = threading.Lock()

    def uses_a_lock():
        with lock:
            return 1

    ok, failures = ray.util.inspect_serializability(uses_a_lock, name="uses_a_lock")
    assert not ok
    assert [f.name for f in failures] == ["lock"]
    assert "lock" in capsys.readouterr().out
    assert ray.util.inspect_serializability(lambda: 1) == (True, set())


def test_register_serializer_for_a_class_pickle_cannot_handle(ray):
    import threading

    class Guarded:
        def __init__(self, value):
            self.value = value
            self.lock = threading.Lock()

    from mpiray.util.serialization import register_serializer   # (Ray's module path too)

    register_serializer(Guarded, serializer=lambda g: g.value, deserializer=lambda v: Guarded(v))
    try:
        @ray.remote
        def bump(g):   # (rebuilt in the worker: the deserializer travels with the value;
            return g.value + 1, isinstance(g.lock, type(threading.Lock()))  # as in Ray,
            # a worker serializing one itself would register the class there too)

        got = ray.get(ray.put(Guarded(1)))
        assert got.value == 1 and isinstance(got.lock, type(threading.Lock()))
        assert ray.get(bump.remote(Guarded(41))) == (42, True)
    finally:
        ray.util.deregister_serializer(Guarded)
    with pytest.raises(TypeError):
        ray.put(Guarded(1))


def _pid(_):
    import os

    return os.getpid()


def _nap(x):
    import time

    time.sleep(x)
    return x


def test_pool_processes_are_actors_as_rays(ray):
    """processes bounds the work at once, maxtasksperchild gives fresh processes, errors
    come back as themselves, join() waits for the work given, terminate() ends it."""
    import time

    from mpiray.util.multiprocessing import Pool

    with Pool(processes=1) as pool:
        assert len(set(pool.map(_pid, range(6), chunksize=1))) == 1
        start = time.monotonic()
        assert pool.map(_nap, [0.3] * 3, chunksize=1) == [0.3] * 3
        assert time.monotonic() - start >= 0.85          # one process: one after another
    with Pool(processes=2, maxtasksperchild=1, ray_remote_args={"num_cpus": 0.5}) as pool:
        assert len(set(pool.map(_pid, range(6), chunksize=1))) == 6

    def bad(x):
        raise KeyError(x)

    with Pool(2) as pool:
        with pytest.raises(KeyError) as info:
            pool.map(bad, [1])
        assert type(info.value) is KeyError
        errors = []
        pool.apply_async(bad, (2,), error_callback=errors.append).wait(30)
        assert type(errors[0]) is KeyError
        late = pool.apply_async(_nap, (0.5,))
        pool.close()
        pool.join()
        assert late.ready() and late.get() == 0.5
        with pytest.raises(ValueError):
            pool.map(_pid, [1])
    pool = Pool(1)
    slow = pool.apply_async(_nap, (30,))
    pool.terminate()
    with pytest.raises(Exception):
        slow.get(timeout=30)


def test_metrics_as_rays_api(ray, tmp_path, monkeypatch):
    """ray.util.metrics: Counter, Gauge, Histogram with tags, checked as Ray checks them,
    readable in the process and written in Prometheus' text format to MPIRAY_METRICS_DIR."""
    from mpiray.util import metrics

    monkeypatch.setenv("MPIRAY_METRICS_DIR", str(tmp_path))
    monkeypatch.setattr(metrics, "_last_write", 0.0)
    c = metrics.Counter("requests", description="served", tag_keys=("route",))
    c.set_default_tags({"route": "/"})
    c.inc()
    c.inc(2.0, tags={"route": "/a"})
    g = metrics.Gauge("queue_depth", tag_keys=("q",))
    g.set(7, tags={"q": "main"})
    h = metrics.Histogram("latency_s", boundaries=[0.1, 1.0])
    for v in (0.05, 0.5, 5.0):
        h.observe(v)
    assert c.values() == {(("route", "/"),): 1.0, (("route", "/a"),): 2.0}
    assert g.values() == {(("q", "main"),): 7.0}
    assert h.values() == {(): [1.0, 1.0, 1.0, 5.55]}
    assert h.info["boundaries"] == [0.1, 1.0]
    with pytest.warns(UserWarning, match="Invalid metric name: bad-name"):
        bad = metrics.Counter("bad-name")
    bad.inc()   # (discarded, as Ray's: the job goes on)
    assert bad.values() == {}
    with pytest.raises(ValueError, match="Missing value for tag key"):
        g.set(1)
    with pytest.raises(ValueError):
        c.inc(-1)
    with pytest.raises(ValueError, match="Empty name"):
        metrics.Counter("")
    with pytest.raises(TypeError):
        metrics.Counter("x", tag_keys=["list"])
    metrics._maybe_write(force=True)
    (text,) = [p.read_text() for p in tmp_path.glob("mpiray-*.prom")]
    # (Ray's exported names: ray_ first, _total after a counter, its Component/Version labels)
    assert 'ray_requests_total{Component="core_worker",Version=' in text
    assert 'route="/a"} 2.0' in text and "# TYPE ray_latency_s histogram" in text
    assert 'ray_latency_s_bucket{Component="core_worker",Version=' in text and 'le="+Inf"} 3.0' in text
    assert "5.55" in [line.split()[-1] for line in text.splitlines() if line.startswith("ray_latency_s_sum")]

    @ray.remote
    class Counted:
        def __init__(self):
            self.calls = metrics.Counter("calls", tag_keys=("actor",))
            self.calls.set_default_tags({"actor": "counted"})

        def call(self):
            self.calls.inc()
            return self.calls.values()

    a = Counted.remote()
    ray.get(a.call.remote())
    assert ray.get(a.call.remote(), timeout=30) == {(("actor", "counted"),): 2.0}


def test_metrics_updates_within_the_write_interval_are_written_soon_after(tmp_path, monkeypatch):
    """The file is written at most once a second; an update made sooner is written once
    that second is over, not dropped."""
    from mpiray.util import metrics

    monkeypatch.setenv("MPIRAY_METRICS_DIR", str(tmp_path))
    gauge = metrics.Gauge("soon_written")
    gauge.set(1)
    metrics._maybe_write(force=True)
    gauge.set(2)   # (within the second: deferred)
    gauge.set(3)
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline and 'Version="' + __import__("mpiray").__version__ + '"} 3.0' not in \
            "".join(ln for ln in text.splitlines() if ln.startswith("ray_soon_written{")):
        time.sleep(0.1)
        text = "".join(p.read_text() for p in tmp_path.glob("mpiray-*.prom"))
    assert [ln for ln in text.splitlines() if ln.startswith("ray_soon_written{")][0].endswith(" 3.0"), text


def test_metrics_made_again_under_one_name_add_up(ray):
    """Ray's examples make a metric inside each call: one family, values added up."""
    from mpiray.util import metrics

    for _ in range(3):
        metrics.Counter("calls_again", tag_keys=("k",)).inc(tags={"k": "v"})
    assert metrics.Counter("calls_again", tag_keys=("k",)).values() == {(("k", "v"),): 3.0}
    assert metrics.prometheus_text().count("# TYPE ray_calls_again counter") == 1
    with pytest.raises(ValueError):
        metrics.Gauge("calls_again")


def test_dag_api_builds_lazy_graphs_that_execute_runs(ray):
    """Ray's DAG API: bind() builds, execute() submits (each node once per execute, refs
    passed on as refs), with inputs, actors made by the graph or live ones, options and
    several outputs."""
    from mpiray.dag import InputNode, MultiOutputNode

    @ray.remote
    def add_one(x):
        return x + 1

    @ray.remote
    def times(x, y):
        return x * y

    @ray.remote
    class Counter:
        def __init__(self, start):
            self.value = start

        def add(self, step):
            self.value += step
            return self.value

        def get(self):
            return self.value

    with InputNode() as inp:
        both = times.bind(add_one.bind(inp), add_one.options(num_cpus=0).bind(inp))
    assert ray.get(both.execute(2), timeout=30) == 9
    assert ray.get(both.execute(3), timeout=30) == 16     # again, with another input
    with InputNode() as inp:
        counter = Counter.bind(inp.start)
        outputs = MultiOutputNode([counter.add.bind(inp.step), counter.get.bind()])
    assert ray.get(outputs.execute(start=5, step=2), timeout=30) == [7, 7]   # one actor
    with InputNode() as inp:
        pair = times.bind(inp[0], inp[1])
    assert ray.get(pair.execute(6, 7), timeout=30) == 42
    assert ray.get(pair.execute([2, 3]), timeout=30) == 6    # one input: read into it
    assert ray.get(pair.options(num_cpus=0).execute(4, 5), timeout=30) == 20
    live = Counter.remote(100)
    assert ray.get(live.add.bind(5).execute(), timeout=30) == 105
    assert isinstance(Counter.bind(1).execute(), ray.actor.ActorHandle)
    a1, a2 = Counter.bind(10), Counter.bind(10)   # Ray's docs: calls bound on one actor
    a1.add.bind(2)                                  # run in bind order, read or not
    a1.add.bind(4)
    a2.add.bind(6)
    assert ray.get(times.bind(a1.get.bind(), a2.get.bind()).execute(), timeout=30) == 256
    a3 = Counter.bind(0)
    named = a3.add.bind(1).options(name="named")   # a copy is the same call: run once
    assert ray.get(MultiOutputNode([named, a3.get.bind()]).execute(), timeout=30) == [1, 1]
    a4 = Counter.bind(0)
    for _ in range(1500):                          # a long chain runs without recursing
        last = a4.add.bind(1)
    assert ray.get(last.execute(), timeout=60) == 1500
    from mpiray.dag.class_node import ClassMethodNode, ClassNode   # (Ray's module paths)
    from mpiray.dag.input_node import InputNode as InputNode2
    from mpiray.dag.output_node import MultiOutputNode as MultiOutputNode2

    assert (InputNode2, MultiOutputNode2) == (InputNode, MultiOutputNode)
    assert isinstance(a1, ClassNode) and isinstance(a1.get.bind(), ClassMethodNode)


def test_pools_follow_rays_forms(ray):
    """As Ray's: Pool's actors hold no CPU (a pool inside a pool's task does not wait for
    ever) and are up when Pool() returns; imap yields a failed item's exception; an
    ActorPool's map submits everything at once."""
    from mpiray.util.multiprocessing import Pool

    def fails_on_two(x):
        if x == 2:
            raise ValueError("two")
        return x

    def inner_pool(n):
        with Pool(1) as inner:
            return inner.map(abs, range(-n, 0))

    with Pool(2) as pool:
        assert pool.map(inner_pool, [1, 2]) == [[1], [2, 1]]
        items = list(pool.imap(fails_on_two, [1, 2, 3]))
        assert items[0] == 1 and isinstance(items[1], ValueError) and items[2] == 3

    @ray.remote
    class Doubler:
        def __init__(self):
            self.seen = 0

        def double(self, v):
            self.seen += 1
            return 2 * v

        def count(self):
            return self.seen

    doublers = [Doubler.remote() for _ in range(3)]
    results = ray.util.ActorPool(doublers).map(lambda a, v: a.double.remote(v), [1, 2, 3])
    time.sleep(0.5)   # (each actor has its value before any result was asked for)
    assert ray.get([d.count.remote() for d in doublers], timeout=30) == [1, 1, 1]
    assert list(results) == [2, 4, 6]


def test_an_actor_class_shows_its_classs_attributes(ray):
    class Base:
        LIMIT = 3

        @staticmethod
        def twice(x):
            return 2 * x

    @ray.remote
    class Child(Base):
        NAME = "child"

        def read(self):
            return Child.NAME, Child.LIMIT, Child.twice(2)

    assert (Child.NAME, Child.LIMIT, Child.twice(5)) == ("child", 3, 10)
    assert ray.get(Child.remote().read.remote(), timeout=30) == ("child", 3, 4)
    with pytest.raises(AttributeError):
        Child.missing


def test_list_tasks_shows_actor_calls_running_and_queued(ray):
    import asyncio
    import time

    from mpiray.util.state import list_tasks

    @ray.remote
    class Sync:
        def slow(self):
            time.sleep(1.5)

        def quick(self):
            return 1

    @ray.remote
    class Async:
        async def nap(self):
            await asyncio.sleep(1.5)

    s, a = Sync.remote(), Async.remote()
    ray.get(s.quick.remote())
    refs = [s.slow.remote(), s.quick.remote(), a.nap.remote(), a.nap.remote()]
    time.sleep(0.5)
    calls = {(t["name"], t["state"]) for t in list_tasks() if t["type"] == "ACTOR_TASK"}
    assert ("Sync.slow", "RUNNING") in calls and ("Sync.quick", "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY") in calls
    naps = list_tasks(filters=[("name", "=", "Async.nap"), ("state", "=", "RUNNING")])
    assert len(naps) == 2 and {t["actor_id"] for t in naps} == {a._actor_id.hex()}
    ray.get(refs)
    deadline = time.monotonic() + 10   # (an actor lets go of a call a moment after its value)
    while [t for t in list_tasks() if t["type"] == "ACTOR_TASK"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_small_ray_api_facts(fresh, tmp_path, monkeypatch):
    """Found by porting Ray's util tests: init's argument checks and context, get_actor's
    namespace check, nodes()' NodeName, the dashboard URL, an unplaced actor's node,
    Pool.imap of one non-iterable argument."""
    import os

    from mpiray.util.state import list_actors, list_nodes

    ray = fresh
    with pytest.raises(RuntimeError, match="Unknown keyword argument"):
        ray.init(num_cpus=1, not_an_option=1)
    with pytest.raises(TypeError):
        ray.init(num_cpus=1, namespace=123)
    with pytest.raises(ValueError, match="not a valid namespace"):
        ray.init(num_cpus=1, namespace="")
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    context = ray.init(num_cpus=1)
    assert context["session_dir"].startswith(str(tmp_path)) and os.path.isdir(context["session_dir"])
    with pytest.raises(TypeError):
        ray.get_actor("someone", namespace=123)
    assert ray.get_runtime_context().get_dashboard_url() == ""
    node = ray.nodes()[0]
    assert node["NodeName"] == node["NodeManagerAddress"]
    assert list_nodes()[0]["node_name"] == node["NodeName"]

    @ray.remote(num_gpus=1)
    class NeverPlaced:
        pass

    never = NeverPlaced.remote()
    row = list_actors(filters=[("actor_id", "=", never._actor_id.hex())])[0]
    assert row["state"] == "PENDING_CREATION" and row["node_id"] is None
    ray.kill(never)

    from mpiray.util.multiprocessing import Pool

    with Pool(processes=1) as pool:
        with pytest.warns(DeprecationWarning, match="non-iterable"):
            assert list(pool.imap(abs, -3)) == [3]
    ray.shutdown()
    assert not os.path.exists(context["session_dir"])


def test_state_api_objects_workers_and_summaries(fresh):
    """Ray's list_objects / list_workers / summarize_* from one node's report."""
    import os

    import numpy as np

    from mpiray.util import state

    ray = fresh
    ray.init(num_cpus=2)
    kept = ray.put(np.zeros(1000))

    @ray.remote
    def task():
        return 1

    @ray.remote
    class Actor:
        def ping(self):
            return os.getpid()

    actor = Actor.remote()
    actor_pid = ray.get(actor.ping.remote(), timeout=30)
    assert ray.get([task.remote() for _ in range(3)], timeout=30) == [1, 1, 1]
    rows = state.get_objects(kept.hex())
    assert len(rows) == 1 and rows[0]["object_size"] >= 8000
    assert rows[0]["reference_type"] == "LOCAL_REFERENCE"
    assert any(w["pid"] == actor_pid and w["actor_id"] for w in state.list_workers())
    deadline = time.monotonic() + 10
    while state.summarize_tasks()["cluster"]["summary"]["task"]["state_counts"] != {"FINISHED": 3}:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert state.summarize_actors()["cluster"]["summary"]["Actor"]["state_counts"] == {"ALIVE": 1}
    assert state.summarize_tasks()["cluster"]["total_actor_scheduled"] >= 1   # (its creation)
    alive = [w for w in state.list_workers() if w["is_alive"]]
    assert len(state.list_workers(filters=[("is_alive", "=", "1")])) == len(alive)   # (Ray's
    assert len(state.list_workers(filters=[("is_alive", "=", "True")])) == len(alive)  # forms)
    objects = state.summarize_objects()["cluster"]
    assert objects["total_objects"] >= 1 and objects["total_size_mb"] > 0
    del kept
    deadline = time.monotonic() + 10
    while state.list_objects(filters=[("object_size", "=", rows[0]["object_size"])]):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_list_workers_keeps_ended_workers_with_why_they_ended(fresh):
    """As Ray's: a worker that ended stays listed, is_alive False, with its exit type
    (ray.kill and exit_actor: INTENDED_USER_EXIT; SIGKILL: SYSTEM_ERROR; a constructor
    that raised: USER_ERROR) and its start and end times."""
    import signal

    from mpiray.util.state import list_workers

    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote
    class Proc:
        def pid(self):
            return os.getpid()

        def leave(self):
            ray.actor.exit_actor()

    @ray.remote
    class Broken:
        def __init__(self):
            raise ValueError("broken constructor")

        def pid(self):
            return os.getpid()

    killed, crashed, leaving = Proc.remote(), Proc.remote(), Proc.remote()
    pids = ray.get([killed.pid.remote(), crashed.pid.remote(), leaving.pid.remote()], timeout=60)
    before = time.time() * 1000
    ray.kill(killed)
    os.kill(pids[1], signal.SIGKILL)
    leaving.leave.remote()
    broken = Broken.remote()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(broken.pid.remote(), timeout=60)
    # (Ray's test_exit_observability: ray.kill is the system's intended exit)
    expected = {pids[0]: "INTENDED_SYSTEM_EXIT", pids[1]: "SYSTEM_ERROR", pids[2]: "INTENDED_USER_EXIT"}
    deadline = time.monotonic() + 30
    while True:
        ended = {w["pid"]: w for w in list_workers() if not w["is_alive"]}
        if set(expected) <= set(ended) and any(w["exit_type"] == "USER_ERROR" for w in ended.values()) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {pid: ended[pid]["exit_type"] for pid in expected if pid in ended} == expected
    assert "ray.kill" in ended[pids[0]]["exit_detail"] and "SIGKILL" in ended[pids[1]]["exit_detail"]
    assert "OOM" in ended[pids[1]]["exit_detail"] and "exit_actor" in ended[pids[2]]["exit_detail"]
    assert [w["exit_detail"] for w in ended.values() if w["exit_type"] == "USER_ERROR"][0].count(
        "broken constructor") >= 1
    for pid in expected:
        assert ended[pid]["start_time_ms"] <= before <= ended[pid]["end_time_ms"] <= time.time() * 1000
    alive = [w for w in list_workers() if w["is_alive"]]
    assert all(w["exit_type"] is None and w["end_time_ms"] == 0 for w in alive)
    assert [w["worker_type"] for w in alive].count("DRIVER") == 1


def test_state_api_rows_as_rays(fresh):
    """list_workers has the driver's row, and every worker_id is what that process's
    get_worker_id() gives; a pending task is on no node yet; an actor's creation task is
    listed; get_task of a task run three times gives its three attempts."""
    from mpiray.util.state import get_task, get_worker, list_tasks, list_workers

    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    class Who:
        def worker_id(self):
            return ray.get_runtime_context().get_worker_id()

    who = Who.remote()
    actor_worker = ray.get(who.worker_id.remote(), timeout=30)
    driver = ray.get_runtime_context().get_worker_id()
    assert get_worker(driver)["worker_type"] == "DRIVER" and get_worker(driver)["pid"] == os.getpid()
    assert get_worker(actor_worker)["worker_type"] == "WORKER"
    assert sum(w["worker_type"] == "DRIVER" for w in list_workers()) == 1

    creation = [t for t in list_tasks() if t["type"] == "ACTOR_CREATION_TASK"]
    assert [(t["name"], t["state"]) for t in creation] == [("Who.__init__", "FINISHED")]

    @ray.remote(num_gpus=1)
    def never():
        return 1

    pending = never.remote()
    row = [t for t in list_tasks() if t["name"] == "never"][0]
    assert row["state"] == "PENDING_NODE_ASSIGNMENT" and row["node_id"] is None
    ray.cancel(pending)

    @ray.remote(max_retries=2, retry_exceptions=True)
    def fails():
        raise ValueError("again")

    with pytest.raises(ValueError):
        ray.get(fails.remote(), timeout=30)
    task_id = [t for t in list_tasks() if t["name"] == "fails"][0]["task_id"]
    assert [t["attempt_number"] for t in get_task(task_id)] == [0, 1, 2]

    from mpiray.util.state import list_objects

    @ray.remote
    def slow():
        time.sleep(1)
        return 1

    running = slow.remote()
    time.sleep(0.3)
    (row,) = [o for o in list_objects() if o["object_id"] == running.hex()]
    assert row["task_status"] == "RUNNING" and row["object_size"] == -1   # (not made yet)
    assert ray.get(running, timeout=30) == 1
    (row,) = [o for o in list_objects() if o["object_id"] == running.hex()]
    assert row["task_status"] == "FINISHED" and row["object_size"] > 0

    @ray.remote
    def child():
        return ray.get_runtime_context().get_task_id()

    @ray.remote
    def parent():
        return ray.get_runtime_context().get_task_id(), ray.get(child.remote())

    parent_id, child_id = ray.get(parent.remote(), timeout=30)
    rows = {t["task_id"]: t for t in list_tasks(detail=True)}
    assert rows[child_id]["parent_task_id"] == parent_id and rows[parent_id]["parent_task_id"] is None


def test_internal_kv_is_one_store_for_the_driver_and_its_tasks(fresh):
    from mpiray.experimental import internal_kv as kv

    ray = fresh
    assert not kv._internal_kv_initialized()
    with pytest.raises(RuntimeError, match="ray.init"):
        kv._internal_kv_get("k")
    ray.init(num_cpus=1)
    assert kv._internal_kv_put("k1", b"v1") is False          # (not there before)
    assert kv._internal_kv_put("k1", b"v2", overwrite=False) is True
    assert kv._internal_kv_get("k1") == b"v1"
    assert kv._internal_kv_put(b"k1", "v3") is True and kv._internal_kv_get("k1") == b"v3"
    assert kv._internal_kv_exists("k1") and not kv._internal_kv_exists("missing")
    assert kv._internal_kv_get("missing") is None
    kv._internal_kv_put("k2", b"x")
    kv._internal_kv_put("other", b"y")
    kv._internal_kv_put("k1", b"elsewhere", namespace="ns")

    @ray.remote
    def in_a_task():
        kv._internal_kv_put("from-task", b"t")
        return kv._internal_kv_get("k1"), kv._internal_kv_get("k1", namespace="ns")

    assert ray.get(in_a_task.remote(), timeout=60) == (b"v3", b"elsewhere")
    assert sorted(kv._internal_kv_list("k")) == [b"k1", b"k2"]
    assert kv._internal_kv_del("k", del_by_prefix=True) == 2
    assert sorted(kv._internal_kv_list("")) == [b"from-task", b"other"]
    assert kv._internal_kv_del("other") == 1 and kv._internal_kv_del("other") == 0
    with pytest.raises(TypeError, match="bytes or str"):
        kv._internal_kv_put("k", 3)
    with pytest.raises(RuntimeError, match="reserved"):
        kv._internal_kv_put("@namespace_x", b"v")


def test_list_tasks_times_and_tasks_taken_from_the_queue_run(fresh):
    """Tasks queued behind busy workers are RUNNING once a worker takes them; every row
    has Ray's creation/start/end_time_ms: start and end once known, in that order."""
    from mpiray.util.state import list_tasks

    ray = fresh
    ray.init(num_cpus=1)

    @ray.remote
    def nap(i):
        time.sleep(0.8)
        return i

    before = time.time() * 1000
    refs = [nap.remote(i) for i in range(3)]
    time.sleep(1.2)   # the first has ended; the second runs; the third waits its turn
    rows = sorted(list_tasks(filters=[("name", "=", "nap")]), key=lambda t: t["creation_time_ms"])
    states = sorted(t["state"] for t in rows)
    assert states == ["FINISHED", "PENDING_NODE_ASSIGNMENT", "RUNNING"], rows
    running = [t for t in rows if t["state"] == "RUNNING"][0]
    assert running["worker_pid"] is not None and running["end_time_ms"] is None
    assert ray.get(refs, timeout=30) == [0, 1, 2]
    time.sleep(0.2)
    after = time.time() * 1000
    for t in list_tasks(filters=[("name", "=", "nap")]):
        assert t["state"] == "FINISHED"
        assert before - 1 <= t["creation_time_ms"] <= t["start_time_ms"] <= t["end_time_ms"] <= after + 1
        assert t["end_time_ms"] - t["start_time_ms"] >= 790   # (each slept 0.8 s)


def test_list_tasks_func_or_class_name_is_the_functions_whatever_name_is_given(ray):
    """As Ray's: name= (in @remote or .options) names the task; func_or_class_name stays
    the function's own."""
    from mpiray.util.state import list_tasks

    @ray.remote(name="given_at_decoration")
    def plain_fn():
        return 1

    assert ray.get([plain_fn.remote(), plain_fn.options(name="given_later").remote()]) == [1, 1]
    time.sleep(0.2)
    rows = {t["name"]: t for t in list_tasks() if t["name"] in ("given_at_decoration", "given_later")}
    assert set(rows) == {"given_at_decoration", "given_later"}
    assert {t["func_or_class_name"] for t in rows.values()} == {plain_fn._function_name}
    assert plain_fn._function_name.endswith("plain_fn")


def test_list_actors_repr_name(ray):
    """Ray's repr_name: the text of the actor's own __repr__, "" without one."""
    from mpiray.util.state import list_actors

    @ray.remote
    class Shown:
        def __init__(self, text):
            self.text = text

        def __repr__(self):
            return self.text

        def ping(self):
            return 1

    @ray.remote
    class Plain:
        def ping(self):
            return 1

    shown, plain = Shown.remote("shown-as-this"), Plain.remote()
    assert ray.get([shown.ping.remote(), plain.ping.remote()], timeout=30) == [1, 1]
    rows = {a["actor_id"]: a for a in list_actors()}
    assert rows[shown._actor_id.hex()]["repr_name"] == "shown-as-this"
    assert rows[plain._actor_id.hex()]["repr_name"] == ""


def test_state_rows_name_their_placement_group(ray):
    from mpiray.util.placement_group import placement_group, remove_placement_group
    from mpiray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from mpiray.util.state import list_actors, list_tasks

    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=30)
    in_pg = PlacementGroupSchedulingStrategy(pg)

    @ray.remote
    def grouped_task():
        return 1

    @ray.remote
    class GroupedActor:
        def ping(self):
            return 1

    actor = GroupedActor.options(scheduling_strategy=in_pg).remote()
    assert ray.get([grouped_task.options(scheduling_strategy=in_pg).remote(), grouped_task.remote(),
                    actor.ping.remote()], timeout=30) == [1, 1, 1]
    time.sleep(0.2)
    groups = {t["placement_group_id"] for t in list_tasks() if t["name"] == "grouped_task"}
    assert groups == {pg.id.hex(), None}
    (row,) = [a for a in list_actors() if a["actor_id"] == actor._actor_id.hex()]
    assert row["placement_group_id"] == pg.id.hex()
    ray.kill(actor)
    remove_placement_group(pg)


def test_private_async_compat():
    from collections.abc import AsyncIterator

    from mpiray._private.async_compat import has_async_methods, is_async_func, sync_to_async

    def plain():
        return 1

    def gen():
        yield 1

    async def coro():
        return 1

    async def agen() -> AsyncIterator[int]:
        yield 1

    assert [is_async_func(f) for f in (plain, gen, coro, agen)] == [False, False, True, True]

    class Sync:
        def m(self):
            pass

    class Async:
        async def m(self):
            pass

    assert (has_async_methods(Sync), has_async_methods(Async)) == (False, True)
    assert sync_to_async(plain) is sync_to_async(plain) and sync_to_async(coro) is coro
    import asyncio

    assert asyncio.run(sync_to_async(plain)()) == 1


def test_global_gc_collects_cycles_in_every_process(ray):
    """ray._private.internal_api.global_gc (Ray's): the driver's and the actors' garbage
    held only by reference cycles is collected, with automatic collection off."""
    import gc
    import weakref

    from mpiray._private.internal_api import global_gc
    from mpiray.internal.internal_api import global_gc as older_path

    class Cycle:
        def __init__(self):
            self.me = self

    @ray.remote(num_cpus=0)
    class Holder:
        def __init__(self):
            gc.disable()
            self.garbage = weakref.ref(Cycle())

        def has_garbage(self):
            return self.garbage() is not None

    assert older_path is global_gc
    gc.disable()
    try:
        local = weakref.ref(Cycle())
        holders = [Holder.remote() for _ in range(2)]
        assert local() is not None and all(ray.get([h.has_garbage.remote() for h in holders], timeout=30))
        global_gc()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if local() is None and not any(ray.get([h.has_garbage.remote() for h in holders], timeout=30)):
                break
            time.sleep(0.2)
        assert local() is None
        assert not any(ray.get([h.has_garbage.remote() for h in holders], timeout=30))
    finally:
        gc.enable()


def test_dag_nodes_behave_as_rays(ray):
    """get_options() includes @remote's options; str() shows the graph; nodes refuse to
    pickle; bad binds fail at once with Ray's errors; InputNode's rules; several inputs
    to a whole InputNode give a DAGInputData; the node-walking API."""
    import pickle

    from mpiray.dag import (PARENT_CLASS_NODE_KEY, PREV_CLASS_METHOD_CALL_KEY, DAGInputData,
                            InputNode, MultiOutputNode)

    @ray.remote(num_gpus=0, max_retries=2)
    def ident(x, y=None):
        return x

    @ray.remote(num_cpus=0)
    class Keeper:
        def get(self, x):
            return x

    assert ident.bind(1).get_options() == {"num_gpus": 0, "max_retries": 2}
    assert ident.options(num_cpus=0).bind(1).get_options() == {"num_gpus": 0, "max_retries": 2, "num_cpus": 0}
    assert Keeper.bind().get_options() == {"num_cpus": 0}
    nested = ident.bind([1, ident.bind(2)], y={"nested_node": ident.bind(5)})
    text = str(nested)
    assert "nested_node: (FunctionNode" in text and "args=[" in text and "kwargs={" in text
    with pytest.raises(ValueError, match="DAGNode cannot be serialized"):
        pickle.dumps(nested)
    with pytest.raises(ValueError, match="DAGNode cannot be serialized"):
        ray.put(nested)
    keeper = Keeper.bind()
    with pytest.raises(AttributeError, match=r"\.bind\(\) cannot be used again on"):
        keeper.bind()
    with pytest.raises(AttributeError, match=r"\.remote\(\) cannot be used on ClassMethodNodes"):
        keeper.get.remote()
    with pytest.raises(AttributeError, match="'Keeper' has no attribute 'remote'"):
        keeper.remote()
    with pytest.raises(AttributeError, match="no_such_method"):
        keeper.no_such_method
    with pytest.raises(AttributeError, match=r"\.remote\(\) cannot be used on"):
        ident.bind(1).remote()

    with pytest.raises(ValueError, match="InputNode should not take any args or kwargs"):
        InputNode(0)
    with InputNode() as inp:
        with pytest.raises(ValueError, match="cannot be used as args, kwargs"):
            Keeper.bind(inp)
        with pytest.raises(AssertionError, match="only use int index or str"):
            inp[(1, 2)]
        whole = ident.bind(inp)
        pair = ident.bind(inp[1])
    assert ray.get(whole.execute(7), timeout=30) == 7
    several = ray.get(whole.execute(1, 2, k=3), timeout=30)
    assert isinstance(several, DAGInputData) and (several[1], several["k"]) == (2, 3)
    assert ray.get(pair.execute(1, 2), timeout=30) == 2
    with InputNode() as first:
        a = ident.bind(first)
    with InputNode() as second:
        b = ident.bind(second)
    with pytest.raises(AssertionError, match="Each DAG should only have one unique InputNode"):
        MultiOutputNode([a, b]).execute(1)
    with pytest.raises(AssertionError, match="should be only used in context manager"):
        ident.bind(InputNode()).execute(1)
    with pytest.raises(ValueError, match="Invalid input type for `args`"):
        MultiOutputNode(ident.bind(1))

    # walking: children in order, nested ones too; a method call names its actor and the
    # call bound before it; apply_recursive gives each node once, children first
    leaf = ident.bind(1)
    top = ident.bind(leaf, y=[ident.bind(2)])
    assert top._get_toplevel_child_nodes() == [leaf]
    assert len(top._get_all_child_nodes()) == 2
    first_call = keeper.get.bind(1)
    second_call = keeper.get.bind(2)
    others = second_call.get_other_args_to_resolve()
    assert others[PARENT_CLASS_NODE_KEY] is keeper and others[PREV_CLASS_METHOD_CALL_KEY] is first_call
    seen = []
    top.apply_recursive(lambda node: seen.append(node.get_stable_uuid()) or node)
    assert len(seen) == 3 and seen[-1] == top.get_stable_uuid()
    assert top.options(num_cpus=0).get_stable_uuid() == top.get_stable_uuid()
    replaced = top.apply_functional([leaf, 5], lambda node: True, lambda node: "swapped")
    assert replaced == ["swapped", 5]


def test_parent_of_tasks_from_threads_an_actor_starts(ray):
    """As Ray's: a task submitted from a thread the user started in a sequential actor's
    call has that call as its parent; in a threaded or async actor, the actor's creation
    task."""
    import threading

    from mpiray.util.state import list_tasks

    @ray.remote
    def from_a_thread():
        return ray.get_runtime_context().get_task_id()

    def submit_from_a_thread():
        out = []
        thread = threading.Thread(target=lambda: out.append(ray.get(from_a_thread.remote())))
        thread.start()
        thread.join()
        return out[0]

    class Base:
        def __init__(self):
            self.creation = ray.get_runtime_context().get_task_id()

        def ids(self):
            return self.creation, ray.get_runtime_context().get_task_id(), submit_from_a_thread()

    class AsyncToo(Base):
        async def ping(self):
            return 1

    cases = ((ray.remote(Base), "call"), (ray.remote(max_concurrency=3)(Base), "creation"),
             (ray.remote(AsyncToo), "creation"))
    for cls, expected in cases:
        actor = cls.remote()
        creation, call, child = ray.get(actor.ids.remote(), timeout=30)
        time.sleep(0.2)
        (row,) = [t for t in list_tasks() if t["task_id"] == child]
        assert row["parent_task_id"] == {"call": call, "creation": creation}[expected], cls
        ray.kill(actor)


def test_list_tasks_rows_of_tasks_that_never_ran_or_whose_worker_exited(fresh):
    """As Ray's: a task refused by a hard node affinity, one cancelled while it waited,
    and an actor killed before it was placed are FAILED rows; a worker's exit gives Ray's
    words."""
    from mpiray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from mpiray.util.state import list_actors, list_tasks

    ray = fresh
    ray.init(num_cpus=1)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)

    @ray.remote
    def task():
        return 1

    @ray.remote(max_retries=0)
    def exits():
        os._exit(27)

    @ray.remote
    class Big:
        pass

    unschedulable = task.options(scheduling_strategy=here, num_cpus=2, name="unsched").remote()
    with pytest.raises(ray.exceptions.TaskUnschedulableError):
        ray.get(unschedulable, timeout=30)
    waiting = task.options(num_gpus=1, name="waits").remote()
    ray.cancel(waiting)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(waiting, timeout=30)
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(exits.remote(), timeout=30)
    big = Big.options(num_cpus=10).remote()
    ray.kill(big)
    time.sleep(0.3)
    rows = {t["name"]: t for t in list_tasks()}
    assert (rows["unsched"]["state"], rows["unsched"]["error_type"]) == ("FAILED", "TASK_UNSCHEDULABLE_ERROR")
    assert "The node specified via NodeAffinitySchedulingStrategy doesn't exist any more or " \
           "is infeasible" in rows["unsched"]["error_message"]
    assert (rows["waits"]["state"], rows["waits"]["error_type"]) == ("FAILED", "TASK_CANCELLED")
    assert rows["exits"]["error_type"] == "WORKER_DIED"
    assert "Worker exits with an exit code 27" in rows["exits"]["error_message"]
    assert rows["Big.__init__"]["state"] == "FAILED"
    assert [a["state"] for a in list_actors() if a["class_name"] == "Big"] == ["DEAD"]


def test_api_annotations_note_docstrings_and_warn(recwarn):
    """ray.util.annotations: stability notes in docstrings; Deprecated(warning=True)
    warns with RayDeprecationWarning (a DeprecationWarning) when used."""
    import warnings

    from mpiray.util.annotations import Deprecated, DeveloperAPI, PublicAPI, RayDeprecationWarning

    @PublicAPI(stability="beta")
    def beta():
        """Does a thing."""
        return 1

    @DeveloperAPI
    class Dev:
        pass

    @Deprecated(message="use new_thing", warning=True)
    def old_thing():
        return 2

    @Deprecated(message="gone soon")
    class Old:
        pass

    assert "PublicAPI (beta)" in beta.__doc__ and "Does a thing." in beta.__doc__
    assert "DeveloperAPI" in Dev.__doc__ and "gone soon" in Old.__doc__
    assert issubclass(RayDeprecationWarning, DeprecationWarning)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert old_thing() == 2 and beta() == 1 and Old() is not None
    assert [str(w.message) for w in seen if w.category is RayDeprecationWarning] == \
        [old_thing.__doc__.strip().splitlines()[-1].strip()]
    with pytest.raises(ValueError, match="stability"):
        PublicAPI(stability="gamma")


def test_logging_and_job_config_as_rays():
    from mpiray import LoggingConfig
    from mpiray.job_config import JobConfig
    from mpiray.types import StreamingObjectRefGeneratorType

    with pytest.raises(ValueError, match="Unknown python logging standard attribute: invalid"):
        LoggingConfig(additional_log_standard_attrs=["invalid"])
    LoggingConfig(additional_log_standard_attrs=["name", "funcName"])
    job = JobConfig(ray_namespace="ns", metadata={"k": "v"})
    assert job.py_logging_config is None
    logging_config = LoggingConfig(encoding="JSON")
    job.set_py_logging_config(logging_config)
    assert job.py_logging_config is logging_config
    again = JobConfig.from_json(job.to_json())
    assert (again.ray_namespace, again.metadata) == ("ns", {"k": "v"})
    assert StreamingObjectRefGeneratorType[int] is not None


def test_state_rows_are_rays_state_classes(ray):
    """ray.util.state.common's classes: rows print under their kind (ActorState(...)),
    read as dicts and attributes; ray.util.state.exception exists."""
    from mpiray.util.state import list_actors, list_jobs, list_nodes
    from mpiray.util.state.common import ActorState, JobState, NodeState
    from mpiray.util.state.exception import RayStateApiException

    @ray.remote(runtime_env={"env_vars": {"STATE_ROWS": "1"}})
    class Listed:
        def ping(self):
            return 1

    actor = Listed.remote()
    assert ray.get(actor.ping.remote(), timeout=30) == 1
    (row,) = [a for a in list_actors() if a["actor_id"] == actor._actor_id.hex()]
    assert isinstance(row, ActorState) and row.state == row["state"] == "ALIVE"
    assert repr(row).startswith("ActorState(actor_id=")
    assert '"STATE_ROWS": "1"' in row.serialized_runtime_env
    assert isinstance(list_nodes()[0], NodeState) and isinstance(list_jobs()[0], JobState)
    assert issubclass(RayStateApiException, Exception)
    ray.kill(actor)


def test_log_once_and_rays_other_id_types():
    """ray.util.debug.log_once (libraries on Ray import it) and ray.UniqueID & co."""
    import mpiray
    from mpiray.util import debug

    assert debug.log_once("util-test-key") is True
    assert debug.log_once("util-test-key") is False
    debug.reset_log_once("util-test-key")
    assert debug.log_once("util-test-key") is True
    debug.reset_log_once()
    assert debug.log_once("util-test-key") is True
    unique = mpiray.UniqueID.from_random()
    assert len(unique.binary()) == 28 and mpiray.UniqueID.from_hex(unique.hex()) == unique
    assert mpiray.ActorClassID.nil().is_nil() and not mpiray.FunctionID.from_random().is_nil()


def test_joblib_runs_its_batches_on_the_pools_actors(ray):
    """ray.util.joblib: joblib.parallel_backend("ray") (what scikit-learn's n_jobs uses)
    runs each batch in the actors of mpiray's Pool, n_jobs=-1 meaning every CPU."""
    joblib = pytest.importorskip("joblib")   # (a dependency of the test setup: Makefile DEPS)
    import numpy as np

    from mpiray.util.joblib import register_ray

    register_ray()
    with joblib.parallel_backend("ray"):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(lambda x: (x * x, os.getpid()))(i)
                                        for i in range(20))
    assert [value for value, _ in out] == [i * i for i in range(20)]
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    big = np.arange(1 << 20, dtype=np.float64)   # (joblib memmaps it for the workers)
    with joblib.parallel_backend("ray", n_jobs=-1):
        sums = joblib.Parallel()(joblib.delayed(np.sum)(big[i::4]) for i in range(4))
    assert sum(sums) == big.sum()
    from mpiray.util.joblib.ray_backend import RayBackend

    assert RayBackend().effective_n_jobs(-1) == int(ray.cluster_resources()["CPU"])


def test_workers_log_files_are_listed_and_read_by_pid_actor_and_name(ray):
    """ray.util.state.list_logs / get_log: each worker's .out and .err hold what it wrote
    (print() and a subprocess's output alike, unprefixed)."""
    import subprocess
    import time

    from mpiray.util.state import RayStateApiException, get_log, list_logs

    @ray.remote
    def chatty(tag):
        print("printed", tag)
        subprocess.run(["echo", "echoed", tag], check=True)
        return os.getpid()

    @ray.remote
    class Speaker:
        def speak(self):
            import sys
            print("actor out")
            print("actor err", file=sys.stderr)

    pid = ray.get(chatty.remote("log-test"))
    speaker = Speaker.remote()
    ray.get(speaker.speak.remote())
    time.sleep(0.5)   # (the node's log thread writes the files as it reads)
    text = "".join(get_log(pid=pid, tail=-1))
    assert "printed log-test\necho" in text and "echoed log-test\n" in text and "pid=" not in text
    actor = speaker._actor_id.hex()
    assert "".join(get_log(actor_id=actor)) == "actor out\n"
    assert "".join(get_log(actor_id=actor, suffix="err")) == "actor err\n"
    files = list_logs()
    name = next(n for n in files["worker_out"] if n.endswith(f"-{pid}.out"))
    assert name.startswith("worker-") and any(n.endswith(".err") for n in files["worker_err"])
    assert "".join(get_log(filename=name, tail=1)).endswith("echoed log-test\n")
    assert list_logs(glob_filter="*.err").keys() == {"worker_err"}
    with pytest.raises(RayStateApiException, match="no log of worker pid 1 "):
        get_log(pid=1)
    with pytest.raises(ValueError, match="exactly one of"):
        get_log(pid=pid, filename=name)
    ray.kill(speaker)

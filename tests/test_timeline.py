"""timeline(): tasks and actor calls as Chrome trace events, from real workers."""

import json
import os
import time


def test_tasks_and_actor_calls_appear_with_their_durations(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("MPIRAY_TASK_EVENTS", "1")   # (read at init)
    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote
    def nap(seconds):
        time.sleep(seconds)
        return os.getpid()

    @ray.remote
    class Counter:
        def incr(self):
            time.sleep(0.01)
            return os.getpid()

    before = time.time()
    pids = ray.get([nap.remote(0.05) for _ in range(4)])
    counter = Counter.remote()
    actor_pid = ray.get([counter.incr.remote() for _ in range(3)])[0]
    deadline = time.monotonic() + 10   # an actor reports its calls' ends in batches
    while True:
        events = ray.timeline()
        if len(events) >= 7 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    tasks = [e for e in events if e["name"].endswith("nap")]
    calls = [e for e in events if e["name"] == "Counter.incr"]
    assert len(tasks) == 4 and len(calls) == 3, events
    for e in tasks + calls:
        assert e["ph"] == "X" and e["pid"] == "node 0"
        assert e["ts"] >= before * 1e6 - 1e3
    assert all(e["dur"] >= 0.045e6 for e in tasks)
    assert all(e["dur"] >= 0.009e6 for e in calls)
    assert {e["tid"] for e in tasks} == {f"worker {p}" for p in pids}
    assert {e["tid"] for e in calls} == {f"worker {actor_pid}"}
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)

    path = tmp_path / "trace.json"
    assert ray.timeline(str(path)) is None
    assert json.loads(path.read_text()) == ray.timeline()


def test_task_events_are_off_by_default_and_timeline_says_so(fresh, monkeypatch):
    import pytest

    monkeypatch.delenv("MPIRAY_TASK_EVENTS", raising=False)
    ray = fresh
    ray.init(num_cpus=1)
    assert ray.get([ray.remote(lambda: 1).remote() for _ in range(5)]) == [1] * 5
    with pytest.warns(UserWarning, match="MPIRAY_TASK_EVENTS=1"):
        assert ray.timeline() == []


def test_threaded_actor_timings_stay_aligned(fresh, monkeypatch):
    monkeypatch.setenv("MPIRAY_TASK_EVENTS", "1")
    ray = fresh
    ray.init(num_cpus=2)

    @ray.remote(max_concurrency=8)
    class Busy:
        def __init__(self):
            import sys
            sys.setswitchinterval(1e-6)   # threads switch as often as they can

        def call(self, i):
            return i

    actor = Busy.remote()
    for _ in range(20):
        assert ray.get([actor.call.remote(i) for i in range(500)]) == list(range(500))
    events = ray.timeline()
    calls = [e for e in events if e["name"] == "Busy.call"]
    assert len(calls) <= 10_000
    for e in calls:
        assert e["dur"] >= 0 and e["dur"] < 5e6, e
        assert e["args"]["task_id"] is not None

"""mpiray._native.queue across real processes: throughput with exactly-once delivery,
sleeping idle consumers, close() releasing blocked processes, and SIGKILLed consumers
and producers that never lose a task silently nor wedge the ring."""
import multiprocessing
import os
import random
import signal
import struct
import time
import uuid

import numpy as np
import pytest

from mpiray._native.queue import Queue, QueueClosed, _set_test_kill_point

CTX = multiprocessing.get_context("fork")


def unique_name(tag):
    return f"/mpiray-test-{os.getuid()}-{os.getpid()}-{tag}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_queue():
    made = []

    def make(capacity=1024, slot_size=512, tag="q"):
        q = Queue.create(unique_name(tag), capacity, slot_size)
        made.append(q)
        return q

    yield make
    for q in made:
        q.destroy()
        assert not os.path.exists("/dev/shm/" + q.name.lstrip("/")), "segment left in /dev/shm"


def _start(target, *args):
    p = CTX.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def _join_all(procs, timeout=60):
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0, f"{p.name} exited with {p.exitcode}"


# ---- 3 producers x 3 consumers, 10^6 items ------------------------------------------

N_ITEMS, N_PRODUCERS, N_CONSUMERS = 1_000_000, 3, 3


def _produce(name, producer, count):
    q = Queue.attach(name)
    pack = struct.Struct("<II").pack
    batch = 4096
    for start in range(0, count, batch):
        items = [pack(producer, i) for i in range(start, min(start + batch, count))]
        assert q.push_batch(items) == len(items)


def _consume(name, out_path):
    q = Queue.attach(name)
    chunks = []
    try:
        while True:
            chunks.extend(q.pop_batch(1024))
    except QueueClosed:
        pass
    with open(out_path, "wb") as f:
        f.write(b"".join(chunks))


def test_3x3_million_items_each_seen_exactly_once_in_producer_order(make_queue, tmp_path):
    q = make_queue(capacity=4096, slot_size=64)
    per = [N_ITEMS // N_PRODUCERS + (p < N_ITEMS % N_PRODUCERS) for p in range(N_PRODUCERS)]
    outs = [tmp_path / f"c{c}" for c in range(N_CONSUMERS)]
    t0 = time.monotonic()
    consumers = [_start(_consume, q.name, str(o)) for o in outs]
    producers = [_start(_produce, q.name, p, per[p]) for p in range(N_PRODUCERS)]
    _join_all(producers)
    q.close()  # consumers drain what is left, then see QueueClosed
    _join_all(consumers)
    elapsed = time.monotonic() - t0
    streams = [np.frombuffer(o.read_bytes(), dtype="<u4").reshape(-1, 2) for o in outs]
    allv = np.concatenate(streams)
    assert len(allv) == N_ITEMS
    keys = allv[:, 0].astype(np.int64) * N_ITEMS + allv[:, 1]
    assert len(np.unique(keys)) == N_ITEMS  # none lost, none duplicated
    for s in streams:  # per-producer FIFO as each consumer sees it
        for p in range(N_PRODUCERS):
            seq = s[s[:, 0] == p, 1].astype(np.int64)
            assert np.all(np.diff(seq) > 0)
    print(f"10^6 items 3x3 in {elapsed:.2f} s")


# ---- idle consumers sleep -----------------------------------------------------------


def _cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _block_in_pop(name, consumer):
    q = Queue.attach(name)
    try:
        q.pop(consumer=consumer)
    except QueueClosed:
        os._exit(0)
    os._exit(3)


def test_idle_consumers_blocked_in_pop_use_under_one_percent_cpu(make_queue):
    q = make_queue()
    procs = [_start(_block_in_pop, q.name, c) for c in (-1, 0)]
    time.sleep(0.3)  # past start-up and the short spin
    before = [_cpu_seconds(p.pid) for p in procs]
    time.sleep(2.0)
    used = [_cpu_seconds(p.pid) - b for p, b in zip(procs, before)]
    q.close()
    _join_all(procs, 5)
    assert all(u < 0.02 for u in used), f"idle consumers used {used} CPU-seconds in 2 s"


# ---- close releases blocked processes ------------------------------------------------


def _block_in_push(name):
    q = Queue.attach(name)
    try:
        q.push(b"one too many")
    except QueueClosed:
        os._exit(0)
    os._exit(3)


def test_close_releases_blocked_producers_and_consumers(make_queue):
    empty, full = make_queue(tag="empty"), make_queue(capacity=2, tag="full")
    full.push(b"a")
    full.push(b"b")
    procs = [_start(_block_in_pop, empty.name, -1) for _ in range(2)]
    procs += [_start(_block_in_push, full.name) for _ in range(2)]
    time.sleep(0.3)
    assert all(p.is_alive() for p in procs), "nobody may return before close()"
    t0 = time.monotonic()
    empty.close()
    full.close()
    _join_all(procs, 5)
    assert time.monotonic() - t0 < 1.0
    assert full.pop_batch(5) == [b"a", b"b"]


# ---- SIGKILL at every kill point ---------------------------------------------------------

# kill point -> whether the dead consumer's item comes back from recover() (True) or is
# still in the ring because it was never claimed (False). See docs/queue.md.
CONSUMER_KILL_POINTS = {1: False, 2: True, 3: True, 4: True, 5: True}


def _pop_killed_at(name, point, consumer):
    q = Queue.attach(name)
    _set_test_kill_point(point)
    q.pop(consumer=consumer)
    os._exit(0)  # the kill point was not reached


def _push_killed_at(name, point):
    q = Queue.attach(name)
    _set_test_kill_point(point)
    q.push(b"half-pushed")
    os._exit(0)


def _run_killed(target, *args):
    p = _start(target, *args)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("point", sorted(CONSUMER_KILL_POINTS))
def test_consumer_sigkilled_at_each_point_loses_nothing(make_queue, point):
    q = make_queue(capacity=2, slot_size=128)
    q.push(b"A")
    q.push(b"B")
    _run_killed(_pop_killed_at, q.name, point, 3)
    recovered = q.recover(3)
    remaining = q.pop_batch(10, timeout=1)
    if CONSUMER_KILL_POINTS[point]:
        assert (recovered, remaining) == ([b"A"], [b"B"])
    else:
        assert (recovered, remaining) == ([], [b"A", b"B"])
    for i in range(10):  # the ring is not wedged: it keeps lapping
        assert q.push(b"x%d" % i, timeout=1) and q.pop(timeout=1) == b"x%d" % i


@pytest.mark.parametrize("point", [11, 12])
def test_producer_sigkilled_mid_push_does_not_wedge_the_ring(make_queue, point):
    q = make_queue(capacity=2, slot_size=128)
    _run_killed(_push_killed_at, q.name, point)
    q.push(b"after", timeout=1)
    # the claimed slot is discarded once a waiter sees its owner is dead (~20 ms)
    assert q.pop(timeout=2) == b"after"
    for i in range(10):
        assert q.push(b"y", timeout=1) and q.pop(timeout=1) == b"y"


def test_producer_sigkilled_after_publish_delivers(make_queue):
    q = make_queue()
    _run_killed(_push_killed_at, q.name, 13)
    assert q.pop(timeout=1) == b"half-pushed"


def _work_and_record(name, consumer, out_path):
    q = Queue.attach(name)
    fd = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    rng = random.Random(os.getpid())
    while True:
        item = q.pop(consumer=consumer)
        deadline = time.perf_counter() + rng.uniform(0, 200e-6)
        while time.perf_counter() < deadline:  # "run the task"
            pass
        os.write(fd, item)
        q.done(consumer)


def test_random_sigkills_lose_nothing_and_duplicate_only_unfinished(make_queue, tmp_path):
    n_items = 3000
    q = make_queue(capacity=4096, slot_size=64)
    for i in range(n_items):
        q.push(struct.pack("<I", i))
    out = tmp_path / "done"
    recovered = []
    rng = random.Random(1234)
    kills = 0
    while q.size() > 0:
        p = _start(_work_and_record, q.name, 9, str(out))
        time.sleep(rng.uniform(0.002, 0.03))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        kills += 1
        recovered += q.recover(9)
    finished = np.frombuffer(out.read_bytes(), dtype="<u4")
    rec = np.frombuffer(b"".join(recovered), dtype="<u4")
    assert kills > 3
    assert set(finished.tolist()) | set(rec.tolist()) == set(range(n_items))  # nothing lost
    assert len(np.unique(finished)) == len(finished)  # each task ran once...
    assert len(np.unique(rec)) == len(rec)
    # ...except one popped, run, but killed before done(): at-least-once, documented.
    assert len(set(finished.tolist()) & set(rec.tolist())) <= kills


@pytest.mark.parametrize("point", [11, 12])
def test_inbox_style_consumer_gets_past_a_producer_killed_mid_push(make_queue, point):
    """The inbox thread's loop (wait_nonempty, then pop_batch without waiting) must get
    past the slot of a producer SIGKILLed mid-push: wait_nonempty waits (and repairs the
    slot) rather than report an item that no pop can take, which spun forever."""
    q = make_queue(capacity=4, slot_size=128)
    _run_killed(_push_killed_at, q.name, point)
    q.push(b"after")
    got, deadline = [], time.monotonic() + 20  # hang guard
    while not got and time.monotonic() < deadline:
        if q.wait_nonempty(0.1, 1, 100e-6):
            got = q.pop_batch(256, 0)
    assert got == [b"after"]

"""mpiray._native.queue within one process: the API contract, errors, timeouts, close."""
import os
import threading
import time
import uuid

import pytest

from mpiray._native.queue import DEFAULT_CONSUMERS, MAX_CONSUMERS, MAX_RECORD_ITEMS, Queue, QueueClosed


def unique_name(tag):
    return f"/mpiray-test-{os.getuid()}-{os.getpid()}-{tag}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_queue():
    made = []

    def make(capacity=1024, slot_size=512, tag="q", consumers=DEFAULT_CONSUMERS):
        q = Queue.create(unique_name(tag), capacity, slot_size, consumers)
        made.append(q)
        return q

    yield make
    for q in made:
        q.destroy()
        assert not os.path.exists("/dev/shm/" + q.name.lstrip("/")), "segment left in /dev/shm"


def test_create_attach_roundtrip_and_attributes(make_queue):
    q = make_queue(capacity=8, slot_size=128)
    assert (q.capacity, q.max_payload, q.closed, q.size()) == (8, 112, False, 0)
    other = Queue.attach(q.name)
    assert (other.name, other.capacity, other.max_payload) == (q.name, 8, 112)
    assert q.push(b"abc") is True
    assert q.try_push(bytearray(b"de")) is True
    assert q.push(memoryview(b"xyz")) is True
    assert q.size() == 3
    assert other.pop() == b"abc"
    assert other.try_pop() == b"de"
    assert other.pop_batch(10) == [b"xyz"]
    assert other.try_pop() is None
    assert q.push(b"") and q.pop() == b""  # empty payloads are payloads


def test_fifo_per_producer_through_many_laps(make_queue):
    q = make_queue(capacity=3, slot_size=64)
    got = []
    for i in range(300):
        assert q.push(str(i).encode())
        if i % 3 == 2:
            assert q.try_push(b"overflow") is False  # full: try_push never blocks
            got += q.pop_batch(3)
    assert got == [str(i).encode() for i in range(300)]


def test_payload_larger_than_a_slot_names_both_sizes(make_queue):
    q = make_queue(slot_size=512)
    with pytest.raises(ValueError, match=r"600 bytes.*max_payload is 496 bytes"):
        q.push(b"x" * 600)
    with pytest.raises(ValueError, match="600 bytes"):
        q.try_push(bytearray(600))
    assert q.push(b"x" * q.max_payload) and len(q.pop()) == 496


def test_a_queue_made_with_more_consumer_slots_records_every_one(make_queue):
    q = make_queue(consumers=MAX_CONSUMERS, tag="many")
    other = Queue.attach(q.name)
    assert (q.consumers, other.consumers) == (MAX_CONSUMERS, MAX_CONSUMERS)
    for i in range(3):
        q.push(f"item{i}".encode())
    assert other.pop(timeout=0, consumer=MAX_CONSUMERS - 1) == b"item0"
    assert q.pop(timeout=0, consumer=700) == b"item1"
    q.done(700)
    assert q.recover(MAX_CONSUMERS - 1) == [b"item0"]   # as if that consumer had died
    assert q.recover(700) == []
    with pytest.raises(ValueError, match=rf"consumer must be in -1\.\.{MAX_CONSUMERS - 1}, got {MAX_CONSUMERS}"):
        q.pop(timeout=0, consumer=MAX_CONSUMERS)


def test_bad_arguments_give_clear_errors(make_queue):
    q = make_queue()
    for bad in (DEFAULT_CONSUMERS, -2):
        with pytest.raises(ValueError, match=r"consumer must be in -1\.\.255"):
            q.pop(timeout=0, consumer=bad)
        with pytest.raises(ValueError, match="consumer must be in"):
            q.pop_batch(4, consumer=bad)
    with pytest.raises(ValueError, match=r"consumer must be in 0\.\.255, got -1"):
        q.done(-1)
    with pytest.raises(ValueError, match=r"consumer must be in 0\.\.255, got 256"):
        q.recover(256)
    with pytest.raises(ValueError, match="timeout"):
        q.pop(timeout=-1)
    with pytest.raises(ValueError, match=rf"consumers must be in 1\.\.{MAX_CONSUMERS}"):
        Queue.create(q.name + "-more", consumers=MAX_CONSUMERS + 1)
    with pytest.raises(ValueError, match="max_items"):
        q.pop_batch(0)
    with pytest.raises(ValueError, match="slot_size"):
        Queue.create(unique_name("bad"), 8, 100)
    with pytest.raises(ValueError, match="capacity"):
        Queue.create(unique_name("bad"), 0, 512)
    with pytest.raises(FileExistsError):
        Queue.create(q.name, 8, 512)
    with pytest.raises(FileNotFoundError):
        Queue.attach(unique_name("missing"))
    with pytest.raises(TypeError):
        q.push("not bytes")


def test_pop_timeout_returns_none_in_about_the_timeout(make_queue):
    q = make_queue()
    for timeout in (0.05, 0.2):
        t0 = time.monotonic()
        assert q.pop(timeout=timeout) is None
        assert timeout * 0.9 <= time.monotonic() - t0 < timeout + 0.15
    t0 = time.monotonic()
    assert q.pop_batch(8, timeout=0.1) == []
    assert 0.09 <= time.monotonic() - t0 < 0.25
    assert q.pop(timeout=0) is None


def test_push_timeout_on_full_queue_returns_false(make_queue):
    q = make_queue(capacity=2)
    assert q.push(b"a") and q.push(b"b")
    t0 = time.monotonic()
    assert q.push(b"c", timeout=0.1) is False
    assert 0.09 <= time.monotonic() - t0 < 0.3
    assert q.push_batch([b"c", b"d"], timeout=0) == 0


def test_closed_queue_drains_then_raises(make_queue):
    q = make_queue()
    q.push(b"1")
    q.push(b"2")
    q.close()
    assert q.closed
    with pytest.raises(QueueClosed):
        q.push(b"3")
    with pytest.raises(QueueClosed):
        q.try_push(b"3")
    assert q.pop() == b"1"
    assert q.pop_batch(5) == [b"2"]
    with pytest.raises(QueueClosed):
        q.pop()
    with pytest.raises(QueueClosed):
        q.try_pop()
    with pytest.raises(QueueClosed):
        q.pop_batch(3, timeout=1)


def test_close_wakes_blocked_threads(make_queue):
    empty, full = make_queue(tag="empty"), make_queue(capacity=1, tag="full")
    full.push(b"x")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_raises_closed(empty.pop))),
        threading.Thread(target=lambda: results.append(_raises_closed(lambda: full.push(b"y")))),
    ]
    for t in threads:
        t.start()
    time.sleep(0.1)
    empty.close()
    full.close()
    for t in threads:
        t.join(2)
    assert results == [True, True]


def _raises_closed(call):
    try:
        call()
    except QueueClosed:
        return True
    return False


def test_records_hold_until_done_or_next_pop(make_queue):
    q = make_queue()
    for item in (b"one", b"two", b"three"):
        q.push(item)
    assert q.pop(consumer=5) == b"one"
    assert q.recover(5) == [b"one"]
    assert q.recover(5) == []  # recover clears
    assert q.pop(consumer=5) == b"two"
    q.done(5)
    assert q.recover(5) == []
    assert q.pop(consumer=5) == b"three"
    q.push(b"four")
    assert q.pop(consumer=5) == b"four"  # the next pop forgets "three"
    assert q.recover(5) == [b"four"]
    for i in range(40):
        q.push(b"b%d" % i)
    batch = q.pop_batch(100, consumer=7)
    assert batch == [b"b%d" % i for i in range(MAX_RECORD_ITEMS)]
    assert q.recover(7) == batch
    assert len(q.pop_batch(100)) == 40 - MAX_RECORD_ITEMS  # unrecorded batches are unlimited


def test_populate_maps_every_slot_in_advance():
    """After populate(), a whole pass round the ring first-touches no slot page (each
    would otherwise be a page fault in this process)."""
    import resource

    name = f"/mpiray-qtest-{os.getpid()}-populate"
    q = Queue.create(name, 256, 4096)
    try:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        q.populate()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        if before - start < 128:  # populate() faulted nothing in: no MADV_POPULATE_WRITE here
            pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux >= 5.14)")
        for _ in range(256):
            q.push(b"x" * 100)
            q.pop(0)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        assert faults < 64  # 256 without populate (one per 4 KiB slot)
    finally:
        q.destroy()

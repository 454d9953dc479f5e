"""Benchmark of mpiray._native.queue: one run, prints figures and ratios (no assertions).

    .venv/bin/python benchmarks/task_queue.py

1. Latency: a request -> reply round trip between two processes through two queues
   (client push + pop, server pop + push, all from Python), against a raw C++ futex
   ping-pong between two processes measured in the same run.
2. Throughput: 1 producer x 1 consumer and 2 x 2, batched (push_batch / pop_batch),
   small payloads, items per second from the first push to the last pop.
"""
import multiprocessing
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from mpiray._native.queue import Queue, QueueClosed, futex_pingpong_rtt_ns

CTX = multiprocessing.get_context("fork")
PAYLOAD = b"t" * 64  # a small task descriptor
RTT_ITERS = 20000
BATCH = 1024


def fresh(tag, capacity=1024, slot_size=512):
    return Queue.create(f"/mpiray-bench-{os.getpid()}-{tag}-{uuid.uuid4().hex[:6]}", capacity, slot_size)


def _echo(req_name, rep_name):
    req, rep = Queue.attach(req_name), Queue.attach(rep_name)
    try:
        while True:
            rep.push(req.pop())
    except QueueClosed:
        pass


def queue_rtt_ns(iters):
    req, rep = fresh("req"), fresh("rep")
    server = CTX.Process(target=_echo, args=(req.name, rep.name))
    server.start()
    try:
        for _ in range(1000):  # warm-up: server attached, pages touched
            req.push(PAYLOAD)
            rep.pop()
        push, pop = req.push, rep.pop
        t0 = time.perf_counter_ns()
        for _ in range(iters):
            push(PAYLOAD)
            pop()
        return (time.perf_counter_ns() - t0) / iters
    finally:
        req.close()
        server.join()
        req.destroy()
        rep.destroy()


def _produce(name, count):
    q = Queue.attach(name)
    batch = [PAYLOAD] * BATCH
    for start in range(0, count, BATCH):
        q.push_batch(batch[: min(BATCH, count - start)])


def _consume(name, counter):
    q = Queue.attach(name)
    n = 0
    try:
        while True:
            n += len(q.pop_batch(BATCH))
    except QueueClosed:
        pass
    with counter.get_lock():
        counter.value += n


def throughput(n_producers, n_consumers, items):
    q = fresh(f"tp{n_producers}x{n_consumers}", capacity=8192, slot_size=128)
    counter = CTX.Value("q", 0)
    consumers = [CTX.Process(target=_consume, args=(q.name, counter)) for _ in range(n_consumers)]
    producers = [CTX.Process(target=_produce, args=(q.name, items // n_producers)) for _ in range(n_producers)]
    for p in consumers:
        p.start()
    time.sleep(0.2)  # consumers are asleep in pop_batch
    t0 = time.perf_counter()
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    q.close()  # consumers drain, then stop
    for p in consumers:
        p.join()
    elapsed = time.perf_counter() - t0  # includes forking the producers
    q.destroy()
    assert counter.value == items // n_producers * n_producers
    return counter.value / elapsed


def main():
    print(f"mpiray queue benchmark ({os.cpu_count()} CPUs, payload {len(PAYLOAD)} B)")
    raw = futex_pingpong_rtt_ns(RTT_ITERS)
    rtt = queue_rtt_ns(RTT_ITERS)
    raw_after = futex_pingpong_rtt_ns(RTT_ITERS)
    raw_mean = (raw + raw_after) / 2
    print(f"raw futex ping-pong RTT (C++, 2 processes)     : {raw_mean / 1000:8.2f} us  "
          f"(before {raw / 1000:.2f}, after {raw_after / 1000:.2f})")
    print(f"queue request->reply RTT (Python, 2 queues)     : {rtt / 1000:8.2f} us  "
          f"ratio {rtt / raw_mean:.2f}x raw (goal <= 1.5x)")
    one = throughput(1, 1, 2_000_000)
    print(f"throughput 1 producer x 1 consumer, batched     : {one / 1e6:8.2f} M items/s  "
          f"ratio {one / 2e6:.2f}x the 2 M/s goal")
    two = throughput(2, 2, 2_000_000)
    print(f"throughput 2 producers x 2 consumers, batched   : {two / 1e6:8.2f} M items/s  "
          f"ratio {two / one:.2f}x 1x1")


if __name__ == "__main__":
    main()

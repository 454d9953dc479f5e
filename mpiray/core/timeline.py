"""timeline(): the tasks and actor calls the cluster ran, as Chrome trace events.

    worker: clock around each task / call ──► Timings ──one TIMINGS event with its next
        flush of events──► its node's scheduler: TaskLog (flat arrays, the last
        TASK_LOG_SIZE) ──► timeline() in the driver (other nodes' logs over MPI:
        DriverLink.ask("task_log"), roles.py)

Open the file in chrome://tracing or https://ui.perfetto.dev: one row per worker process,
grouped by node. Times are the workers' wall clocks (so nodes on different hosts are only
as aligned as their clocks).
"""

from __future__ import annotations

import json
import os
import time
from array import array

ID_SIZE = 16   # bytes of task id kept per entry


def enabled() -> bool:
    """Workers time their tasks only when MPIRAY_TASK_EVENTS=1 was in the driver's
    environment at init() (each node's zygote passes it on to its workers): timing every
    task and call costs the hot paths 5-10% (docs/api.md, "timeline()")."""
    return os.environ.get("MPIRAY_TASK_EVENTS", "0") not in ("", "0")


def clock():
    """The clock of timeline()'s events in this process, or one that reads 0.0 (no event)."""
    return time.time if enabled() else float


def chrome_events(logs) -> list:
    """logs: [(node index, [((name, pid, start, end), task id), ...]), ...]."""
    events = []
    for node, log in logs:
        for (name, pid, start, end), task_id in log:
            events.append({
                "cat": "task", "name": name, "ph": "X",
                "pid": f"node {node}", "tid": f"worker {pid}",
                "ts": start * 1e6, "dur": max(0.0, end - start) * 1e6,
                "args": {"task_id": task_id.hex() if task_id else None},
            })
    events.sort(key=lambda e: e["ts"])
    return events


def write(events, filename) -> None:
    with open(filename, "w") as f:
        json.dump(events, f)


def local_log(scheduler) -> list:
    with scheduler.lock:   # (workers' ends are added under it)
        return scheduler.task_log.entries()


class Timings:
    """A worker's tasks and calls since its channel last flushed; they go with its other
    events as one TIMINGS event (WorkerChannel.flush). Per call: two clock reads and one
    append. (A timing sent with each task's end and logged one by one in the scheduler
    cost actor_async 15%: the inbox thread's time per event is the driver's lost time.)"""

    def __init__(self):
        self.entries = []      # (name, start, end, task id); one append: thread-safe
        self.pid = os.getpid()

    def take(self):
        """The blob of what was added since the last take, or None."""
        taken, self.entries = self.entries, []
        # A thread that fetched the old list just before the swap may still append to
        # it: work on a copy, so the names, times and ids built below stay aligned
        # (such a late entry is dropped).
        entries = list(taken)
        if not entries:
            return None
        times = array("d")
        for _, start, end, _ in entries:
            times.append(start)
            times.append(end)
        ids = b"".join((e[3] or b"")[:ID_SIZE].ljust(ID_SIZE, b"\0") for e in entries)
        return (self.pid, [e[0] for e in entries], times.tobytes(), ids)


class TaskLog:
    """A node's last `size` timed tasks and calls in flat arrays: no Python object per
    entry for the collector to walk (keeping the workers' blobs as sent cost task_async
    20% and actor_async 40% once 100,000 were held)."""

    def __init__(self, size: int):
        self.size = size
        self.name_ids = {}             # name -> its index in names
        self.names = []
        self.name_of = array("I")      # per entry: index in names
        self.pids = array("i")
        self.times = array("d")        # per entry: start, end
        self.ids = bytearray()         # per entry: ID_SIZE bytes of task id

    def add_blob(self, blob) -> None:
        pid, names, times, ids = blob
        known = self.name_ids
        for name in names:
            k = known.get(name)
            if k is None:
                k = known[name] = len(self.names)
                self.names.append(name)
            self.name_of.append(k)
            self.pids.append(pid)
        self.times.frombytes(times)
        self.ids += ids
        if len(self.name_of) >= 2 * self.size:   # drop the oldest, a block at a time
            cut = len(self.name_of) - self.size
            del self.name_of[:cut], self.pids[:cut], self.times[:2 * cut], self.ids[:ID_SIZE * cut]

    def entries(self) -> list:
        """[((name, pid, start, end), task id)], oldest first (the last `size`)."""
        n = len(self.name_of)
        t, ids = self.times, self.ids
        return [((self.names[self.name_of[i]], self.pids[i], t[2 * i], t[2 * i + 1]),
                 bytes(ids[ID_SIZE * i: ID_SIZE * (i + 1)])) for i in range(max(0, n - self.size), n)]

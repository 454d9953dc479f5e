"""timeline(): the tasks and actor calls the cluster ran, as Chrome trace events.

    worker: time.time() around each task / call ──TASK_DONE / ACTOR_DONE (timing)──►
    its node's scheduler: task_log (the last TASK_LOG_SIZE) ──► timeline() in the driver
    (other nodes' logs come over MPI: "timeline" ──► "timeline_events", roles.py)

Open the file in chrome://tracing or https://ui.perfetto.dev: one row per worker process,
grouped by node. Times are the workers' wall clocks (so nodes on different hosts are only
as aligned as their clocks).
"""

from __future__ import annotations

import collections
import json
import os
from array import array

# Workers time every task and actor call (two clock reads and a small tuple per call:
# ~0.5 us, ~5% of an actor call); MPIRAY_TASK_EVENTS=0 turns it off, and timeline() is empty.
ENABLED = os.environ.get("MPIRAY_TASK_EVENTS", "1") not in ("", "0")


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
        entries, self.entries = self.entries, []
        if not entries:
            return None
        times = array("d")
        for _, start, end, _ in entries:
            times.append(start)
            times.append(end)
        ids = b"".join((e[3] or b"")[:ID_SIZE].ljust(ID_SIZE, b"\0") for e in entries)
        return (self.pid, [e[0] for e in entries], times.tobytes(), ids)


ID_SIZE = 16


class TaskLog:
    """A node's last `size` timed tasks and calls, kept as the blobs workers sent (decoded
    only when timeline() asks)."""

    def __init__(self, size: int):
        self.size = size
        self.blobs = collections.deque()
        self.held = 0          # entries in blobs

    def add_blob(self, blob) -> None:
        self.blobs.append(blob)
        self.held += len(blob[1])
        while self.held - len(self.blobs[0][1]) >= self.size:
            self.held -= len(self.blobs.popleft()[1])

    def entries(self) -> list:
        """[((name, pid, start, end), task id)], oldest first (the last `size`)."""
        out = []
        for pid, names, times, ids in self.blobs:
            t = array("d")
            t.frombytes(times)
            for j, name in enumerate(names):
                out.append(((name, pid, t[2 * j], t[2 * j + 1]), ids[ID_SIZE * j: ID_SIZE * (j + 1)]))
        return out[-self.size:]

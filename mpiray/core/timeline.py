"""timeline(): the tasks and actor calls the cluster ran, as Chrome trace events.

    worker: time.time() around each task / call ──TASK_DONE / ACTOR_DONE (timing)──►
    its node's scheduler: task_log (the last TASK_LOG_SIZE) ──► timeline() in the driver
    (other nodes' logs come over MPI: "timeline" ──► "timeline_events", roles.py)

Open the file in chrome://tracing or https://ui.perfetto.dev: one row per worker process,
grouped by node. Times are the workers' wall clocks (so nodes on different hosts are only
as aligned as their clocks).
"""

from __future__ import annotations

import json
import os

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
    with scheduler.lock:   # (workers' ends are appended under it)
        return list(scheduler.task_log)

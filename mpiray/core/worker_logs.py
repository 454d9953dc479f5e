"""Each worker's log files, as Ray keeps them: <session dir>/logs/worker-<worker id>-
<job id>-<pid>.out and .err, what the worker wrote (print() and raw output alike, without
the driver's prefix), written by the node's log thread (core/worker_output.py).

    list_logs() ──► every node: its files, by Ray's categories (worker_out, worker_err)
    get_log(filename= | pid= | actor_id=) ──► the node holding it: its last `tail` lines

The files go with the session's directory at shutdown (Ray keeps its session logs).
"""

from __future__ import annotations

import fnmatch
import os
from collections import deque

LOG_DIR = "logs"


def log_dir(session_dir: str) -> str:
    return os.path.join(session_dir, LOG_DIR)


def stem(directory: str, worker_id: str, job_id: str, pid: int) -> str:
    return os.path.join(directory, f"worker-{worker_id}-{job_id}-{pid}")


def listing(directory: str, glob_filter=None) -> dict:
    """{"worker_out": [names], "worker_err": [names]} of the files in directory."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    out = {}
    for name in names:
        if glob_filter and not fnmatch.fnmatch(name, glob_filter):
            continue
        category = "worker_out" if name.endswith(".out") else "worker_err" if name.endswith(".err") else "misc"
        out.setdefault(category, []).append(name)
    return out


def find(directory: str, filename=None, pid=None, suffix="out"):
    """The name of the file asked for in directory, or None."""
    names = [n for cat in listing(directory).values() for n in cat]
    if filename is not None:
        return filename if filename in names else None
    want = f"-{pid}.{suffix}"
    return next((n for n in names if n.startswith("worker-") and n.endswith(want)), None)


def tail(directory: str, name: str, lines: int) -> str:
    """The last `lines` lines of the file (every line: lines < 0)."""
    path = os.path.join(directory, os.path.basename(name))
    with open(path, encoding="utf-8", errors="replace") as f:
        if lines is None or lines < 0:
            return f.read()
        return "".join(deque(f, maxlen=lines))

"""Ray's memory monitor: when the node's memory use passes a threshold, one worker is
killed (the newest retriable task or actor, else the newest) before the kernel's OOM
killer picks a process itself, often the driver or whatever holds the object store.

    every refresh_s: used / total (the cgroup's limit when that is lower) >= threshold?
        ──► Scheduler.oom_victim(): a running task's worker, or an actor's process
        ──► its slot marked with the reason, SIGKILL ──► WORKER_DIED (from the zygote):
            a task is retried (max_retries) or fails with OutOfMemoryError; an actor
            restarts (max_restarts) or dies, its running calls fail with OutOfMemoryError
        ──► no other kill until that process is gone (its memory is back)

Settings, as Ray's: memory_usage_threshold (0.95) and memory_monitor_refresh_ms (250;
0 turns the monitor off), from init(_system_config=...) or RAY_memory_usage_threshold /
RAY_memory_monitor_refresh_ms.
"""

from __future__ import annotations

import os
import signal
import threading

THRESHOLD = 0.95
REFRESH_MS = 250
DOCS = "https://docs.ray.io/en/latest/ray-core/scheduling/ray-oom-prevention.html"


def settings(system_config: dict) -> tuple:
    """(threshold, refresh seconds: 0 = off) from _system_config, then Ray's variables."""
    cfg = system_config or {}
    threshold = float(os.environ.get("RAY_memory_usage_threshold",
                                     cfg.get("memory_usage_threshold", THRESHOLD)))
    refresh_ms = float(os.environ.get("RAY_memory_monitor_refresh_ms",
                                      cfg.get("memory_monitor_refresh_ms", REFRESH_MS)))
    if not 0 < threshold <= 1:
        raise ValueError(f"memory_usage_threshold must be in (0, 1], got {threshold!r}")
    if refresh_ms < 0:
        raise ValueError(f"memory_monitor_refresh_ms must be >= 0, got {refresh_ms!r}")
    return threshold, refresh_ms / 1000.0


def node_memory() -> tuple:
    """(bytes used, bytes total) of this node: the host's (MemTotal - MemAvailable), or
    its cgroup's use and limit when the limit is the lower (a container, a Slurm job)."""
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    total = info["MemTotal"]
    used = total - info.get("MemAvailable", info.get("MemFree", 0))
    limited = _cgroup_memory()
    if limited is not None and limited[1] < total:
        return limited
    return used, total


def _cgroup_memory():
    """(used, limit) of this process's cgroup v2 (less its reclaimable file cache), or
    None without a limit."""
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
        base = os.path.join("/sys/fs/cgroup", path.lstrip("/"))
        with open(os.path.join(base, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(base, "memory.current")) as f:
            current = int(f.read())
        inactive = 0
        with open(os.path.join(base, "memory.stat")) as f:
            for line in f:
                if line.startswith("inactive_file "):
                    inactive = int(line.split()[1])
        return max(0, current - inactive), int(limit)
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def kill_message(victim: dict, used: int, total: int, threshold: float, node: dict) -> str:
    """Ray's OutOfMemoryError text for the process the monitor kills."""
    gb = 2**30
    what = victim["what"]
    return (f"{what.capitalize()} was killed due to the node running low on memory.\n"
            f"Memory on the node (IP: {node['ip']}, ID: {node['id']}) where the {what} "
            f"({victim['name']}, pid={victim['pid']}, memory used="
            f"{rss_bytes(victim['pid']) / gb:.2f}GB) was running was {used / gb:.2f}GB / "
            f"{total / gb:.2f}GB ({used / total:.6f}), which exceeds the memory usage "
            f"threshold of {threshold}. Ray killed this worker because it was the most "
            f"recently scheduled {'retriable ' if victim['retriable'] else ''}{what}. "
            f"Refer to the documentation on how to address the out of memory issue: {DOCS}. "
            "Consider provisioning more memory on this node or reducing task parallelism "
            "by requesting more CPUs per task. To adjust the kill threshold, set the "
            "environment variable `RAY_memory_usage_threshold` when starting Ray. To "
            "disable worker killing, set the environment variable "
            "`RAY_memory_monitor_refresh_ms` to zero.")


class MemoryMonitor:
    """The node's monitor thread (Node.start starts it when refresh_s > 0)."""

    def __init__(self, scheduler, threshold: float, refresh_s: float, node: dict):
        self.scheduler, self.threshold, self.refresh_s = scheduler, threshold, refresh_s
        self.node = node                # {"ip", "id"}: for the error's text
        self.stop_event = threading.Event()
        self.killed_pid = None          # the last victim, until its process is gone

    def run(self):
        while not self.stop_event.wait(self.refresh_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a failed look must not end the monitor
                pass

    def check(self):
        if self.killed_pid is not None:
            if os.path.exists(f"/proc/{self.killed_pid}"):
                return   # (its memory is not back yet: one kill at a time)
            self.killed_pid = None
        used, total = node_memory()
        if used < self.threshold * total:
            return
        s = self.scheduler
        with s.lock:
            victim = s.oom_victim()
            if victim is None:
                return
            s.oom_killed[victim["slot"]] = kill_message(victim, used, total, self.threshold, self.node)
        self.killed_pid = victim["pid"]
        try:
            os.kill(victim["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self):
        self.stop_event.set()


def newest(candidates: list):
    """The one to kill: a retriable one before any other, the most recently started first
    (Ray's policy: what was started last has done the least work)."""
    return max(candidates, key=lambda c: (c["retriable"], c["started"]), default=None)

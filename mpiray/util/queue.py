"""mpiray.util.queue.Queue: a FIFO shared by the driver, tasks and actors.

The items live in one threaded actor (a stdlib queue.Queue inside it), so a blocking
get in one caller never stops a put from another. Empty and Full are the stdlib's.
"""

from __future__ import annotations

import math
import queue as _stdlib_queue
from queue import Empty, Full

import mpiray


class _QueueActor:
    def __init__(self, maxsize):
        self.q = _stdlib_queue.Queue(maxsize)

    def qsize(self):
        return self.q.qsize()

    def empty(self):
        return self.q.empty()

    def full(self):
        return self.q.full()

    def put(self, item, block, timeout):
        try:
            self.q.put(item, block, timeout)
            return True
        except Full:
            return False

    def get(self, block, timeout):
        try:
            return True, self.q.get(block, timeout)
        except Empty:
            return False, None

    def put_batch(self, items):
        if self.q.maxsize > 0 and self.q.qsize() + len(items) > self.q.maxsize:
            return False
        for item in items:
            self.q.put_nowait(item)
        return True

    def get_batch(self, n):
        if self.q.qsize() < n:
            return None
        return [self.q.get_nowait() for _ in range(n)]


class Queue:
    def __init__(self, maxsize: int = 0, actor_options: dict | None = None):
        if not isinstance(maxsize, (int, float)) or isinstance(maxsize, bool):
            raise TypeError(f"maxsize must be a number, got {maxsize!r}")
        self.maxsize = maxsize   # (kept as given, as Ray's: 0 or less is unbounded)
        maxsize = max(0, math.ceil(maxsize))   # (1.5: full at 2 items, as asyncio.Queue)
        opts = {"max_concurrency": 1000, "num_cpus": 0, **(actor_options or {})}
        self.actor = mpiray.remote(**opts)(_QueueActor).remote(maxsize)

    def __len__(self):
        return self.qsize()

    def size(self):
        return self.qsize()

    def qsize(self):
        return mpiray.get(self.actor.qsize.remote())

    def empty(self):
        return mpiray.get(self.actor.empty.remote())

    def full(self):
        return mpiray.get(self.actor.full.remote())

    def put(self, item, block=True, timeout=None):
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        if not mpiray.get(self.actor.put.remote(item, block, timeout)):
            raise Full

    def put_nowait(self, item):
        self.put(item, block=False)

    def put_nowait_batch(self, items):
        if not mpiray.get(self.actor.put_batch.remote(list(items))):
            raise Full(f"Cannot add {len(items)} items to queue of size {self.qsize()} "
                       f"and maxsize {self.maxsize}.")

    def get(self, block=True, timeout=None):
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        ok, item = mpiray.get(self.actor.get.remote(block, timeout))
        if not ok:
            raise Empty
        return item

    def get_nowait(self):
        return self.get(block=False)

    async def put_async(self, item, block=True, timeout=None):
        """put() for asyncio code: awaits the queue actor instead of blocking."""
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        if not await self.actor.put.remote(item, block, timeout):
            raise Full

    async def get_async(self, block=True, timeout=None):
        """get() for asyncio code: awaits the queue actor instead of blocking."""
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        ok, item = await self.actor.get.remote(block, timeout)
        if not ok:
            raise Empty
        return item

    def get_nowait_batch(self, num_items):
        if not isinstance(num_items, int) or isinstance(num_items, bool):
            raise TypeError(f"'num_items' must be an int, got {type(num_items).__name__}")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        items = mpiray.get(self.actor.get_batch.remote(num_items))
        if items is None:
            raise Empty(f"Cannot get {num_items} items from queue of size {self.qsize()}.")
        return items

    def shutdown(self, force=False, grace_period_s=5):
        if self.actor is not None:
            mpiray.kill(self.actor)
        self.actor = None


__all__ = ["Queue", "Empty", "Full"]

"""The tasks of one resource shape that wait for resources, deepest first.

    _to_ready ──append──► level[depth] (FIFO) ──popleft: deepest non-empty level──► dispatch

Why deepest first: a task blocked in get() lends its CPU, and the node starts a worker for
whatever runs next. If that were the next of the driver's many tasks (FIFO), a burst of
parents each waiting for a child would start a worker per parent, up to the node's limit,
and then wait for ever for children no worker is left to run (a recursive fib(13) on two
CPUs did). Run deepest first, a blocked parent's children take its CPU, so the workers
started grow with the recursion's depth, not its width (the DFS rule Ray's scheduler
took up for nested tasks). Tasks of one depth keep their submission order.
"""

from __future__ import annotations

import collections


class ReadyQueue:
    __slots__ = ("levels", "top", "head", "n")

    def __init__(self):
        self.levels = {}   # depth -> deque of TaskRecord (no empty one is kept)
        self.top = None    # the deepest depth that holds a task (None: empty)
        self.head = None   # levels[top]: the hot path (one depth) touches no dict
        self.n = 0

    def _level(self, depth):
        if depth == self.top:
            return self.head
        level = self.levels.get(depth)
        if level is None:
            level = self.levels[depth] = collections.deque()
        if self.top is None or depth > self.top:
            self.top, self.head = depth, level
        return level

    def append(self, rec):
        depth = rec.spec.depth
        (self.head if depth == self.top else self._level(depth)).append(rec)
        self.n += 1

    def appendleft(self, rec):
        self._level(rec.spec.depth).appendleft(rec)
        self.n += 1

    def popleft(self):
        head = self.head
        rec = head.popleft()
        self.n -= 1
        if not head:
            self._drop(self.top)
        return rec

    def remove(self, rec):
        depth = rec.spec.depth
        level = self.levels[depth]
        level.remove(rec)
        self.n -= 1
        if not level:
            self._drop(depth)

    def _drop(self, depth):
        """An emptied level goes (a chain of continuations makes a new depth per hop)."""
        del self.levels[depth]
        if depth == self.top:
            self.top = max(self.levels) if self.levels else None
            self.head = self.levels[self.top] if self.levels else None

    def __getitem__(self, i):
        if i:
            raise IndexError("a ready queue shows its next task only")
        return self.head[0]   # (TypeError on an empty queue, as good as IndexError here)

    def __len__(self):
        return self.n

    def __bool__(self):
        return self.n > 0

    def __iter__(self):
        for depth in sorted(self.levels, reverse=True):
            yield from self.levels[depth]

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
    __slots__ = ("levels", "top", "n")

    def __init__(self):
        self.levels = {}   # depth -> deque of TaskRecord
        self.top = None    # the deepest level that holds a task (None: empty)
        self.n = 0

    def _level(self, depth):
        level = self.levels.get(depth)
        if level is None:
            level = self.levels[depth] = collections.deque()
        if self.top is None or depth > self.top:
            self.top = depth
        return level

    def append(self, rec):
        self._level(rec.spec.depth).append(rec)
        self.n += 1

    def appendleft(self, rec):
        self._level(rec.spec.depth).appendleft(rec)
        self.n += 1

    def popleft(self):
        level = self.levels[self.top]
        rec = level.popleft()
        self.n -= 1
        if not level:
            self._lower_top()
        return rec

    def remove(self, rec):
        level = self.levels[rec.spec.depth]
        level.remove(rec)
        self.n -= 1
        if not level and rec.spec.depth == self.top:
            self._lower_top()

    def _lower_top(self):
        self.top = max((d for d, level in self.levels.items() if level), default=None)

    def __getitem__(self, i):
        if i != 0 or self.top is None:
            raise IndexError("a ready queue shows its next task only")
        return self.levels[self.top][0]

    def __len__(self):
        return self.n

    def __bool__(self):
        return self.n > 0

    def __iter__(self):
        for depth in sorted(self.levels, reverse=True):
            yield from self.levels[depth]

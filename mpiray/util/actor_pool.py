"""ActorPool: spread work over a fixed set of actors, results in order or as they come.

    submit(fn, v) ──idle actor?──► fn(actor, v) -> ref ──► in flight
                   └─ none idle ──► backlog (sent when an actor frees up)
    get_next()           ──► result of the oldest submission
    get_next_unordered() ──► whichever finishes first
"""

from __future__ import annotations

import collections

import mpiray


class ActorPool:
    def __init__(self, actors):
        self._idle = list(actors)
        self._future_to_actor = {}        # ref -> (index, actor)
        self._index_to_future = {}        # submission index -> ref
        self._next_task_index = 0
        self._next_return_index = 0
        self._backlog = collections.deque()

    def map(self, fn, values):
        self._drain_old_results()
        for v in values:
            self.submit(fn, v)
        while self.has_next():
            yield self.get_next()

    def map_unordered(self, fn, values):
        self._drain_old_results()
        for v in values:
            self.submit(fn, v)
        while self.has_next():
            yield self.get_next_unordered()

    def _drain_old_results(self):
        while self.has_next():
            self.get_next_unordered()

    def submit(self, fn, value):
        if self._idle:
            actor = self._idle.pop()
            ref = fn(actor, value)
            self._future_to_actor[ref] = (self._next_task_index, actor)
            self._index_to_future[self._next_task_index] = ref
            self._next_task_index += 1
        else:
            self._backlog.append((fn, value))

    def has_next(self):
        return bool(self._future_to_actor) or bool(self._backlog)

    def has_free(self):
        return bool(self._idle) and not self._backlog

    def get_next(self, timeout=None, ignore_if_timedout=False):
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        ref = self._index_to_future[self._next_return_index]
        if timeout is not None:
            ready, _ = mpiray.wait([ref], timeout=timeout)
            if not ready:
                if ignore_if_timedout:
                    return None
                raise TimeoutError("Timed out waiting for result")
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(ref)
        self._return_actor(actor)
        return mpiray.get(ref)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = mpiray.wait(list(self._future_to_actor), num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                return None
            raise TimeoutError("Timed out waiting for result")
        ref = ready[0]
        index, actor = self._future_to_actor.pop(ref)
        self._index_to_future.pop(index, None)
        self._next_return_index = max(self._next_return_index, index + 1)
        self._return_actor(actor)
        return mpiray.get(ref)

    def _return_actor(self, actor):
        self._idle.append(actor)
        if self._backlog:
            self.submit(*self._backlog.popleft())

    def push(self, actor):
        busy = {a for _, a in self._future_to_actor.values()}
        if actor in self._idle or actor in busy:
            raise ValueError("Actor already belongs to this pool")
        self._return_actor(actor)

    def pop_idle(self):
        return self._idle.pop() if self.has_free() else None

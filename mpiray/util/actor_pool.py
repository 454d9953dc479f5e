"""ActorPool: spread work over a fixed set of actors, results in order or as they come.

    submit(fn, v) ──idle actor?──► fn(actor, v) -> ref ──► in flight
                   └─ none idle ──► backlog (sent when an actor frees up)
    get_next()           ──► result of the oldest submission
    get_next_unordered() ──► whichever finishes first

An actor whose call failed with ActorDiedError leaves the pool (as Ray's): the rest goes
on without it.

fn may return a ref or a list of refs (a method with num_returns > 1): a list is kept
as a tuple key and is done when its last ref is (its refs come from one actor, in order).
"""

from __future__ import annotations

import collections

import mpiray


class ActorPool:
    def __init__(self, actors):
        self._idle_actors = list(actors)
        self._future_to_actor = {}        # ref -> (index, actor)
        self._index_to_future = {}        # submission index -> ref
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits = collections.deque()

    def map(self, fn, values):
        """Submits every value now (as Ray's); the results come in order as iterated."""
        self._drain_old_results()
        for v in values:
            self.submit(fn, v)
        return self._results(self.get_next)

    def map_unordered(self, fn, values):
        self._drain_old_results()
        for v in values:
            self.submit(fn, v)
        return self._results(self.get_next_unordered)

    def _results(self, take):
        while self.has_next():
            yield take()

    def _drain_old_results(self):
        """Earlier submissions' results are dropped, finished or not (as Ray's map does)."""
        while self.has_next():
            try:
                self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    def submit(self, fn, value):
        if self._idle_actors:
            actor = self._idle_actors.pop()
            ref = fn(actor, value)
            key = tuple(ref) if isinstance(ref, list) else ref
            self._future_to_actor[key] = (self._next_task_index, actor)
            self._index_to_future[self._next_task_index] = key
            self._next_task_index += 1
        else:
            self._pending_submits.append((fn, value))

    def has_next(self):
        """Submissions in flight (as Ray's: a backlog no actor is left to run is not)."""
        return bool(self._future_to_actor)

    def has_free(self):
        return bool(self._idle_actors) and not self._pending_submits

    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The oldest submission's result. On timeout: TimeoutError; with
        ignore_if_timedout the submission is also dropped from the pool (Ray's)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        key = self._index_to_future[self._next_return_index]
        timed_out = timeout is not None and not mpiray.wait([_last(key)], timeout=timeout)[0]
        if timed_out and not ignore_if_timedout:
            raise TimeoutError("Timed out waiting for result")
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(key)
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {key} has been ignored.")
        return self._result(key, actor)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """Whichever submission finishes first. On timeout: TimeoutError; with
        ignore_if_timedout the oldest submission is dropped from the pool."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        by_last = {_last(k): k for k in self._future_to_actor}
        ready, _ = mpiray.wait(list(by_last), num_returns=1, timeout=timeout)
        if not ready and not ignore_if_timedout:
            raise TimeoutError("Timed out waiting for result")
        key = by_last[ready[0]] if ready else min(self._future_to_actor,
                                                   key=lambda k: self._future_to_actor[k][0])
        index, actor = self._future_to_actor.pop(key)
        self._index_to_future.pop(index, None)
        self._next_return_index = max(self._next_return_index, index + 1)
        if not ready:
            self._return_actor(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {key} has been ignored.")
        return self._result(key, actor)

    def _result(self, key, actor):
        alive = True
        try:
            return mpiray.get(_value_refs(key))
        except mpiray.exceptions.ActorDiedError:
            alive = False   # (kept, every later submit would go to it and fail too)
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor, alive=True):
        if alive:
            self._idle_actors.append(actor)
        if self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.popleft())

    def push(self, actor):
        busy = {a for _, a in self._future_to_actor.values()}
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)

    def pop_idle(self):
        return self._idle_actors.pop() if self.has_free() else None


def _last(key):
    return key[-1] if isinstance(key, tuple) else key


def _value_refs(key):
    return list(key) if isinstance(key, tuple) else key

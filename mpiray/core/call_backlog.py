"""Actor calls the scheduler hands to a full actor queue wait here, never in the scheduler.

Under MPI a worker's actor calls, and calls from other nodes, reach the actor's queue
through its node's scheduler (core/actor_routing.py). The scheduler must never wait for
room: it holds its lock, and the actor it waits on may itself be waiting to report its
calls' ends through the inbox that only the scheduler drains (a deadlock once a burst of
calls filled the queue). So a call that finds the queue full, or calls already waiting,
joins the actor's backlog, and a thread of its own pushes the backlog in order, waiting
for room without any lock held.

    scheduler ──push(actor, spec)──► room, nothing waiting ──► the actor's queue
                                     full, or a backlog ──► backlog[actor] (FIFO)
    backlog thread ──blocking push──► the actor's queue, front first, until empty
                   └─ the queue is gone (the actor died) ──► gone(spec) through the
                      scheduler (its lock, then a dispatch): the call fails with the
                      actor's death cause; the node stopping: the thread just ends

Per-caller order holds: every call of one caller comes through the scheduler in order,
and once a backlog exists every call for that actor joins it.
"""

from __future__ import annotations

import collections
import threading


class CallBacklog:
    def __init__(self, io, stimulus, gone):
        """io: NodeIO (push_actor_call_or_false, actor_queue, stopping); stimulus(fn,
        *args): runs fn under the scheduler's lock, then its dispatch; gone(spec): fails a
        call whose actor's queue is gone."""
        self.io, self.stimulus, self.gone = io, stimulus, gone
        self.lock = threading.Lock()
        self.waiting = {}   # actor id -> deque of specs (its thread runs while present)

    def push(self, actor_id, spec) -> bool:
        """The call onto the actor's queue, now or from the backlog; False if the queue
        is gone (the caller fails the call)."""
        with self.lock:
            backlog = self.waiting.get(actor_id)
            if backlog is not None:
                backlog.append(spec)
                return True
        if self.io.push_actor_call_or_false(actor_id, spec, wait=False):
            return True
        if self.io.actor_queue(actor_id) is None:
            return False
        with self.lock:
            backlog = self.waiting.get(actor_id)
            if backlog is None:
                backlog = self.waiting[actor_id] = collections.deque()
                threading.Thread(target=self._drain, args=(actor_id, backlog),
                                 name="mpiray-call-backlog", daemon=True).start()
            backlog.append(spec)
        return True

    def pending(self, actor_id) -> int:
        with self.lock:
            return len(self.waiting.get(actor_id, ()))

    def _drain(self, actor_id, backlog):
        while True:
            with self.lock:
                if not backlog:
                    del self.waiting[actor_id]
                    return
                spec = backlog[0]
            pushed = self.io.push_actor_call_or_false(actor_id, spec, wait=True)
            with self.lock:
                backlog.popleft()
            if not pushed:
                if self.io.stopping():   # (its queues closed by shutdown: nothing to tell)
                    return
                self.stimulus(self.gone, spec)

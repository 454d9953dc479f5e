"""Actor calls whose arguments are not ready yet wait in their caller's process, so that
they never hold up the actor (Ray resolves an actor call's arguments at its caller too):
a call blocked on its argument inside the actor would stop every other caller's calls,
and deadlock when the argument's task itself calls that actor.

    call_actor ──► every argument sealed here, and no earlier call of this process
    │              to that actor waiting?  yes ──► the actor's queue, at once
    │ no
    ▼
    backlogs[actor]: the calls in the order they were made (one caller's order holds)
        the first one's missing argument (or its answer) ──► futures.Waiter
        sealed ──► the ready calls at the front go to the actor's queue, in order
                   ──► the next one that waits is watched, until the backlog is empty
    actor's queue full (.remote() must not wait) ──► backlogs[actor] too; a thread pushes
        the front call as soon as there is room, then the backlog goes on as above

Under MPI a missing argument is fetched to this node while it waits (as a task's
arguments are to the node that queues it). A cancelled call goes on at once: its caller
was answered already (its first return says it was cancelled), and the actor skips it.
"""

from __future__ import annotations

import threading
from collections import deque

from mpiray import _ids
from mpiray.core import futures, refcount
from mpiray.core.actor_spec import handle_key


class DeferredCalls:
    def __init__(self, runtime):
        self.rt = runtime
        self.lock = threading.Lock()
        self.emptied = threading.Condition(self.lock)
        self.backlogs = {}   # actor id (in order) or call id -> deque of calls (TaskSpec), oldest first
        self.active = set()  # keys whose backlog one chain (_advance, a watch, a room
        #                      thread) is working through: never two at once
        self.pushing = set()  # task ids of the calls a chain is sending now

    def defer(self, spec, in_order=True) -> bool:
        """True if the call waits here; False: it may go to the actor now. in_order: the
        actor runs this caller's calls in order, so they queue behind one that waits
        (an async or threaded actor's calls each wait on their own, as in Ray)."""
        key = spec.actor_id if in_order else spec.task_id
        if key not in self.backlogs and self._missing(spec) is None:
            return False
        with self.lock:
            if key not in self.backlogs and self._missing(spec) is None:
                return False   # (its argument was sealed meanwhile)
            start = self._append(key, spec)
        if start:
            self._advance(key)
        return True

    def overflow(self, spec):
        """The actor's queue is full: the call waits here, behind any of this process's
        calls to it that wait already, and goes as soon as there is room."""
        with self.lock:
            start = self._append(spec.actor_id, spec)
        if start:
            self._advance(spec.actor_id)

    def _append(self, key, spec) -> bool:
        """(under the lock) True if no chain works on key yet: the caller starts one. The
        waiting call holds its actor as a handle does (Ray's pending call keeps the actor
        in scope), so a caller may drop its handle right after the call."""
        refcount.add_local(handle_key(spec.actor_id))
        backlog = self.backlogs.get(key)
        if backlog is None:
            backlog = self.backlogs[key] = deque()
        backlog.append(spec)
        if key in self.active:
            return False
        self.active.add(key)
        return True

    def _missing(self, spec):
        """The first of the call's arguments not sealed here; None if it may go (its
        arguments are ready, or it was cancelled)."""
        contains = self.rt.store.contains
        for dep in spec.deps:
            if not contains(dep):
                if contains(_answer(spec)) or contains(
                        _ids.object_id(spec.task_id, _ids.CANCEL_INDEX)):
                    return None
                return dep
        return None

    def _advance(self, key):
        """(the key's one chain) Sends the backlog's ready calls on, in order, outside
        the lock; then watches for the argument the next one waits for, or waits for
        room in its actor's queue in a thread, or ends (the backlog is empty)."""
        while True:
            with self.lock:
                backlog = self.backlogs.get(key)
                if not backlog:
                    self.backlogs.pop(key, None)
                    self.active.discard(key)
                    self.emptied.notify_all()
                    return
                spec = backlog[0]
                dep = self._missing(spec)
                if dep is not None:
                    break
                self.pushing.add(spec.task_id)
            if not self._push(spec, wait=False):
                threading.Thread(target=self._when_room, args=(key, spec),
                                 name="mpiray-call-overflow", daemon=True).start()
                return
            self._pop(key, spec)
        futures.waiter_of(self.rt).watch([dep, _answer(spec)],
                                         lambda oid: self._sealed(key, oid), lends=False)

    def _push(self, spec, wait) -> bool:
        try:
            return self.rt.push_now(spec, wait=wait)
        except Exception as exc:  # noqa: BLE001 - the call fails, not the calls behind it
            self.rt._fail_call_locally(spec, exc)
            return True

    def _pop(self, key, spec):
        with self.lock:
            self.pushing.discard(spec.task_id)
            backlog = self.backlogs.get(key)
            if backlog and backlog[0] is spec:
                backlog.popleft()
        _let_go(spec)   # (sent: the actor's queue has it before any end of the actor)

    def _when_room(self, key, spec):
        """(a thread of its own) Pushes the front call, waiting for room, then the rest."""
        from mpiray.core import current

        try:
            self._push(spec, wait=True)
            self._pop(key, spec)
            self._advance(key)
        except Exception:  # noqa: BLE001 - the runtime shut down under it: the calls go with it
            if current.runtime() is self.rt:
                raise

    def _sealed(self, key, oid):
        if oid is None:   # the runtime shuts down: these calls go with it
            with self.lock:
                self.backlogs.pop(key, None)
                self.active.discard(key)
                self.emptied.notify_all()
            return
        self._advance(key)

    def send_all(self, timeout=1.0):
        """A process about to exit: the calls still waiting go to their actors now (each
        actor then waits for the argument itself), in order, after a short wait for them
        to go the usual way. Waiting longer could deadlock: this process's slot may be
        what the argument's task needs."""
        with self.lock:
            if self.emptied.wait_for(lambda: not self.backlogs, timeout):
                return
            waiting = [spec for backlog in self.backlogs.values() for spec in backlog
                       if spec.task_id not in self.pushing]   # (those go their own way)
            self.backlogs.clear()   # (the chains find nothing left and end)
        for spec in waiting:
            self._push(spec, wait=True)
            _let_go(spec)

    def waiting(self) -> int:
        with self.lock:
            return sum(len(b) for b in self.backlogs.values())


def _let_go(spec):
    try:
        refcount.remove_local(handle_key(spec.actor_id))
    except Exception:  # noqa: BLE001 - the runtime is gone (shutdown)
        pass


def _answer(spec) -> bytes:
    """The call's first return: sealed before the call went out only by a cancel's early
    answer (core/actor_manager.py, cancel_call)."""
    return _ids.object_id(spec.task_id, 1)

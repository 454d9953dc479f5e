"""The node's inbox, drained by the inbox thread or by the driver itself while it waits.

    workers ──events──► inbox queue ──┬─► inbox thread: wait_nonempty ─► drain
                                      └─► driver's get() of a running task's return:
                                          marked as the inbox's spinner, polls the store,
                                          then drains the task's end itself
    drain: pop a batch and apply it to the scheduler, under one lock (events apply in the
           order they were pushed, whoever pops them)

Why the driver helps: a task's end (TASK_DONE) is pushed a few microseconds after the
seal of its return. A driver blocked on that return is woken by the seal while the inbox
thread is woken by the end, and the two threads then trade the GIL on every task (two
futex wakes and a hand-off, about a third of a round trip). While the driver polls for
the return of a task that is running, it marks itself as the inbox's spinner, so the
worker's push wakes nobody, and it applies the end itself. The mark lasts one short poll:
whatever is left when it ends wakes the inbox thread as usual.
"""

from __future__ import annotations

import threading
import time
import traceback

from mpiray.core import protocol as P
from mpiray.core.native import QueueClosed

PUMP_CONSUMER = 0        # the inbox's spinner mark used by the driver (it has no recorded consumers)
THREAD_CONSUMER = 1      # the one the inbox thread spins as
THREAD_SPIN_S = 100e-6   # the inbox thread polls this long before it sleeps (adaptive below it)
RETURN_POLL_S = 200e-6   # how long the driver polls for a running task's return (then it sleeps)
END_POLL_S = 50e-6       # how long it then polls for the task's end, pushed after the seal
SETTLE_S = 0.05          # the most an error's get waits for its task's end (settle)
IDLE_S = 0.1             # the inbox thread wakes this often to apply the driver's ref events


class InboxPump:
    def __init__(self, inbox, store, scheduler):
        self.inbox = inbox
        self.store = store
        self.scheduler = scheduler
        self.lock = threading.Lock()
        self.owner = None  # the thread draining now (see drain)
        self.applied = 0   # inbox items applied so far
        self.in_hand = 0   # items the draining thread popped and is applying now

    def drain(self, max_items=256) -> int:
        """Pops what is there (up to max_items) and applies it; how many items it took.
        Called again by the thread that is draining (a collection inside the drain ran a
        user's __del__ that calls the API) it returns 0 at once: the lock is a plain one
        (re-entering would let events apply out of order), and the outer drain goes on."""
        me = threading.get_ident()
        if self.owner == me:
            return 0
        with self.lock:
            self.owner = me
            try:
                self.in_hand = max_items   # (while popping: at most this many, unknown yet)
                items = self.inbox.pop_batch(max_items, 0)
                self.in_hand = len(items)
                lists = []
                for item in items:
                    lists.append(P.loads(P.decode_item(item, self.store)))
                    P.release_item(item, self.store)
                if lists:
                    try:
                        self.scheduler.handle_event_lists(lists)
                    except Exception:  # noqa: BLE001 - a bug (in a dispatch, say) must not
                        traceback.print_exc()  # kill the inbox thread, and so the node
            finally:
                self.applied += self.in_hand
                self.in_hand = 0
                self.owner = None
        return len(items)

    def serve_forever(self):
        """The inbox thread's body, until the inbox is closed."""
        sched = self.scheduler
        while True:
            try:
                has_items = self.inbox.wait_nonempty(IDLE_S, THREAD_CONSUMER, THREAD_SPIN_S)
            except QueueClosed:
                return
            if has_items:
                try:
                    self.drain()
                except QueueClosed:   # (closed between the look and the pop: shutdown)
                    return
            else:  # a quiet spell: the driver's dropped refs, and workers no longer needed
                sched.stimulus_driver(sched.quiet)

    def backlog_mark(self):
        """What `applied` must reach for every item pushed so far to have been applied;
        None if nothing waits."""
        n = self.inbox.size() + self.in_hand
        return self.applied + n if n else None

    def settle(self, oid, limit_s=SETTLE_S):
        """The driver is about to raise oid's error (a cancelled or failed task here): the
        task's end, pushed right after the seal, is applied first, so its CPUs are back
        before the caller goes on (a next task asking for all of them would otherwise find
        one missing for a moment)."""
        deadline = time.perf_counter() + limit_s
        while self.scheduler.running_here(oid) and time.perf_counter() < deadline:
            if not self.drain():
                time.sleep(1e-4)

    def await_return(self, oid):
        """The driver's short wait for the return of a task running on this node: the
        store buffer, or None (not such a task, or not sealed within RETURN_POLL_S)."""
        if not self.scheduler.running_here(oid):
            return None
        inbox = self.inbox
        inbox.mark_spinning(PUMP_CONSUMER, True)
        try:
            buf = self.store.get(oid, RETURN_POLL_S)
            if buf is not None:
                deadline = time.perf_counter() + END_POLL_S
                while not self.drain() and time.perf_counter() < deadline:
                    pass
            return buf
        finally:
            inbox.mark_spinning(PUMP_CONSUMER, False)  # wakes the inbox thread if items are left

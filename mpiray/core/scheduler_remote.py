"""The scheduler's events and transitions that only happen across nodes (MPI mode).

    another node ──("task")──► REMOTE_TASK ──► submit (returns kept for that node)
    this node, no room ──► _to_forwarded ──("task")──► another node
    ("task_done", inline returns) ──► REMOTE_TASK_DONE ──► take_returns / sealed_elsewhere
    ("borrow" / "unborrow" / "free") ──► counts of objects owned here, or kept for others
    a process here waits for an object ──FETCH──► cluster.need ──("fetch")──► its home
    a pulled copy sealed here ──ARRIVED──► _on_sealed

A mixin of Scheduler (core/scheduler.py), which holds the state it works on; every
method runs under the scheduler's lock, and its only I/O is self.io and self.cluster.
"""

from __future__ import annotations

import time

from mpiray import _ids

FORWARDED = "FORWARDED"

# An unborrow that would free an object waits this long first: a borrow of the same object
# by a third node, sent before the unborrow but on another MPI pair, lands meanwhile.
UNBORROW_GRACE_S = 0.5


class CrossNode:
    def _to_forwarded(self, rec, node=None):
        """Sends rec to node, by default another node with room for it; False if none
        has. A task another node sent here stays here (its sender chose this node, and
        passing it on could send it back there)."""
        if rec.origin is not None:
            return False
        spec = rec.spec
        if node is None:
            node = self.cluster.pick(spec.resources, spec.deps, self.io.contains)
        if node is None:
            return False
        rec.state = FORWARDED
        self.io.forward_task(node, spec)  # before sent(): a fetch it may trigger follows the task
        self.cluster.sent(spec.task_id, node, spec.resources, spec.return_ids())
        return True

    def _dispatch_spread(self, queue):
        """scheduling_strategy="SPREAD": each task to the next node in turn with room
        (this one included); one sent here by another node runs here."""
        while queue:
            rec = queue[0]
            if rec.origin is not None:
                if not self.res.fits(rec.spec.resources):
                    return
                self._to_dispatched(queue.popleft())
                continue
            node = self.cluster.spread_target(rec.spec.resources, self.res.fits)
            if node is None:
                return
            queue.popleft()
            if node == self.cluster.me:
                self._to_dispatched(rec)
            else:
                self._to_forwarded(rec, node)

    def _ev_remote_task(self, spec, origin):
        """A task another node sent here: hold its returns for that node, then run it."""
        self.kept.update(spec.return_ids())
        self.submit(spec, origin)

    def send_returns(self, node, message, return_ids):
        """Tells node that a task or call it sent here ended; small returns go along
        (no fetch round trip for them), and our copies of those are dropped."""
        inline = self.io.small_returns(return_ids, self.contains)
        self.cluster.send(node, message + (inline,))
        for oid, _, _ in inline:
            self.kept.discard(oid)
            if oid not in self.counts:
                self._free(oid)

    def take_returns(self, inline):
        """Small returns that came with a task_done / call_done: sealed here now."""
        for oid, data, contained in inline:
            self.cluster.inlined(oid)
            self.io.put_bytes(oid, data)
            self._on_sealed(oid, contained)
        return {oid for oid, _, _ in inline}

    def _ev_remote_task_done(self, task_id, inline=()):
        rec = self.tasks.pop(task_id, None)
        self.cluster.came_back(task_id)
        here = self.take_returns(inline)
        self.cluster.fetch_after_end(task_id, here)
        if rec is None:
            return
        self.sealed_elsewhere(rec.spec.return_ids(), here)
        self._finish(rec)

    def sealed_elsewhere(self, return_ids, here=()):
        """Returns of a task or call that ended on another node (but those in `here`,
        which came by value): counted here and kept there, or freed there at once."""
        for oid in return_ids:
            if oid in here:
                continue
            if oid in self.counts or oid in self.kept:
                self.sealed.add(oid)
                self._wake_waiters(oid)  # tasks needing it are placed near it, or pull it
            else:
                self.cluster.freed(oid)

    def _ev_borrow(self, oid):
        self._incref(oid)

    def _ev_unborrow(self, oid):
        if self.counts.get(oid, 0) > 1:
            self._decref(oid)
        else:  # it would free the object: see UNBORROW_GRACE_S
            self.lingering.append((time.monotonic() + UNBORROW_GRACE_S, oid))

    def _ev_tick(self):
        """Applies the unborrows whose grace is over (the MPI thread ticks)."""
        now = time.monotonic()
        while self.lingering and self.lingering[0][0] <= now:
            self._decref(self.lingering.popleft()[1])

    def _ev_free(self, oid):
        """The owner is done with a return we kept for it."""
        self.kept.discard(oid)
        if oid not in self.counts:
            self._free(oid)

    def _ev_fetch(self, oids):
        """A process here waits for objects that may live on other nodes."""
        if self.cluster is not None:
            for oid in oids:
                if not self.io.contains(oid):
                    self.cluster.need(oid)

    def _ev_arrived(self, oid, contained, source=None):
        """A copy pulled from (or, for a generator's item, pushed by) another node was
        sealed here. The pusher holds the item's refs until told it is here."""
        self._on_sealed(oid, contained)
        if source is not None and _ids.is_stream_item(oid) and not self.cluster.is_foreign(oid):
            self.cluster.send(source, ("item_held", oid))


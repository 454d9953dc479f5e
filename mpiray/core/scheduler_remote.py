"""The scheduler's events and transitions that only happen across nodes (MPI mode).

    another node ──("task")──► REMOTE_TASK ──► submit (returns kept for that node)
    this node, no room ──► _to_forwarded ──("task")──► another node
    another node's task READY here for GIVE_BACK_S (no CPU came free) ──("task_back")──►
        its sender: TASK_BACK ──► READY there again (placed anew; this node is skipped
        until it reports a task done)
    ("task_done", inline returns) ──► REMOTE_TASK_DONE ──► take_returns / sealed_elsewhere
    a task another node sent here blocks in get() (or goes on) ──("task_lent")──► its
        sender: TASK_LENT ──► its view of this node gives the task's CPU back (or takes it)
    ("borrow" / "unborrow" / "free") ──► counts of objects owned here, or kept for others
    a process here waits for an object ──FETCH──► cluster.need ──("fetch")──► its home
    a process here waits, fetch_local=False ──LOCATE──► core/locate.py (its owner, not its bytes)
    a pulled copy sealed here ──ARRIVED──► _on_sealed

A mixin of Scheduler (core/scheduler.py), which holds the state it works on; every
method runs under the scheduler's lock, and its only I/O is self.io and self.cluster.
"""

from __future__ import annotations

import time

from mpiray import _ids
from mpiray.core import affinity
from mpiray.core.cluster import SPREAD_THRESHOLD
from mpiray.core.task_states import FORWARDED, READY
from mpiray.exceptions import TaskCancelledError


# An unborrow that would free an object waits this long first: a borrow of the same object
# by a third node, sent before the unborrow but on another MPI pair, lands meanwhile.
UNBORROW_GRACE_S = 0.5
# A task another node sent here that has waited this long for a CPU (the ones here run
# long work) goes back to its sender, which places it again: on a node that has room
# meanwhile, or here later. Shorter than this, the wait is the pipelining that views
# plan for (a node is sent up to twice its CPUs: cluster.CPU_PIPELINE).
GIVE_BACK_S = 0.2


def movable(req: dict) -> bool:
    """Work another node may run as well: nothing in req names this node (node:<i>,
    affinity), a placement group's bundle or a SPREAD turn."""
    for key in req:
        if ":" in key or "_group_" in key or key == affinity.SPREAD:
            return False
    return True


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

    def _to_data(self, rec) -> bool:
        """A task free to go anywhere whose argument another node holds and this one
        lacks goes there when that node has room (True), though it fits here too."""
        if rec.origin is not None or not movable(rec.spec.resources):
            return False
        node = self.cluster.data_home(rec.spec.resources, rec.spec.deps, self.io.contains)
        return node is not None and self._to_forwarded(rec, node)

    def _to_less_busy(self, rec) -> bool:
        """Ray's hybrid policy: once this node's CPUs are half busy, a task free to go
        anywhere goes to a node less than half busy (True) instead of running here."""
        total = self.res.totals.get("CPU", 0.0)
        if rec.origin is not None or total <= 0 or \
                total - self.res.available.get("CPU", 0.0) < SPREAD_THRESHOLD * total or \
                not movable(rec.spec.resources):
            return False
        node = self.cluster.below_threshold(rec.spec.resources)
        return node is not None and self._to_forwarded(rec, node)

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
                if oid in self.locate_waits:
                    self.locator.sealed(oid)
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
        """Applies the unborrows whose grace is over, and gives back the tasks of other
        nodes that waited here too long (the MPI thread ticks when one is due)."""
        now = time.monotonic()
        while self.lingering and self.lingering[0][0] <= now:
            self._decref(self.lingering.popleft()[1])
        if self.give_back_due is not None and self.give_back_due <= now:
            self._give_back_waiting(now)

    def note_queued_for_other(self, rec):
        if movable(rec.spec.resources):
            since = time.monotonic()
            self.queued_for_others[rec.spec.task_id] = since
            if self.give_back_due is None:
                self.give_back_due = since + GIVE_BACK_S

    def _give_back_waiting(self, now):
        due = None
        for task_id, since in list(self.queued_for_others.items()):
            rec = self.tasks.get(task_id)
            if rec is None or rec.state != READY or rec.origin is None:
                del self.queued_for_others[task_id]
            elif now - since >= GIVE_BACK_S:
                del self.queued_for_others[task_id]
                self._give_back(rec)
            else:
                due = since + GIVE_BACK_S if due is None else min(due, since + GIVE_BACK_S)
        self.give_back_due = due

    def _give_back(self, rec):
        """rec (sent here by another node, not started) goes back to its sender."""
        spec = rec.spec
        self._remove_pending(rec)
        del self.tasks[spec.task_id]
        self.kept.difference_update(spec.return_ids())
        for oid in spec.contained:   # (its sender's hold on them stays)
            self._decref(oid)
        self.cluster.send(rec.origin, ("task_back", spec.task_id, self.cluster.me))

    def _ev_task_lent(self, task_id, lent):
        """A task this node sent away waits in get() there (its CPU lent, as on one node:
        its children may run there), or goes on."""
        self.cluster.lent(task_id, lent)

    def _ev_task_back(self, task_id, node):
        """A task this node sent to node waited there: it is placed anew."""
        self.cluster.gave_back(task_id, node)
        rec = self.tasks.get(task_id)
        if rec is None or rec.state != FORWARDED:
            return
        if rec.cancelled:
            del self.tasks[task_id]
            self.seal_error(rec.spec.return_ids(), TaskCancelledError(task_id.hex()))
            self._finish(rec)
            return
        self._to_ready(rec)

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
        if self.driver_ref_events:
            self._apply_driver_refs()
        if oid not in self.counts and oid not in self.kept and not _ids.is_stream_item(oid):
            # Nobody here holds it any more (its value came by another way first, and its
            # ref went): dropped unreported, as a copy (its errors are reported elsewhere).
            self.cluster.have(oid)
            self.io.drop_copy(oid)
            if not self.cluster.is_foreign(oid):
                self.cluster.freed(oid)   # (the node that made it for us may drop it)
            return
        self._on_sealed(oid, contained)
        if source is not None and _ids.is_stream_item(oid) and not self.cluster.is_foreign(oid):
            self.cluster.send(source, ("item_held", oid))


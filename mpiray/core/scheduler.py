"""The node scheduler: every task, object count and actor of one node, as a state machine.

    driver calls ─────────────────────────┐
    worker events ──► inbox queue ──► inbox thread ──► stimulus_* (under self.lock)
    process deaths ─► (monitor thread) ──┘                │
                                                          ▼
             tasks: WAITING (deps) ──► READY (resources) ──► DISPATCHED ──► done
             objects: counts ──► 0 ──► deleted from the store (and what they contained)
             actors: see actor_manager.py

Each outside event is a ``stimulus_*``; each change of a task's state is one
``_to_<state>`` step. The only I/O goes through ``self.io`` (``node.NodeIO``: queue
pushes, store writes, process spawns), so the machine can be driven in a test without
processes.

Task states and the containers that hold a task in each:
    WAITING     self.tasks, self.waiting_on[dep]        (some argument not sealed yet)
    READY       self.tasks, self.ready[shape]            (sealed args, no resources yet)
    INFEASIBLE  self.tasks, self.infeasible              (asks more than the node has)
    DISPATCHED  self.tasks                               (on the task queue or running)
    FORWARDED   self.tasks, self.cluster.sent_to         (sent to another node, MPI mode)

Across nodes (``self.cluster``, see core/cluster.py; the events: core/scheduler_remote.py)
a task that came from another node remembers its ``origin``, which hears of its end; a
task sent away waits for that word.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import traceback

from mpiray import _config, _ids
from mpiray.core import affinity, labels, placement, unhandled_errors
from mpiray.core import protocol as P
from mpiray.core.actor_manager import ActorManager, death_error
from mpiray.core.accelerators import NONE
from mpiray.core.actor_routing import ActorRouter
from mpiray.core.locate import Locator
from mpiray.core.scheduler_remote import CrossNode
from mpiray.core.ready_queue import ReadyQueue
from mpiray.core.task_states import DISPATCHED, FORWARDED, INFEASIBLE, READY, RETRY_WAIT, WAITING
from mpiray.core.resources import NodeResources
from mpiray.core.runtime import GC_MIN_INTERVAL_S
from mpiray.core.timeline import TaskLog
from mpiray.exceptions import (ActorPlacementGroupRemoved, ActorUnschedulableError, ObjectFreedError,
                               OutOfMemoryError, TaskCancelledError, TaskUnschedulableError,
                               TaskPlacementGroupRemoved, WorkerCrashedError)

log = logging.getLogger("mpiray")

RETIRE_AFTER_S = 1.0   # surplus task workers idle this long exit (retire_idle_workers)
FORCE_KILL_GRACE_S = 1.0   # a force-cancelled task still running this long: its worker is killed
TASK_LOG_SIZE = 100_000  # tasks and actor calls timeline() remembers per node
WHOLE_ITEM = 1 << 16     # bytes of a queue item to copy when looking at one: all of it
TASK, ACTOR = "task", "actor"
FREE, KEEP, PUSHED = "free", "keep", "pushed"   # what becomes of a sealed stream item
_STREAM_BYTE = _ids.TASK_ID_SIZE - 1   # (its STREAM_BIT marks a generator task's ids)
CLEAN_EXIT = "exit code 0"   # (the zygote's words for a process that ended by itself)
ENDED_KEPT = 10_000  # ended task attempts listed by ray.util.state.list_tasks
ENDED_WORKERS_KEPT = 1_000  # ended worker processes listed by list_workers
STUCK_GC_S = 30.0   # actors waiting on resources ask for a global GC this often
# an interactive driver's unread task error is reported after this
UNHANDLED_GRACE_S = float(os.environ.get("MPIRAY_UNHANDLED_GRACE_S", "5"))
STREAMS_OVER_KEPT = 10_000  # ended streams remembered, for items that arrive after the end


class TaskRecord:
    __slots__ = ("spec", "state", "missing", "devices", "blocked", "cancelled", "force_cancelled",
                 "origin", "ahead", "evicted", "created", "dispatched")

    def __init__(self, spec, origin=None):
        self.spec = spec
        self.created = time.time()   # (list_tasks' creation_time_ms)
        self.dispatched = None       # when it last went to a worker (not queued ahead)
        self.origin = origin      # the node that sent this task here, or None
        self.state = WAITING
        self.missing = 0
        self.devices = NONE
        self.blocked = False
        self.cancelled = False
        self.force_cancelled = False
        self.ahead = False        # last dispatched ahead (Scheduler._dispatch_ahead)
        self.evicted = False      # its placement group was removed while it ran


def _task_error(failed, cancelled, retry):
    """(Ray's error_type, error_message) of a task attempt that ended in an error, else
    None (list_tasks' FAILED rows). failed: the worker's failure_text, or False."""
    if cancelled:
        return "TASK_CANCELLED", "The task was cancelled."
    if failed or retry:
        return "TASK_EXECUTION_EXCEPTION", failed if isinstance(failed, str) else ""
    return None


def _crash_error(rec, status, oom=None):
    """(error_type, error_message) of a task attempt whose worker died under it (oom: the
    memory monitor's reason, when it killed it)."""
    if oom:
        return "OUT_OF_MEMORY", oom
    if rec.evicted:
        return "TASK_PLACEMENT_GROUP_REMOVED", "its placement group was removed"
    if rec.cancelled:
        return "TASK_CANCELLED", "The task was cancelled."
    if status.startswith("exit code "):   # (Ray's words first)
        return "WORKER_DIED", (f"Worker exits with an exit code {status[len('exit code '):]}. "
                               f"The worker running it died unexpectedly ({status}).")
    return "WORKER_DIED", f"The worker running it died unexpectedly ({status})."


class WorkerInfo:
    __slots__ = ("slot", "kind", "pid", "actor_id", "nonce", "started_ms")

    def __init__(self, slot, kind, actor_id=b""):
        self.slot, self.kind, self.pid, self.actor_id = slot, kind, None, actor_id
        self.nonce = None   # the prefix of every id the process makes (core/zygote.py)
        self.started_ms = None


_ONE_CPU = (("CPU", 1.0),)   # the shape of a plain task (the default num_cpus=1)


def _shape(req: dict):
    if len(req) == 1:  # (the commonest: {"CPU": 1.0})
        return tuple(req.items())
    return tuple(sorted(req.items()))


class Scheduler(CrossNode):
    def __init__(self, io, resources: NodeResources, max_task_workers: int, min_task_workers: int = 0):
        self.lock = threading.RLock()
        self.io = io
        self.res = resources
        self.max_task_workers = max_task_workers
        self.min_task_workers = min_task_workers
        self.driver_ref_events = collections.deque()  # the driver's incref/decref, in order
        self.late_decrefs = collections.deque()   # (inbox mark, oid): _apply_driver_refs
        self.gc_asked = -GC_MIN_INTERVAL_S        # the node's last global GC (want_gc)
        self.gc_wanted = False                    # one was asked for sooner: it comes later
        self.stuck_gc_at = 0.0                    # when a stuck actor may ask for the next
        self.interactive = False   # the driver's node, its driver a console (Node.start)
        self.unread_watch = collections.deque()   # (due, oids): the driver's failed calls
        self.counts = {}        # oid -> holders (processes with a live ref + containers)
        self.held_by = {}       # worker slot -> {oid: count}: the counts that are its refs
        self.to_decref = collections.deque()   # refs inside freed objects, still to drop
        self.decrefing = False
        self.holds = None       # held_by of the worker whose batch is being applied
        self.contains = {}      # sealed oid -> oids it holds
        self.sealed = set()     # oids sealed and still counted
        self.waiting_on = {}    # oid -> [TaskRecord]
        self.tasks = {}         # task_id -> TaskRecord, until done
        # the last ENDED_KEPT attempts that ended here (_note_ended), for ray.util.state's
        # FINISHED / FAILED rows (core/state_report.py)
        self.ended = collections.deque(maxlen=ENDED_KEPT)
        self.oom_killed = {}    # slot -> why the memory monitor killed its process
        self.ended_workers = collections.deque(maxlen=ENDED_WORKERS_KEPT)   # list_workers'
        self.ready = {}         # shape -> deque[TaskRecord]
        self.infeasible = []
        self.workers = {}       # slot -> WorkerInfo
        self.task_workers = 0   # task workers alive or starting
        self.retiring = 0       # of those, told to exit (retire_idle_workers)
        self.busy_at = 0.0      # when more than min_task_workers were last needed
        self.active = 0         # dispatched tasks whose worker is not blocked in get()
        self.blocked = 0        # task workers blocked in get() (their CPU lent back)
        self.light = 0          # dispatched tasks holding less than one CPU (see _dispatch_ahead)
        self.actors = ActorManager(self)
        self.router = ActorRouter(self)   # actors across nodes (used under MPI only)
        self.cluster = None     # core.cluster.Cluster under MPI with more than one node
        self.locator = Locator(self)   # wait(fetch_local=False) across nodes
        self.locate_waits = self.locator.waits
        self.borrowed = set()   # other nodes' oids whose owner counts this node as a holder
        self.kept = set()       # other nodes' oids kept here for their owner (task returns)
        self.lingering = collections.deque()  # (due, oid): unborrows applied after a grace
        self.streams_over = {}  # generator tasks whose end was freed (oldest first, bounded)
        self.stream_last = {}   # generator task -> the highest item index held here for it
        self.pushed_holds = {}  # item pushed to its caller's node -> refs inside, held till it has them
        self.queued_for_others = {}   # task id sent here by another node, READY -> since when
        self.give_back_due = None     # when the oldest of those may be given back
        self.bundles = placement.Bundles(self)           # placement group bundles held here
        self.pgs = placement.PlacementGroups(self)       # the table (used on node 0 only)
        # ((name, pid, start, end), task id) of the last tasks and actor calls run here,
        # for timeline() (core/timeline.py); bounded, as Ray's task events are
        self.task_log = TaskLog(TASK_LOG_SIZE)
        self._warned = set()

    # ------------------------------------------------------------------ refs
    def incref(self, oid):
        self.driver_ref_events.append((P.INCREF, oid))

    def decref(self, oid):
        self.driver_ref_events.append((P.DECREF, oid))

    def _apply_driver_refs(self):
        q = self.driver_ref_events
        while q:
            code, oid = q.popleft()
            if code == P.INCREF:
                self._incref(oid)
            elif self.counts.get(oid, 0) == 1 and (mark := self.io.inbox_backlog()) is not None:
                # The driver's last ref goes while workers' events wait in the inbox: they
                # apply first (the driver's own events jump ahead of them). A ref the driver
                # made from a value a worker wrote may be the only hold applied yet, the
                # writer's own still queued (it sent them before the value was readable).
                self.late_decrefs.append((mark, oid))
            else:
                self._decref(oid)

    def _apply_late_decrefs(self):
        """The driver's last-ref drops held back by _apply_driver_refs, once the inbox
        items that were waiting then have been applied."""
        late = self.late_decrefs
        done = self.io.inbox_applied()
        while late and late[0][0] <= done:
            self._decref(late.popleft()[1])

    def _incref(self, oid):
        n = self.counts.get(oid, 0)
        self.counts[oid] = n + 1
        if n == 0 and self.cluster is not None and self.cluster.is_foreign(oid) \
                and oid not in self.borrowed:
            self.borrowed.add(oid)
            self.cluster.send(_ids.node_of(oid), ("borrow", oid))

    def _decref(self, oid):
        n = self.counts.get(oid, 0) - 1
        if n > 0:
            self.counts[oid] = n
            return
        self.counts.pop(oid, None)
        if self.cluster is not None and self.cluster.is_foreign(oid):
            self._unborrow(oid)
        elif oid[_ids.TASK_ID_SIZE:] == _ids.ACTOR_HANDLE_INDEX.to_bytes(4, "little"):
            self.actors.on_handles_gone(oid[: _ids.TASK_ID_SIZE])
        elif oid in self.sealed or self.io.contains(oid):
            self._free(oid)  # (a put without refs inside is sealed without telling us)
        elif oid[_STREAM_BYTE] & _ids.STREAM_BIT and _ids.is_stream_end(oid):
            # a generator dropped while its task runs on
            self._stream_over(oid[: _ids.TASK_ID_SIZE])

    def _free(self, oid):
        self.sealed.discard(oid)
        self.io.delete_object(oid)
        if self.cluster is not None:
            self.cluster.freed(oid)
        if oid[_STREAM_BYTE] & _ids.STREAM_BIT and _ids.is_stream_end(oid):
            self._stream_over(oid[: _ids.TASK_ID_SIZE])
        inner = self.contains.pop(oid, ())
        if inner:
            # (a loop, not recursion: a chain of objects each holding the next, thousands
            # deep, must not exhaust the stack of the thread applying events)
            self.to_decref.extend(inner)
            if not self.decrefing:
                self.decrefing = True
                try:
                    while self.to_decref:
                        self._decref(self.to_decref.popleft())
                finally:
                    self.decrefing = False

    def _unborrow(self, oid):
        """No ref here to another node's object any more: tell its owner, and drop our
        copy unless we keep it for the owner (a return of a task we ran for it)."""
        if oid in self.borrowed:
            self.borrowed.discard(oid)
            self.cluster.send(_ids.node_of(oid), ("unborrow", oid))
        if oid not in self.kept and (oid in self.sealed or self.io.contains(oid)):
            self._free(oid)

    def _on_sealed(self, oid, contained):
        if self.cluster is not None:
            self.cluster.have(oid)
        if oid not in self.counts and self.driver_ref_events:
            # The driver may have made the ref since this batch began: a call it pushed to
            # an actor that died meanwhile is failed from the queue's drain, in the same
            # batch. Its hold is on the way, not missing.
            self._apply_driver_refs()
        if oid not in self.counts and oid not in self.kept:  # nobody holds it: free at once
            fate = self._stream_item(oid, contained) if _ids.is_stream_item(oid) else FREE
            if fate == PUSHED:
                return
            if fate == KEEP:
                self._keep_sealed(oid, contained)
                return
            self.io.delete_object(oid)
            if self.cluster is not None and not self.cluster.is_foreign(oid):
                self.cluster.freed(oid)  # and the node that made it for us may drop it
            if _ids.is_stream_end(oid):  # the caller let go of the stream before its end
                self._stream_over(oid[: _ids.TASK_ID_SIZE])
                for inner in contained:
                    if inner not in self.counts:
                        self._free(inner)
            return
        self._keep_sealed(oid, contained)

    def _keep_sealed(self, oid, contained):
        """oid is sealed and held: what it contains is held by it, and tasks waiting
        for it may go."""
        self.sealed.add(oid)
        if oid in self.locate_waits:
            self.locator.sealed(oid)
        if contained:
            self.contains[oid] = list(contained)
            for inner in contained:
                self._incref(inner)
        if oid in self.waiting_on:
            self._wake_waiters(oid)

    def _stream_item(self, oid, contained):
        """An item a generator task yielded, that no ref holds yet: the stream holds it
        here until its end does (KEEP), unless the stream is over (FREE). One made here
        for another node's caller goes there at once (PUSHED)."""
        task_id = oid[: _ids.TASK_ID_SIZE]
        if self.cluster is not None and self.cluster.is_foreign(oid):
            if contained:  # held until the caller's node has them too ("item_held")
                for inner in contained:
                    self._incref(inner)
                self.pushed_holds[oid] = list(contained)
            self.io.push_object(_ids.node_of(oid), oid, contained)
            self.io.delete_object(oid)  # (its memory goes once the push is sent)
            return PUSHED
        if task_id in self.streams_over or not self.io.contains(oid):
            return FREE  # (not in the store: a caller took it and dropped it already)
        index = _ids.index_of(oid)
        if index > self.stream_last.get(task_id, 0):
            self.stream_last[task_id] = index
        return KEEP

    def _ev_item_held(self, oid):
        """The caller's node has an item pushed from here, and holds its refs now."""
        for inner in self.pushed_holds.pop(oid, ()):
            self._decref(inner)

    def _stream_over(self, task_id):
        """Nothing holds task_id's stream any more (its end is freed, or was dropped
        before it was made): the items no ref holds go now, and those still to come
        as they come. Items are probed up to the last one heard of and on while there
        are more: a worker that died may have stored some it had not reported."""
        if task_id in self.streams_over:
            return
        self.streams_over[task_id] = None
        if len(self.streams_over) > STREAMS_OVER_KEPT:
            del self.streams_over[next(iter(self.streams_over))]
        last, index = self.stream_last.pop(task_id, 0), 1
        while True:
            oid = _ids.object_id(task_id, index)
            here = self.io.contains(oid)
            if not here and index > last:
                break
            if here and oid not in self.counts and oid not in self.kept:
                self._free(oid)
            index += 1

    def _wake_waiters(self, oid):
        for rec in self.waiting_on.pop(oid, ()):
            rec.missing -= 1
            if rec.missing == 0 and rec.state == WAITING:
                self._to_ready(rec)

    def seal_error(self, oids, exc):
        for oid in oids:
            self.io.put_error(oid, exc)
            self._on_sealed(oid, ())

    # ------------------------------------------------------------------ stimuli
    def handle_events(self, events, slot=None):
        """One batch of events from a worker (or the monitor thread), in order."""
        with self.lock:
            self._apply_driver_refs()
            outer, self.holds = self.holds, None   # (re-entered from a handler: a __del__)
            try:
                for ev in events:
                    self._HANDLERS[ev[0]](self, *ev[1:])
            finally:
                self.holds = outer
            self._dispatch()

    def handle_event_lists(self, lists):
        """Several workers' batches, in order, under one lock and with one dispatch (the
        inbox thread drains many at once). A batch whose handler raises is reported and
        the next ones still apply: one bad event must not lose another task's end."""
        handlers = self._HANDLERS
        with self.lock:
            self._apply_driver_refs()
            outer = self.holds
            for events in lists:
                try:
                    for ev in events:
                        handlers[ev[0]](self, *ev[1:])
                except Exception:  # noqa: BLE001 - a bug must not kill the node silently
                    traceback.print_exc()
                self.holds = None
            self.holds = outer
            if self.late_decrefs:
                self._apply_late_decrefs()
            self._dispatch()

    def stimulus_driver(self, fn, *args):
        """Runs fn(*args) under the lock after the driver's pending ref events."""
        with self.lock:
            self._apply_driver_refs()
            out = fn(*args)
            self._dispatch()
            return out

    def _ev_from(self, slot):
        holds = self.held_by.get(slot)
        if holds is None:
            holds = self.held_by[slot] = {}
        self.holds = holds

    def _ev_incref(self, oid):
        holds = self.holds
        if holds is not None:
            holds[oid] = holds.get(oid, 0) + 1
        self._incref(oid)

    def _ev_decref(self, oid):
        holds = self.holds
        if holds is not None:
            n = holds.get(oid, 0)
            if n > 1:
                holds[oid] = n - 1
            elif n:
                del holds[oid]
        self._decref(oid)

    def _ev_hold(self, oids):
        for oid in oids:
            self._incref(oid)

    def _ev_unhold(self, oids):
        for oid in oids:
            self._decref(oid)

    def _ev_free_now(self, oids):
        for oid in oids:
            if self.io.contains(oid):   # (one still being made is left alone)
                self.io.delete_object(oid)
                self.io.put_error(oid, ObjectFreedError(oid.hex()))

    def _release_worker_refs(self, slot, nonce):
        """A worker process is gone: the refs it held are dropped (Ray releases what a
        dead process held), and what it put but never told of (its ref events were still
        in its outbox) is deleted: nobody else can know of it."""
        for oid, n in self.held_by.pop(slot, {}).items():
            for _ in range(n):
                self._decref(oid)
        if nonce is None:
            return
        for oid in self.io.ids_made_by(nonce):
            if _ids.is_put(oid) and oid not in self.counts and oid not in self.kept:
                self._free(oid)

    def _ev_sealed(self, oid, contained):
        self._on_sealed(oid, contained)

    def submit(self, spec, origin=None):
        for oid in spec.contained:  # the pending task holds its arguments
            self._incref(oid)
        rec = TaskRecord(spec, origin)
        self.tasks[spec.task_id] = rec
        for dep in spec.deps:
            if dep not in self.sealed and not self.io.contains(dep):
                self.waiting_on.setdefault(dep, []).append(rec)
                rec.missing += 1
                if self.cluster is not None and self.cluster.is_foreign(dep):
                    self.cluster.need(dep)  # (ours: we hear when it is sealed, here or there)
        if rec.missing == 0:
            self._to_ready(rec)

    def running_here(self, oid) -> bool:
        """oid is a return of a task running on this node (not blocked in a get)."""
        rec = self.tasks.get(oid[: _ids.TASK_ID_SIZE])
        return rec is not None and rec.state == DISPATCHED and not rec.blocked

    def _ev_task_done(self, task_id, slot, sealed, release, retry, failed=False, started=None):
        rec = self.tasks.get(task_id)
        if rec is None or rec.state != DISPATCHED:
            return
        self._release_task_resources(rec)
        spec = rec.spec
        self._note_ended(rec, _task_error(failed, rec.cancelled, retry), started)
        if retry and not rec.cancelled:
            rec.spec.attempt += 1
            delay = _config.task_retry_delay_s()
            if delay > 0:   # (its resources are free meanwhile; a cancel ends it there)
                rec.state = RETRY_WAIT
                timer = threading.Timer(delay, self._retry_due_later, args=(task_id,))
                timer.daemon = True
                timer.start()
                return
            self._to_ready(rec)
            return
        del self.tasks[task_id]
        for oid, contained in sealed:
            self._on_sealed(oid, contained)
        if failed and self.interactive and spec.depth <= 1:
            self.watch_unread(spec.return_ids())
        self._finish(rec)

    def _retry_due_later(self, task_id):
        if self.io.stopping():
            return
        try:
            self.stimulus_driver(self._retry_due, task_id)
        except Exception:  # noqa: BLE001 - the node stopped meanwhile
            pass

    def _retry_due(self, task_id):
        rec = self.tasks.get(task_id)
        if rec is not None and rec.state == RETRY_WAIT and not rec.cancelled:
            self._to_ready(rec)

    def watch_unread(self, oids):
        """An interactive driver's failed call: its error, if still unread after
        UNHANDLED_GRACE_S, is reported though refs to it remain (as Ray's: a console
        keeps results alive, and a failure nobody looks at must not stay silent)."""
        self.unread_watch.append((time.monotonic() + UNHANDLED_GRACE_S, oids))

    def _report_unread(self):
        now = time.monotonic()
        store = self.io.store
        while self.unread_watch and self.unread_watch[0][0] <= now:
            for oid in self.unread_watch.popleft()[1]:
                if store.is_unread_error(oid):
                    unhandled_errors.report(store, oid)   # (read now: told once)

    def _finish(self, rec):
        if rec.origin is not None:  # its returns were sealed (value or error) for that node
            self.send_returns(rec.origin, ("task_done", rec.spec.task_id), rec.spec.return_ids())
        if rec.cancelled:
            self.io.clear_cancel_marks(rec.spec.task_id)
        for oid in rec.spec.contained:
            self._decref(oid)

    def _ev_blocked(self, task_id):
        rec = self.tasks.get(task_id)
        if rec is not None and rec.state == DISPATCHED and not rec.blocked:
            rec.blocked = True
            self.active -= 1
            self.blocked += 1
            self.res.release(placement.cpu_part(rec.spec.resources))
            self._tell_lent(rec, True)

    def _ev_unblocked(self, task_id):
        rec = self.tasks.get(task_id)
        if rec is not None and rec.blocked:
            rec.blocked = False
            self.active += 1
            self.blocked -= 1
            self._tell_lent(rec, False)
            req = rec.spec.resources
            part = placement.cpu_part(req)
            if part is not req:  # a bundle's CPUs: a removed group's are not taken again
                totals = self.res.totals
                part = {k: v for k, v in part.items() if k in totals}
            self.res.acquire(part)

    def _tell_lent(self, rec, lent):
        """A task another node sent here blocked in get() (lent its CPU) or goes on: that
        node's view of this one follows (scheduler_remote: TASK_LENT)."""
        if rec.origin is not None:
            self.cluster.send(rec.origin, ("task_lent", rec.spec.task_id, lent))

    def _release_task_resources(self, rec):
        req = dict(rec.spec.resources)
        cpus = req.get("CPU")   # (inline: every task's end; cpus_of for a bundle's)
        if (cpus if cpus is not None else placement.cpus_of(req)) < 1:
            self.light -= 1
        if rec.blocked:
            for key in placement.cpu_part(rec.spec.resources):
                req.pop(key, None)  # already lent back while blocked
            rec.blocked = False
            self.blocked -= 1
            self._tell_lent(rec, False)   # (a retry here holds a CPU again)
        else:
            self.active -= 1
        self.res.release(req, rec.devices)
        rec.devices = NONE

    def cancel(self, task_id, force, recursive=True, index=1):
        """recursive: the task's worker also cancels the tasks the task submitted."""
        rec = self.tasks.get(task_id)
        if rec is None and self.cluster is not None and self.cluster.is_foreign(task_id):
            # a task another node owns (submitted there): its owner knows where it is
            self.io.forward_cancel(_ids.node_of(task_id), task_id, force, recursive)
            return None
        if rec is not None and rec.cancelled:
            return self._cancel_again(rec, force, recursive)
        if rec is None:
            return self.actors.cancel_call(task_id, force, index, recursive)
        rec.cancelled = True
        rec.force_cancelled = force
        if rec.state == FORWARDED:  # the node running it cancels it and reports back
            self.io.forward_cancel(self.cluster.sent_to[task_id][0], task_id, force, recursive)
            return
        if rec.state == DISPATCHED and rec.ahead:
            # Queued ahead, maybe not started: a worker might take it only when the task
            # it runs ends. Taken back (and ended as cancelled) if it is still queued.
            self._reclaim_ahead()
        if rec.state == DISPATCHED:
            self.io.mark_cancelled(task_id, force, recursive)
            if force:
                self._kill_if_still_running(task_id)
            return
        if task_id not in self.tasks:
            return  # ended by _reclaim_ahead
        self._remove_pending(rec)
        del self.tasks[task_id]
        self._note_unrun(rec, _task_error(False, True, False))
        self.seal_error(rec.spec.return_ids(), TaskCancelledError(task_id.hex()))
        self._finish(rec)

    def _cancel_again(self, rec, force, recursive):
        """As Ray's: a task still running after a cancel (it caught the interrupt) is
        ended by a force one."""
        if not force or rec.force_cancelled:
            return
        task_id = rec.spec.task_id
        rec.force_cancelled = True
        if rec.state == FORWARDED:
            self.io.forward_cancel(self.cluster.sent_to[task_id][0], task_id, force, recursive)
        elif rec.state == DISPATCHED:
            self.io.mark_cancelled(task_id, True, recursive)
            self._kill_if_still_running(task_id)

    def _kill_if_still_running(self, task_id):
        """A force cancel's worker kills itself from a signal handler, which Python runs
        only between bytecodes: a task stuck in C code never gets there. So, as Ray's
        node does, the worker still running it FORCE_KILL_GRACE_S later is killed."""
        def check():
            try:
                self.stimulus_driver(self._kill_stuck_worker, task_id)
            except Exception:  # noqa: BLE001 - the node stopped meanwhile
                pass

        timer = threading.Timer(FORCE_KILL_GRACE_S, check)
        timer.daemon = True
        timer.start()

    def _kill_stuck_worker(self, task_id):
        rec = self.tasks.get(task_id)
        if rec is None or rec.state != DISPATCHED or not rec.force_cancelled:
            return
        worker = self.running_workers().get(task_id)
        if worker is not None:
            self.io.kill_worker(worker.slot, worker.pid)

    def _ev_cancel(self, task_id, force, recursive=True, child=False, index=1):
        """child: one of the tasks a cancelled task submitted (recursive cancel): one
        that has ended already is left alone (no mark for it), and so is one cancelled
        already (a worker sends its children's cancels twice: core/worker.py).
        index: of the return ray.cancel was given (an actor call's is answered at once)."""
        if child and not _ids.is_actor_call(task_id):
            rec = self.tasks.get(task_id)
            if rec is None or rec.cancelled:
                return
        self.cancel(task_id, force, recursive, index)

    def _remove_pending(self, rec):
        if rec.state == READY:
            self.ready[_shape(rec.spec.resources)].remove(rec)
        elif rec.state == INFEASIBLE:
            self.infeasible.remove(rec)
        elif rec.state == WAITING:
            for dep in rec.spec.deps:
                waiters = self.waiting_on.get(dep)
                if waiters and rec in waiters:
                    waiters.remove(rec)
                    if not waiters:
                        del self.waiting_on[dep]

    # ------------------------------------------------------------------ transitions
    def _to_ready(self, rec):
        req = rec.spec.resources
        if self.bundles.removed and placement.group_of(req) in self.bundles.removed:
            # (first: under MPI other nodes' totals may list its bundles a while yet, and
            # a node a task was sent to heard of the removal before the task came)
            self._fail_removed(rec)
            return
        if len(req) > 1:   # (a strategy's marks: never on the commonest, {"CPU": 1})
            req = rec.spec.resources = affinity.resolve(req, self.cluster is None,
                                                        self.node_can_hold, self.node_has_room)
        shape = _shape(req)
        queue = self.ready.get(shape)
        if queue is None:  # a shape not seen yet (totals change only with placement groups)
            if not self.res.feasible(req) and not (
                    self.cluster is not None and self.cluster.feasible_elsewhere(req)):
                if placement.group_of(req) in self.bundles.removed:
                    self._fail_removed(rec)
                    return
                if affinity.pinned_node(req) is not None:   # Ray: a hard affinity fails at once
                    self.tasks.pop(rec.spec.task_id, None)
                    why = affinity.unschedulable_message(rec.spec.name, req)
                    self._note_unrun(rec, ("TASK_UNSCHEDULABLE_ERROR", why))
                    self.seal_error(rec.spec.return_ids(), TaskUnschedulableError(why))
                    self._finish(rec)
                    return
                rec.state = INFEASIBLE
                self.infeasible.append(rec)
                self._warn_infeasible(rec.spec.name, req)
                return
            queue = self.ready[shape] = ReadyQueue()
        rec.state = READY
        queue.append(rec)
        if rec.origin is not None:   # (another node's: given back if it waits too long)
            self.note_queued_for_other(rec)

    def _warn_infeasible(self, name, req):
        key = (name, _shape(req))
        pg = placement.group_of(req)
        if pg is not None and not self._group_seen(pg):
            return  # its placement group is not placed yet: waiting is normal
        if key not in self._warned:
            self._warned.add(key)
            if labels.NO_MATCH in req:
                self.io.warn(f"{name}: no node has the labels its label_selector or "
                             "NodeLabelSchedulingStrategy asks for: it stays pending (as in Ray)")
                return
            if self.cluster is None:
                has = f"this cluster has {self.res.totals}"
            else:   # (what each node has of what it asks)
                totals = [self.res.totals if n == self.cluster.me else info["totals"]
                          for n, info in enumerate(self.cluster.table)]
                has = "no node has that much (" + "; ".join(
                    f"node {n}: {({k: t.get(k, 0.0) for k in req})}"
                    for n, t in enumerate(totals)) + ")"
            self.io.warn(f"{name} needs {req} but {has}: it stays pending until resources "
                         "that can hold it are added")

    def _dispatch(self):
        if self.bundles.waiting:  # (a bundle waiting for room takes it before tasks do)
            self.bundles.try_waiting()
        for shape, queue in self.ready.items():
            if queue and self.cluster is not None and (affinity.SPREAD, 0.0) in shape:
                self._dispatch_spread(queue)
                continue
            if queue and shape != _ONE_CPU and self.res.overcommitted_cpus() > 0 and \
                    self.res.fits(queue[0].spec.resources):
                self._reclaim_ahead()
            while queue and self.res.fits(queue[0].spec.resources):
                rec = queue[0]
                if self.cluster is not None and (rec.spec.deps and self._to_data(rec)
                                                 or self._to_less_busy(rec)):
                    queue.popleft()
                    continue
                self._to_dispatched(queue.popleft())
            while queue and self.cluster is not None and self._to_forwarded(queue[0]):
                queue.popleft()
        self._dispatch_ahead()
        self.actors.place_pending()
        self._ensure_task_workers()

    def _dispatch_ahead(self):
        """Plain one-CPU tasks beyond the free CPUs wait on the task queue rather than
        here, up to one per CPU: a worker that finishes a task then takes the next at
        once, instead of sleeping until its end has reached the scheduler and a new
        task has been pushed (a futex sleep and wake per task on a busy pipeline). They
        hold their CPU from now on, so the node's CPU count goes below zero by as many
        tasks as wait there (_ensure_task_workers starts no worker for them). Not under
        MPI (a task that does not fit here is for another node), not while other work
        waits for resources (it would never see a CPU come free), and only while every
        task worker has a task: an idle one would run a task queued ahead at once, past
        the node's CPUs (a task holding several CPUs leaves workers idle)."""
        queue = self.ready.get(_ONE_CPU)
        # light: the worker of a task holding less than one CPU would, once that task
        # ends, take a task queued ahead without a CPU having come free.
        if not queue or self.light or self.cluster is not None or self.actors.pending or any(
                q for shape, q in self.ready.items() if q and shape != _ONE_CPU):
            return
        over = self.res.overcommitted_cpus()
        if self.active + self.blocked - over < self.task_workers:
            return
        while queue and over < self.res.totals.get("CPU", 0.0):
            self._to_dispatched(queue.popleft(), ahead=True)
            over = self.res.overcommitted_cpus()

    def _reclaim_ahead(self):
        """A task that needs no CPU (num_cpus=0) is about to go on the task queue while
        one-CPU tasks wait there ahead: it would sit behind them, and the worker started
        for it would take one of them instead (past the node's CPUs), so the task could
        wait for ever on tasks that wait for it. Take back the tasks still queued ahead
        (to the front of their ready queue); what else is there goes back as it was."""
        back = []
        for item, task_id in self.io.take_queued_tasks():
            rec = self.tasks.get(task_id) if task_id is not None else None
            if rec is None or rec.state != DISPATCHED or not rec.ahead or rec.blocked:
                self.io.push_item(item)
                continue
            self.io.drop_item(item)
            self._release_task_resources(rec)
            rec.ahead = False
            if rec.cancelled:
                del self.tasks[rec.spec.task_id]
                self._note_unrun(rec, _task_error(False, True, False))
                self.seal_error(rec.spec.return_ids(), TaskCancelledError(rec.spec.task_id.hex()))
                self._finish(rec)
            else:
                rec.state = READY
                back.append(rec)
        for rec in reversed(back):   # (to the front of their own queues, in their order)
            shape = _shape(rec.spec.resources)
            queue = self.ready.get(shape)
            if queue is None:
                queue = self.ready[shape] = ReadyQueue()
            queue.appendleft(rec)

    def _to_dispatched(self, rec, ahead=False):
        rec.state = DISPATCHED
        rec.ahead = ahead
        rec.dispatched = None if ahead else time.time()
        req = rec.spec.resources
        cpus = req.get("CPU")   # (inline: every task's dispatch)
        if (cpus if cpus is not None else placement.cpus_of(req)) < 1:
            self.light += 1
        rec.devices = self.res.acquire(rec.spec.resources)
        rec.spec.devices = rec.devices
        self.active += 1
        self.io.push_task(rec.spec)

    # ------------------------------------------------------------------ placement groups
    def _ev_pg_op(self, op, args, reply):
        """A process here asks the placement group table (node 0's) something."""
        if self.cluster is None or self.cluster.me == 0:
            self._pg_op(op, args, reply, 0)
        else:
            self.cluster.send(0, ("pg", "op", (op, args, reply, self.cluster.me)))

    def _pg_op(self, op, args, reply, requester):
        try:
            result = self.pgs.apply(op, args)
        except Exception as exc:  # noqa: BLE001 - the asker gets the error
            result = exc
        if result is placement.DEFERRED:
            self.pgs.wait_for(args[0], reply, requester)
        elif reply is not None:
            self.pg_reply(reply, requester, result)

    def pg_reply(self, reply, requester, result):
        data = P.dumps(result)
        if self.cluster is None or requester == self.cluster.me:
            self.io.put_bytes(reply, data)
        else:
            self.cluster.send(requester, ("name_reply", reply, data))

    def _ev_pg_msg(self, kind, args):
        """A placement group message from node 0, or from a node holding a bundle."""
        if kind == "reserve":
            self.bundles.reserve(*args)
        elif kind == "unreserve":
            self.bundles.unreserve(*args)
        elif kind == "removed":
            self._group_removed(*args)
        elif kind == "placed":
            self.pgs.placed(*args)
        elif kind == "resources":
            node, delta, sign = args
            self.cluster.change_totals(node, delta, sign)
            self._recheck_infeasible()
        elif kind == "op":
            self._pg_op(*args)

    def pg_send(self, node, kind, args):
        if self.cluster is None or node == self.cluster.me:
            self._ev_pg_msg(kind, args)
        else:
            self.cluster.send(node, ("pg", kind, args))

    def pg_placed(self, pg, indexes):
        self.pg_send(0, "placed", (pg, indexes))

    def resources_changed(self, delta, sign):
        """This node's totals changed by a bundle (sign +1: reserved, -1: removed)."""
        if self.cluster is not None:
            self.cluster.change_totals(self.cluster.me, delta, sign)
            for node in range(len(self.cluster.table)):
                if node != self.cluster.me:
                    self.cluster.send(node, ("pg", "resources", (self.cluster.me, delta, sign)))
        self._recheck_infeasible()

    def _recheck_infeasible(self):
        recs, self.infeasible = self.infeasible, []
        for rec in recs:
            self._to_ready(rec)

    def _group_seen(self, pg):
        """Some bundle of pg is placed on some node (its resources are known here)."""
        key = placement.group_name(placement.BUNDLE, pg)
        return key in self.res.totals or (self.cluster is not None and any(
            key in info["totals"] for info in self.cluster.table))

    def nodes_for_placement(self):
        """[(node, totals, free)] for planning bundles (node 0's view of the others)."""
        here = (0 if self.cluster is None else self.cluster.me, self.res.totals,
                self.res.snapshot_available())
        if self.cluster is None:
            return [here]
        others = [(n, self.cluster.table[n]["totals"], self.cluster.seen_available(n))
                  for n in self.cluster.views]
        return sorted([here] + others)

    def num_nodes(self):
        return 1 if self.cluster is None else len(self.cluster.table)

    def node_ids(self):
        if self.cluster is None:
            return [self.io.node.node_id]
        return [info["node_id"] for info in self.cluster.table]

    def _group_removed(self, pg):
        """pg is removed: work still waiting for its resources fails."""
        self.bundles.removed.add(pg)
        self.bundles.waiting = [w for w in self.bundles.waiting if w[0] != pg]
        for rec in list(self.tasks.values()):
            if rec.state in (READY, INFEASIBLE, WAITING) and placement.uses(rec.spec.resources, pg):
                self._remove_pending(rec)
                self._fail_removed(rec)
        for shape in [sh for sh, q in self.ready.items() if not q and placement.uses(dict(sh), pg)]:
            del self.ready[shape]
        for arec in list(self.actors.pending):
            if placement.uses(arec.spec.placement, pg):
                self._kill_removed_actor(arec)

    def evict_group(self, pg):
        """A bundle of pg held here is being given back: what runs in pg here ends (an
        actor placed on another node is that node's to end, with the right cause)."""
        for rec in list(self.tasks.values()):
            if rec.state == DISPATCHED and placement.uses(rec.spec.resources, pg):
                rec.evicted = True   # (its worker is killed: as in Ray, WorkerCrashedError)
                self.cancel(rec.spec.task_id, True)
        for arec in list(self.actors.actors.values()):
            if arec.host is None and placement.uses(arec.spec.placement, pg):
                self._kill_removed_actor(arec)

    def node_has_room(self, index, req) -> bool:
        """Node `index` exists and has req free now (as far as this node knows)."""
        if index == _ids.this_node():
            return self.res.fits(req)
        return self.cluster is not None and index in self.cluster.views and \
            self.cluster.really_fits(index, req)

    def node_can_hold(self, index, req) -> bool:
        """Node `index` exists and its totals can hold req."""
        if index == _ids.this_node():
            return self.res.feasible(req)
        return self.cluster is not None and index in self.cluster.views and \
            self.cluster.feasible_on(index, req)

    def _fail_unschedulable_actor(self, arec):
        arec.cause = ActorUnschedulableError(
            affinity.unschedulable_message(f"The actor {arec.spec.class_name}", arec.spec.placement))
        self.actors.kill(arec.spec.actor_id, no_restart=True)

    def _fail_removed(self, rec):
        self.tasks.pop(rec.spec.task_id, None)
        self._note_unrun(rec, ("TASK_PLACEMENT_GROUP_REMOVED", "its placement group was removed"))
        self.seal_error(rec.spec.return_ids(), TaskPlacementGroupRemoved())
        self._finish(rec)

    def _note_unrun(self, rec, error):
        """A task that ends here without running (refused, cancelled while it waited):
        list_tasks' FAILED row for it, as Ray lists one."""
        self._note_ended(rec, error)

    def _note_ended(self, rec, error, started=None):
        """An attempt of rec ended now (error: Ray's (error_type, message), or None):
        list_tasks' FINISHED / FAILED row (core/state_report.py)."""
        spec = rec.spec
        self.ended.append((spec.task_id, spec.name, spec.function_name, spec.attempt, spec.resources,
                           error, spec.parent, (rec.created, started, time.time())))

    def _kill_removed_actor(self, arec):
        if arec.cause is None:
            arec.cause = death_error(
arec, f"The actor {arec.spec.class_name} is dead because its placement group "
                "was removed. Worker exit type: INTENDED_SYSTEM_EXIT Worker exit detail: "
                "Destroying worker since its placement group was removed.",
                ActorPlacementGroupRemoved)
        self.actors.kill(arec.spec.actor_id, no_restart=True)

    def _ensure_task_workers(self):
        """Enough workers that every dispatched task has one that is not blocked (tasks
        dispatched ahead wait for one to finish)."""
        need = self.active + self.blocked - int(self.res.overcommitted_cpus())
        if need > self.min_task_workers:
            self.busy_at = time.monotonic()
        want = max(self.min_task_workers, need)
        while self.task_workers < min(want, self.max_task_workers):
            self.spawn_worker(TASK)
        if want > self.max_task_workers and "workers" not in self._warned:
            self._warned.add("workers")
            self.io.warn(f"{self.max_task_workers} task workers, the most a node starts, are "
                         f"running or blocked in ray.get(); tasks wait for one of them to end "
                         f"(many tasks blocked at once waiting for others: see docs/api.md)")

    def _ev_kill_actor(self, actor_id, no_restart, reply=None, why=None):
        """ray.kill; a worker's waits for the reply (its name is free when kill returns);
        why: another node's reason for the kill (the actor's owner died there)."""
        self.actors.kill(actor_id, no_restart, why)
        if reply is not None:
            self.io.put_reply(reply, None)

    def _ev_global_gc(self):
        """Ray's global GC (runtime.GC_PRESSURE): every process of the node collects."""
        self.want_gc()

    def want_gc(self):
        """A global GC now, or, within GC_MIN_INTERVAL_S of the last, when that is over
        (the node's quiet spells look again)."""
        self.gc_wanted = True
        now = time.monotonic()
        if now >= self.gc_asked + GC_MIN_INTERVAL_S:
            self.gc_asked, self.gc_wanted = now, False
            self.io.global_gc()

    def quiet(self):
        """A quiet spell of the node (the inbox thread calls it): housekeeping."""
        if self.late_decrefs:
            self._apply_late_decrefs()
        stuck = bool(self.actors.pending) and self.actors.warn_stuck()
        if not stuck:
            self.stuck_gc_at = 0.0   # (the next actor that waits asks at once)
        elif time.monotonic() >= self.stuck_gc_at:
            # (as Ray's: an actor waiting on resources may wait on actors only garbage
            # holds; while one waits, again every STUCK_GC_S only, a full collection in
            # every process being no small thing)
            self.stuck_gc_at = time.monotonic() + STUCK_GC_S
            self.gc_wanted = True
        if self.gc_wanted:
            self.want_gc()
        if self.unread_watch:
            self._report_unread()
        for actor_id in list(self.actors.resend):
            self.actors.resend_calls(actor_id)
        self.retire_idle_workers()
        if self.actors.cancelled_calls:
            self.actors.sweep_call_marks()

    def retire_idle_workers(self):
        """Task workers started for a burst (nested tasks blocked in get) go once the
        node has needed no more than num_cpus of them for RETIRE_AFTER_S, as Ray's idle
        workers do: an idle worker costs memory, and one that could take a task queued
        ahead turns dispatching ahead off (_dispatch_ahead)."""
        surplus = self.task_workers - self.retiring - self.min_task_workers
        if surplus <= 0 or self.active + self.blocked > self.min_task_workers or \
                time.monotonic() - self.busy_at < RETIRE_AFTER_S:
            return
        self.retiring += surplus
        for _ in range(surplus):
            self.io.retire_task_worker()  # whichever idle worker takes it exits

    def spawn_worker(self, kind, actor_id=b"", devices=NONE, options=None):
        slot = self.io.spawn_worker(kind, actor_id, dict(devices), options or {})
        self.workers[slot] = WorkerInfo(slot, kind, actor_id)
        if kind == TASK:
            self.task_workers += 1
        return slot

    # ------------------------------------------------------------------ processes
    def _ev_worker_started(self, slot, pid, nonce=None):
        w = self.workers.get(slot)
        if w is not None:
            w.pid, w.nonce, w.started_ms = pid, nonce, int(time.time() * 1000)

    def _ev_worker_died(self, slot, pid, status):
        oom = self.oom_killed.pop(slot, None)   # (the memory monitor's victim: why)
        w = self.workers.pop(slot, None)
        self.io.release_slot(slot)
        if not self.io.stopping():   # (at shutdown the whole store goes: no scans)
            # Its half-written objects go first (killed while it wrote a return: a retry
            # writes it again, and an error sealed in its place must find the id free).
            self.io.reap_dead_clients()
            self._release_worker_refs(slot, w.nonce if w is not None else None)
        if w is None:
            return
        from mpiray.core.state_report import exit_of

        ended_ms = int(time.time() * 1000)
        if w.kind == ACTOR:
            self.ended_workers.append((w, ended_ms) + exit_of(
                w, status, status == CLEAN_EXIT, self.actors.actors.get(w.actor_id), oom=oom))
        # Ray's ownership: the actors a process created die with it (unless detached),
        # and so do the tasks it submitted that have not ended (a crashed parent's
        # children, or a retried one's first children, do not run on beside it).
        # A task worker's normal exit (retired when idle, max_calls) is not a death of
        # what it made: those actors and tasks live on while their refs do.
        died = w.kind == ACTOR or status != CLEAN_EXIT
        self.actors.owner_gone(pid, died=died)
        if died and w.nonce:
            self._end_orphans(w.nonce)
        if w.kind == ACTOR:
            self.actors.on_process_died(w, status, oom)
            return
        self.task_workers -= 1
        self.retiring = max(0, self.retiring - 1)
        why = None   # (the scheduler's own reason to end it, for list_workers)
        for spec in self.io.recover_task_queue(slot):
            rec = self.tasks.get(spec.task_id)
            if rec is None or rec.state != DISPATCHED:
                continue
            why = "group" if rec.evicted else "cancel" if rec.force_cancelled else why
            self._release_task_resources(rec)
            self._after_crash(rec, status, oom)
        self.ended_workers.append((w, ended_ms) + exit_of(w, status, status == CLEAN_EXIT, None,
                                                          why, oom))

    def running_workers(self) -> dict:
        """task id -> the task worker running it (what its slot of the task queue holds: a
        racy, read-only look, for the state API, a force cancel and the memory monitor)."""
        from mpiray.core.task_spec import TaskSpec

        queue, store, out = self.io.node.task_queue, self.io.store, {}
        for w in self.workers.values():
            if w.kind != TASK or not w.pid:
                continue
            for item in queue.held_heads(w.slot + 1, WHOLE_ITEM, w.slot):
                try:
                    out[TaskSpec.from_bytes(P.decode_item(item, store)).task_id] = w
                except Exception:  # noqa: BLE001 - taken and reused while we looked
                    continue
        return out

    def oom_victim(self):
        """The process the memory monitor should kill (core/memory_monitor.py), or None:
        a running task's worker or an actor's process on this node, described."""
        from mpiray.core import memory_monitor
        from mpiray.core.actor_manager import ALIVE

        candidates = []
        for task_id, w in self.running_workers().items():
            rec = self.tasks.get(task_id)
            if rec is not None and rec.state == DISPATCHED and w.pid:
                candidates.append({
                    "slot": w.slot, "pid": w.pid, "what": "task",
                    "name": f"task ID: {task_id.hex()}, name={rec.spec.name}",
                    "retriable": rec.spec.attempt < rec.spec.max_retries,
                    "started": rec.dispatched or rec.created})
        for arec in self.actors.actors.values():
            w = self.workers.get(arec.slot) if arec.state == ALIVE and arec.host is None else None
            if w is not None and w.pid:
                candidates.append({
                    "slot": w.slot, "pid": w.pid, "what": "actor",
                    "name": f"actor ID: {arec.spec.actor_id.hex()}, name={arec.spec.class_name}",
                    "retriable": not arec.no_restart and arec.restarts_left != 0,
                    "started": (w.started_ms or 0) / 1000})
        return memory_monitor.newest(candidates)

    def _end_orphans(self, nonce):
        """Cancels (force, recursive) the tasks whose ids the dead process made: Ray's
        node kills a dead owner's running tasks and drops its queued ones."""
        for task_id in [t for t in self.tasks if t.startswith(nonce)]:
            rec = self.tasks.get(task_id)
            if rec is not None and not rec.cancelled:
                self.cancel(task_id, True, True)

    def _after_crash(self, rec, status, oom=None):
        spec = rec.spec
        self._note_ended(rec, _crash_error(rec, status, oom))
        if rec.evicted:
            del self.tasks[spec.task_id]
            self.seal_error(spec.return_ids(), WorkerCrashedError(
                f"The worker running {spec.name} was killed: its placement group was removed."))
            self._finish(rec)
        elif rec.cancelled:
            del self.tasks[spec.task_id]
            self.seal_error(spec.return_ids(), TaskCancelledError(spec.task_id.hex()))
            self._finish(rec)
        elif spec.attempt < spec.max_retries:
            spec.attempt += 1
            self._to_ready(rec)
        elif oom:
            del self.tasks[spec.task_id]
            self.seal_error(spec.return_ids(), OutOfMemoryError(oom))
            self._finish(rec)
        else:
            from mpiray.core.zygote import death_hint

            del self.tasks[spec.task_id]
            self.seal_error(spec.return_ids(), WorkerCrashedError(   # (Ray's words first)
                f"The worker died unexpectedly while executing this task ({spec.name}: {status}); "
                f"attempts made: {spec.attempt + 1}, max_retries={spec.max_retries}."
                f"{death_hint(status)}"))
            self._finish(rec)

    def pids(self, kind=None):
        return [w.pid for w in self.workers.values() if w.pid and (kind is None or w.kind == kind)]

    def running_worker_pids(self):
        return self.pids(TASK)

    _HANDLERS = {}


Scheduler._HANDLERS = {
    P.FROM: Scheduler._ev_from,
    P.INCREF: Scheduler._ev_incref,
    P.DECREF: Scheduler._ev_decref,
    P.HOLD: Scheduler._ev_hold,
    P.UNHOLD: Scheduler._ev_unhold,
    P.FREE_NOW: Scheduler._ev_free_now,
    P.NODE_QUERY: lambda self, what, reply: self.io.answer_query(what, reply),
    P.TASK_BACK: Scheduler._ev_task_back,
    P.TASK_LENT: Scheduler._ev_task_lent,
    P.SEALED: Scheduler._ev_sealed,
    P.TASK_DONE: Scheduler._ev_task_done,
    P.TIMINGS: lambda self, blob: self.task_log.add_blob(blob),
    P.SUBMIT: Scheduler.submit,
    P.BLOCKED: Scheduler._ev_blocked,
    P.UNBLOCKED: Scheduler._ev_unblocked,
    P.CANCEL: Scheduler._ev_cancel,
    P.REMOTE_TASK: Scheduler._ev_remote_task,
    P.REMOTE_TASK_DONE: Scheduler._ev_remote_task_done,
    P.BORROW: Scheduler._ev_borrow,
    P.UNBORROW: Scheduler._ev_unborrow,
    P.FREE: Scheduler._ev_free,
    P.FETCH: Scheduler._ev_fetch,
    P.LOCATE: lambda self, oids, reply: self.locator.ask(oids, reply),
    P.LOCATE_DROP: lambda self, reply: self.locator.drop(reply),
    P.REMOTE_LOCATE: lambda self, oid, node: self.locator.asked_by(oid, node),
    P.LOCATED: lambda self, oid: self.locator.sealed(oid),
    P.ARRIVED: Scheduler._ev_arrived,
    P.TICK: Scheduler._ev_tick,
    P.REMOTE_CALL: lambda self, spec: self.router.call_from_here(spec),
    P.ACTOR_CALL_IN: lambda self, aid, payload, source: self.router.call_in(aid, payload, source),
    P.CALL_DONE: lambda self, task_id, inline: self.router.call_done(task_id, inline),
    P.REMOTE_ACTOR: lambda self, aspec, origin: self.router.created_here(aspec, origin),
    P.ACTOR_DEAD: lambda self, aid, cause: self.router.dead_elsewhere(aid, cause),
    P.NAME_OP: lambda self, op, key, value, reply: self.cluster.send(
        0, ("name_op", op, key, value, reply, self.cluster.me)),
    P.CALL_CANCEL: lambda self, task_id, recursive=True: self.actors.cancel_call(
        task_id, False, recursive=recursive),
    P.ITEM_HELD: Scheduler._ev_item_held,
    P.GLOBAL_GC: Scheduler._ev_global_gc,
    P.PG_OP: Scheduler._ev_pg_op,
    P.PG_MSG: Scheduler._ev_pg_msg,
    P.WORKER_STARTED: Scheduler._ev_worker_started,
    P.WORKER_DIED: Scheduler._ev_worker_died,
}


def _actor_handler(method):
    return lambda self, *args: getattr(self.actors, method)(*args)


Scheduler._HANDLERS.update({
    P.CREATE_ACTOR: _actor_handler("create"),
    P.ACTOR_READY: _actor_handler("ready"),
    P.ACTOR_FAILED: _actor_handler("failed"),
    P.ACTOR_EXIT: _actor_handler("exited"),
    P.ACTOR_DONE: _actor_handler("done"),
    P.KILL_ACTOR: Scheduler._ev_kill_actor,
})

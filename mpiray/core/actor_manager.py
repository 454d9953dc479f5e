"""Actors of one node: placement, restarts, death and the calls they leave behind.

    CREATE_ACTOR ──► PENDING ──(resources)──► STARTING ──ACTOR_READY──► ALIVE
                        │                         │  process died, restarts left
                        │                         ◄────────────────────────┘
                        └──────────── kill / ctor failed / exit / no restarts ──► DEAD

Callers push calls straight onto the actor's own queue (made by the creator), so the
manager sees an actor's calls only when they end (ACTOR_DONE) or when the actor dies:
then the calls its process held are recovered from the queue, and at death for good
the queue is closed and drained, every call getting RayActorError.
"""

from __future__ import annotations

import collections
import os
import threading
import time

from mpiray import _ids
from mpiray.core import affinity, placement
from mpiray.core import protocol as P
from mpiray.core import actor_spec as A
from mpiray.core.accelerators import NONE
from mpiray.core.actor_spec import recorded_slots
from mpiray.core.executor import call_cancelled
from mpiray.core.scheduler_remote import movable
from mpiray.exceptions import (ActorDiedError, ActorUnavailableError, ActorUnschedulableError,
                               OutOfMemoryError, RayActorError, RayTaskError)
from mpiray.serialization import deserialize

# causes a dead actor's callers get as they are (any other is wrapped in ActorDiedError)
_AS_IS = (RayActorError, ActorUnschedulableError)

# A cancelled call's mark stays until the call ends here, or this long (a call that
# runs on another node, or had ended when the cancel came).
CALL_MARK_KEEP_S = 600.0

# How long calls made to a restarting actor wait for it before those not retried fail
# (Ray's caller waits about this long for news of an actor it lost: a quick restart is
# seen as up again, a slow one as unreachable).
RESTART_GRACE_S = 1.0

# An actor that could run here but finds no free resources for this long is reported
# once per class and shape (Ray's "cannot be scheduled right now" warning): most often
# the cluster's CPUs are all held by other actors, and the program waits for ever.
STUCK_WARN_S = float(os.environ.get("MPIRAY_PENDING_ACTOR_WARN_S", "10"))
GC_STUCK_S = 1.0   # an actor waiting this long for resources asks for a global GC

PENDING, STARTING, ALIVE, DEAD = "PENDING", "STARTING", "ALIVE", "DEAD"


# How an actor that ended by itself or on request died: Ray's exit type and its detail
# (list_workers' exit_type and exit_detail: core/state_report.py), by the record's exit_how.
EXITS = {
    "exit_actor": ("INTENDED_USER_EXIT", "The actor is dead because exit_actor() was called."),
    "sys.exit": ("INTENDED_USER_EXIT", "The actor is dead because sys.exit() was called: exit "
                                       "code 0."),
    "unreferenced": ("INTENDED_SYSTEM_EXIT", "The actor is dead because all references to the "
                                             "actor were removed."),
    "terminate": ("INTENDED_USER_EXIT", "The actor is dead because it was told to end "
                                        "(__ray_terminate__)."),
}


def death_error(rec, detail: str, cls=ActorDiedError):
    """The error an actor's callers get once it is dead, in Ray's words: its header line,
    the actor's facts (tab-indented), then why it died."""
    from mpiray.util.network import get_node_ip_address

    spec = rec.spec
    lines = ["The actor died unexpectedly before finishing this task.",
             f"\tclass_name: {spec.class_name}", f"\tactor_id: {spec.actor_id.hex()}"]
    if rec.pid:
        lines.append(f"\tpid: {rec.pid}")
    if spec.name:
        lines.append(f"\tname: {spec.name}")
    if spec.namespace:
        lines.append(f"\tnamespace: {spec.namespace}")
    lines += [f"\tip: {get_node_ip_address()}", detail]
    return cls("\n".join(lines), actor_id=spec.actor_id.hex())


class ActorRecord:
    def __init__(self, aspec):
        self.spec = aspec                 # core.actor_spec.ActorSpec
        self.state = PENDING
        self.slot = None
        self.pid = None                   # its process's, once up (kept after its death)
        self.devices = NONE
        self.restarts_left = aspec.max_restarts
        self.restarts = 0                 # how many times it was restarted
        self.no_restart = False           # kill(no_restart=True), exit_actor, ctor failure
        self.cause = None                 # why it is dead
        self.held = {}                    # resources held while alive
        self.origin = None                # MPI: the node that placed it here (its creator's)
        self.host = None                  # MPI: the node it runs on, when not this one
        self.pending_since = time.monotonic()   # waiting for resources since (warn_stuck)
        self.terminate_after_resend = False      # its TERMINATE waits behind resend calls
        self.name_released = False               # killed: its name is free already
        self.killed_to_restart = False           # kill(no_restart=False): its queue waits
        self.unreferenced = False                # ended because no handle to it remains
        self.exit_how = None                     # an EXITS key, once it ended by itself
        self.repr_name = ""                      # its own __repr__'s text, if it has one


class ActorManager:
    def __init__(self, scheduler):
        self.s = scheduler
        self.actors = {}        # actor_id -> ActorRecord
        self.pending = []       # records waiting for resources
        self.cancelled_calls = {}  # task id of a call marked cancelled here -> when to drop the mark
        self.answered = set()      # of those, the ones whose caller was answered already (kept
        #                            until the call ends or fails: the actor must skip it)
        self.resend = {}           # actor id -> calls going back to its queue (resend_calls)
        self.answered_early = set()  # MPI: returns of calls made here and passed on to
        #                              another node, answered here at their cancel

    def named(self) -> list:
        """(name, namespace) of the named actors created here that are not dead for good
        (an actor placed on another node is counted by its creator's node only)."""
        with self.s.lock:
            return [(r.spec.name, r.spec.namespace) for r in self.actors.values()
                    if r.spec.name and r.state != DEAD and r.origin is None
                    and not r.name_released]

    # ------------------------------------------------------------ creation
    def create(self, aspec, origin=None):
        soft = affinity.soft_node_key(aspec.placement)
        if soft is not None:
            to_place, check = affinity.soft_check(aspec.placement, self.s.node_can_hold,
                                                  self.s.node_has_room)
            aspec.placement = affinity.resolve_soft(to_place, soft, check)
            aspec.resources = affinity.resolve_soft(affinity.without_spill(aspec.resources), soft,
                                                     lambda *_: soft in aspec.placement)
        rec = ActorRecord(aspec)
        rec.origin = origin
        self.actors[aspec.actor_id] = rec
        for oid in aspec.creation.contained:  # constructor args live as long as the actor
            self.s._incref(oid)
        cluster = self.s.cluster
        infeasible = not self.s.res.feasible(aspec.placement) and not (
            cluster is not None and origin is None and cluster.feasible_elsewhere(aspec.placement))
        pinned = affinity.pinned_node(aspec.placement) is not None
        if infeasible and not pinned:
            self.s._warn_infeasible(f"actor {aspec.class_name}", aspec.placement)
        self.pending.append(rec)
        if placement.group_of(aspec.placement) in self.s.bundles.removed:
            self.s._kill_removed_actor(rec)
        elif infeasible and pinned:
            self.s._fail_unschedulable_actor(rec)

    def warn_stuck(self) -> bool:
        """(the node's quiet spells) Ray's warning for actors that wait on resources
        other actors hold. True if one has waited GC_STUCK_S for resources it could have."""
        now = time.monotonic()
        stuck = False
        for rec in self.pending:
            if rec.state != PENDING or now - rec.pending_since < GC_STUCK_S:
                continue
            stuck = stuck or self.s.res.feasible(rec.spec.placement)
            if now - rec.pending_since < STUCK_WARN_S:
                continue
            key = ("stuck", rec.spec.class_name, tuple(sorted(rec.spec.placement.items())))
            if key in self.s._warned or not self.s.res.feasible(rec.spec.placement):
                continue   # (told already, or infeasible: told so at creation)
            self.s._warned.add(key)
            self.s.io.warn(
                f"The following resource request cannot be scheduled right now: "
                f"{rec.spec.placement} (actor {rec.spec.class_name}, waiting for "
                f"{now - rec.pending_since:.0f} s). This is likely due to all cluster "
                "resources being claimed by actors. Consider creating fewer actors or "
                "adding more nodes to this Ray cluster.")
        return stuck

    def place_pending(self):
        if not self.pending:
            return
        still, load = [], None
        for rec in self.pending:
            if rec.state != PENDING:
                continue
            if self.s.cluster is not None and rec.origin is None and \
                    affinity.SPREAD in rec.spec.placement:
                if not self._place_spread(rec):
                    still.append(rec)
            elif self.s.cluster is not None and rec.origin is None and movable(rec.spec.placement):
                if load is None:
                    load = self._actors_by_node()
                if not self._place_balanced(rec, load):
                    still.append(rec)
            elif self.s.res.feasible(rec.spec.placement) and self.s.res.fits(rec.spec.resources):
                self._start(rec)
            elif self.s.cluster is not None and self.s.router.place_remotely(rec):
                pass
            else:
                still.append(rec)
        self.pending = still

    def _actors_by_node(self) -> dict:
        """node -> the live actors this node knows to be there: its own, and those it
        placed on others."""
        me, load = self.s.cluster.me, {}
        for rec in self.actors.values():
            if rec.state in (DEAD, PENDING):
                continue
            node = me if rec.host is None else rec.host
            load[node] = load.get(node, 0) + 1
        return load

    def _place_balanced(self, rec, load) -> bool:
        """An actor free to go anywhere goes to the node with the fewest actors per CPU
        that has room for it (this one among equals)."""
        res = self.s.res
        node = self.s.cluster.balance_target(
            rec.spec.placement, load,
            lambda req: res.feasible(req) and res.fits(rec.spec.resources))
        if node is None:
            return False
        if node == self.s.cluster.me:
            self._start(rec)
        elif not self.s.router.place_remotely(rec, node):
            return False
        load[node] = load.get(node, 0) + 1
        return True

    def _place_spread(self, rec) -> bool:
        """A SPREAD actor goes to the next node in turn with room (this one included)."""
        res = self.s.res
        node = self.s.cluster.spread_target(
            rec.spec.placement, lambda req: res.feasible(req) and res.fits(rec.spec.resources),
            strict=True)
        if node is None:
            return False
        if node == self.s.cluster.me:
            self._start(rec)
            return True
        return self.s.router.place_remotely(rec, node)

    def _start(self, rec):
        rec.held = dict(rec.spec.resources)
        rec.devices = self.s.res.acquire(rec.held)
        rec.state = STARTING
        rec.slot = self.s.spawn_worker("actor", rec.spec.actor_id, rec.devices,
                                       {"max_concurrency": rec.spec.max_concurrency,
                                        "label": rec.spec.class_name,
                                        "reconstructed": rec.restarts > 0})

    def ready(self, actor_id, slot, repr_name=""):
        rec = self.actors.get(actor_id)
        if rec is not None and rec.state == STARTING:
            rec.state = ALIVE
            rec.repr_name = repr_name
            worker = self.s.workers.get(slot)
            rec.pid = worker.pid if worker is not None else rec.pid
            if rec.restarts:
                self.s.io.mark_restarting(actor_id, False)
                if actor_id in self.resend:
                    self.resend_calls(actor_id)

    def failed(self, actor_id, blob):
        rec = self.actors.get(actor_id)
        if rec is not None:
            error, _ = deserialize(blob)
            rec.no_restart = True
            # the process exits next; death finishes the job
            rec.cause = ActorDiedError(
                f"The actor died because of an error raised in its creation task, {error}",
                actor_id=actor_id.hex(), actor_init_failed=True,
                cause=error.as_instanceof_cause() if isinstance(error, RayTaskError) else error)

    def exited(self, actor_id, slot, how=None):
        """how: "exit_actor" or "sys.exit" when a method ended it; else it was told to end
        (no handle to it remains, or __ray_terminate__)."""
        rec = self.actors.get(actor_id)
        if rec is not None:
            rec.no_restart = True
            if rec.cause is None:
                rec.exit_how = how or ("unreferenced" if rec.unreferenced else "terminate")
                exit_type, detail = EXITS[rec.exit_how]
                rec.cause = death_error(rec, f"{detail} Worker exit type: {exit_type}")

    def done(self, sealed, release, task_id=None, driver_failed=False):
        if self.cancelled_calls and task_id in self.cancelled_calls:
            self._unmark(task_id)
        if driver_failed and self.s.interactive:
            self.s.watch_unread([oid for oid, _ in sealed])
        for oid, contained in sealed:
            self.s._on_sealed(oid, contained)
        if self.s.cluster is not None and task_id is not None:
            self.s.router.finished(task_id, release)
            return
        for oid in release:
            self.s._decref(oid)

    # ------------------------------------------------------------ ending
    def kill(self, actor_id, no_restart=True, why=None):
        """why: the death's reason, when it is not ray.kill (its owner died, say)."""
        rec = self.actors.get(actor_id)
        if no_restart and rec is not None and rec.state != DEAD:
            # as Ray's: the name is free once kill() returns (the driver's kill is applied
            # before it returns), not once the process is found dead
            self.s.io.unregister_actor_name(rec.spec)
            rec.name_released = True
        if self.s.cluster is not None and self.s.router.kill(actor_id, no_restart, why):
            return
        if rec is None or rec.state == DEAD:
            return
        if no_restart:
            rec.no_restart = True
            rec.cause = rec.cause or death_error(
                rec, why or "The actor is dead because it was killed by `ray.kill`.")
        if rec.state == PENDING:
            if not no_restart and rec.restarts_left != 0:
                # (as Ray's: a kill that allows a restart, of an actor not started yet,
                # is its restart: it stays pending, one restart fewer)
                rec.restarts += 1
                rec.restarts_left -= rec.restarts_left > 0
                return
            self._to_dead(rec)
            return
        if no_restart:
            self.s.io.close_actor_queue(actor_id, drain=False)  # later calls fail at once
        pid = self.s.workers[rec.slot].pid if rec.slot in self.s.workers else None
        if not no_restart:   # (the calls made once kill returns are the new instance's)
            rec.killed_to_restart = True
        self.s.io.kill_worker(rec.slot, pid, wait_s=0 if no_restart else 2.0)
        if no_restart and pid:   # (the actors it created go with it now, not when its
            self.owner_gone(pid, died=True)   # death is noticed: as Ray's kill)

    def owner_gone(self, pid, died):
        """The process pid of this node ended. died: its actors end with it (not the
        detached ones); else (a clean exit) they are nobody's to follow from now on, so a
        later process with the same pid is not taken for their owner. The record of an
        actor placed here by another node is that node's to end (its owner lives there)."""
        for rec in list(self.actors.values()):
            if rec.spec.owner_pid != pid or rec.origin is not None:
                continue
            if died and not rec.spec.detached and rec.state != DEAD:
                why = (f"The actor is dead because its owner has died: the actor "
                       f"{rec.spec.class_name} died with the worker process {pid} that created it.")
                rec.cause = rec.cause or death_error(rec, why)
                self.kill(rec.spec.actor_id, no_restart=True, why=why)   # (why: for the node
                #                                                            it runs on)
            rec.spec.owner_pid = 0

    def on_handles_gone(self, actor_id):
        rec = self.actors.get(actor_id)
        if rec is None or rec.state == DEAD or rec.spec.detached:
            return   # (a named one goes too, as in Ray: handles found by name are weak)
        if rec.state == PENDING and (not self.s.io.calls_queued(actor_id)
                                     or not self.s.res.feasible(rec.spec.placement)):
            # never started, and nothing asked of it (or it could never start here: its
            # callers get the error instead of waiting for ever): gone at once
            rec.no_restart = True
            rec.cause = death_error(rec, "The actor never ran - no handle to it remains, and it was "
                                  "cancelled before it started running.")
            self._to_dead(rec)
        else:
            rec.unreferenced = True
            self.s.io.terminate_actor(actor_id)  # after every call already queued

    def on_process_died(self, worker, status, oom=None):
        """oom: the memory monitor killed it, and why (the calls it ran fail with
        OutOfMemoryError, as Ray's)."""
        rec = self.actors.get(worker.actor_id)
        if rec is None or rec.state == DEAD:
            return
        self.s.res.release(rec.held, rec.devices)
        rec.held, rec.devices = {}, NONE
        restart = not rec.no_restart and rec.restarts_left != 0
        lost = self.s.io.recover_actor_calls(rec.spec.actor_id, recorded_slots(rec.spec))
        if restart:
            rec.restarts += 1
            if rec.restarts_left > 0:
                rec.restarts_left -= 1
            self._resend_or_fail(rec, lost, status, oom)
            rec.state = PENDING
            rec.pending_since = time.monotonic()
            self.pending.append(rec)
            return
        if rec.cause is None:
            from mpiray.core.zygote import death_hint

            rec.cause = death_error(rec, f"The actor is dead because its worker process was killed "
                                         f"by the memory monitor: {oom}") if oom else death_error(
rec, f"The actor is dead because its worker process has died: the actor "
                f"{rec.spec.class_name} died unexpectedly ({status}).{death_hint(status)}")
        for call in lost:   # (their notes of attempts, if any, go)
            A.taken_attempt(self.s.io.store, call.task_id, 0)
        self._fail_calls(lost, OutOfMemoryError(oom) if oom else rec.cause)
        self._to_dead(rec)

    def _resend_or_fail(self, rec, running, status, oom=None):
        """The actor restarts: the calls its process had (running, then those queued, in
        the order they were made) go to the new instance if their retries allow, as in
        Ray (a call sent to an actor that died counts as tried); the others fail with
        ActorUnavailableError. Calls made while it restarts wait for it, unless it takes
        longer than RESTART_GRACE_S: then those not retried fail, and so do the next ones
        at once, until it is up (_restart_overdue)."""
        aid = rec.spec.actor_id
        # (an instance that died in its constructor had no call yet: as in Ray, those
        # queued wait for the next one, spending nothing)
        self._take_back_calls(rec, running, OutOfMemoryError(oom) if oom else ActorUnavailableError(
            f"The actor {rec.spec.class_name} died ({status}) before finishing this call; it "
            "is restarting, and the call is not retried (max_task_retries).", actor_id=aid.hex()),
            queued_were="sent" if rec.state == ALIVE and not rec.killed_to_restart else "unsent")
        rec.killed_to_restart = False
        timer = threading.Timer(RESTART_GRACE_S, self._on_restart_timer, (aid, rec.restarts))
        timer.daemon = True
        timer.start()

    def _on_restart_timer(self, actor_id, restarts):
        try:
            self.s.stimulus_driver(self._restart_overdue, actor_id, restarts)
        except Exception:  # noqa: BLE001 - the node stopped meanwhile
            pass

    def _restart_overdue(self, actor_id, restarts):
        """As Ray's caller, which waits about a second for an actor that went away and
        then treats it as unreachable: a restart still under way fails the calls made
        meanwhile that are not retried, and marks the actor so that callers on this node
        fail the next ones at once (runtime.call_actor) until it is up."""
        rec = self.actors.get(actor_id)
        if rec is None or rec.restarts != restarts or rec.state not in (PENDING, STARTING):
            return
        self.s.io.mark_restarting(actor_id, True)
        self._take_back_calls(rec, [], ActorUnavailableError(
            f"The actor {rec.spec.class_name} is restarting (for over {RESTART_GRACE_S:g} s) "
            "and the call is not retried (max_task_retries).", actor_id=actor_id.hex()),
            queued_were="overdue")

    def _take_back_calls(self, rec, running, exc, queued_were="sent"):
        """running (taken from a dead process) and the calls queued for the actor: each
        goes back to its queue, in order, if its retries allow, else fails with exc. A
        call the dead instance had (running, or queued_were "sent" to it) counts an attempt,
        as in Ray; queued calls no instance took ("unsent") all wait; those made while a
        restart is overdue ("overdue") fail only if they are never retried."""
        aid = rec.spec.actor_id
        queued, terminate = self.s.io.take_queued_calls(aid)
        for call in running:   # (its retries on exceptions, in the dead process, count)
            call.attempt = A.taken_attempt(self.s.io.store, call.task_id, call.attempt)
        failed, again = [], self.resend.setdefault(aid, collections.deque())
        for n, call in enumerate(running + queued):
            limit = call.max_retries if call.max_retries >= 0 else rec.spec.max_task_retries
            if n < len(running) or queued_were == "sent":
                if limit >= 0 and call.attempt >= limit:
                    failed.append(call)
                    continue
                call.attempt += 1
            elif queued_were == "overdue" and limit == 0:
                failed.append(call)
                continue
            again.append(call)
        rec.terminate_after_resend = rec.terminate_after_resend or terminate
        self._fail_calls(failed, exc)
        self.resend_calls(aid)

    def resend_calls(self, actor_id):
        """Calls going back to a restarted actor's queue, in order, as it has room (never
        waiting for it: callers may refill the queue meanwhile, and only this thread can
        start the instance that empties it). Then its TERMINATE, if one was queued."""
        again = self.resend.get(actor_id)
        while again:
            if not self.s.io.push_actor_call_or_false(actor_id, again[0], wait=False):
                if self.s.io.actor_queue(actor_id) is None:
                    break   # (gone: the actor's death fails what is left)
                return      # full: the next quiet spell tries again
            again.popleft()
        self.resend.pop(actor_id, None)
        rec = self.actors.get(actor_id)
        if rec is not None and rec.terminate_after_resend:
            rec.terminate_after_resend = False   # (no handle left: it still ends after them)
            self.s.io.terminate_actor(actor_id)

    def _to_dead(self, rec):
        rec.state = DEAD
        if rec.pid is None:   # (ready may have come before the zygote told the pid)
            worker = self.s.workers.get(rec.slot)
            rec.pid = worker.pid if worker is not None else None
        aid = rec.spec.actor_id
        self.s.io.mark_restarting(aid, False)
        left = list(self.resend.pop(aid, ()))
        cause = rec.cause if isinstance(rec.cause, _AS_IS) else ActorDiedError(
            f"The actor {rec.spec.class_name} is dead: {rec.cause}", actor_id=aid.hex(), cause=rec.cause)
        self.s.io.publish_actor_death(aid, cause)
        self._fail_calls(left + self.s.io.close_actor_queue(aid), cause)
        self.s.io.unregister_actor_name(rec.spec)
        for oid in rec.spec.creation.contained:
            self.s._decref(oid)
        self.s.res.release(rec.held, rec.devices)
        rec.held, rec.devices = {}, NONE
        if self.s.cluster is not None:
            self.s.router.tell_creator(rec, cause)

    def death_cause(self, actor_id):
        rec = self.actors.get(actor_id)
        if rec is not None and isinstance(rec.cause, _AS_IS):
            return rec.cause
        return ActorDiedError("The actor is dead.", actor_id=actor_id.hex())

    def _fail_calls(self, calls, exc):
        for call in calls:
            if call.task_id in self.cancelled_calls:
                self._unmark(call.task_id)
            self.s.seal_error(call.return_ids(), exc)
            if self.s.cluster is not None:
                self.s.router.finished(call.task_id, call.contained)
                continue
            for oid in call.contained:
                self.s._decref(oid)

    def cancel_call(self, task_id, force, index=1, recursive=True):
        """ray.cancel of an actor call made on this node (a task id the scheduler does
        not run): the call is marked cancelled in the store of the actor's node. Its
        process skips it if it has not started, cancels it on the event loop of an async
        actor, and lets a running sync call finish (it may look at
        get_runtime_context().is_canceled()), as Ray does. force is not for actors.
        A call passed on from here is cancelled on its next hop (the cancel follows the
        call's route to the actor's node, CALL_CANCEL there); else it is marked here,
        where the actor runs or the call still waits in the queue of a remote actor's
        proxy (which passes the cancel on after the call: ActorRouter.pass_cancel).
        The node the call was made on answers the ref ray.cancel was given (return
        `index`) at once, as Ray answers a call not started (waiting in the queue, for its
        actor to be placed or for its arguments); the actor skips the call when it
        reaches it (its mark is kept until then, however long). A call that had started
        runs to its end, as a cancelled running sync call does in Ray, and its return,
        found written (or, from another node, arriving later), is dropped: the early
        answer stands. A node a call only passed through does not answer it."""
        cluster = self.s.cluster
        route = cluster.routes.get(task_id) if cluster is not None else None
        oid = _ids.object_id(task_id, index)
        made_here = cluster is None or self.s.router.calls.get(task_id, (None,))[0] is None
        answerable = made_here and _ids.is_actor_call(task_id) and not task_id[-1] & _ids.STREAM_BIT
        if route is not None:
            cluster.send(route[0], ("call_cancel", task_id, recursive))
            if answerable and not self.s.io.contains(oid) and oid not in self.answered_early:
                self.answered_early.add(oid)   # (what comes back for it is dropped)
                self.s.seal_error([oid], call_cancelled(task_id))
        elif self.mark_call(task_id, recursive) and answerable and not self._running_here(task_id):
            self.answered.add(task_id)
            self.s.seal_error([oid], call_cancelled(task_id))

    def _running_here(self, task_id) -> bool:
        """An actor of this node has started the call (its process holds it): as in Ray,
        its caller is answered when it ends (an async one after its clean-up), not now."""
        for rec in self.actors.values():
            if rec.state != ALIVE or rec.host is not None:
                continue
            q = self.s.io.actor_queue(rec.spec.actor_id)
            if q is None:
                continue
            for head in q.held_heads(recorded_slots(rec.spec)):
                if task_id in head or (P.is_pointer(head) and task_id in P.decode_item(
                        head, self.s.io.store)[:64]):
                    return True
        return False

    def mark_call(self, task_id, recursive=True) -> bool:
        """False: already cancelled, or ended."""
        if task_id in self.cancelled_calls:
            return False
        if self.s.io.contains(_ids.object_id(task_id, 1)) or \
                self.s.io.contains(_ids.stream_end(task_id)):
            # (a mark a caller's process put ahead of us, on a call that had ended: no
            # actor will look at it, so it goes)
            self.s.io.delete_object(_ids.object_id(task_id, _ids.CANCEL_INDEX))
            return False
        self.s.io.mark_call_cancelled(task_id, recursive)
        self.cancelled_calls[task_id] = time.monotonic() + CALL_MARK_KEEP_S
        return True

    def sweep_call_marks(self):
        """Marks of calls this node never saw end (they ran elsewhere, or had ended); not
        of calls answered at once (their actor must still skip them, however late)."""
        now = time.monotonic()
        for task_id in [t for t, due in self.cancelled_calls.items()
                        if due <= now and t not in self.answered]:
            self._unmark(task_id)

    def _unmark(self, task_id):
        del self.cancelled_calls[task_id]
        self.answered.discard(task_id)
        self.s.io.clear_cancel_marks(task_id)

    def shutdown_all(self):
        for rec in self.actors.values():
            if rec.state != DEAD:
                rec.no_restart = True

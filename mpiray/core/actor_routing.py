"""Actors across nodes (MPI mode): where each actor runs, and calls that cross nodes.

    creator node O                                    host node H
    Cls.remote() ─► ActorManager: no room here ─► ("actor_create", spec) ─► ActorManager
    caller on O ─► O's actor queue (a proxy now) ─► agent drains ─► ("actor_call") ─► H's queue
    caller on C ─► REMOTE_CALL ─► ("actor_call") ─► O ─► ("actor_call") ─► H
    H: the call ends ─► ("call_done", task_id) ─► back, hop by hop, to the caller's node
    H: the actor is dead for good ─► ("actor_dead", actor_id, cause) ─► O

Every node that passes a call on keeps the call's returns for the caller (values or
errors are fetched along the route) and remembers in ``calls`` whom to tell when the
call ends and whether it holds the call's arguments meanwhile (the caller's node does,
through its process's INCREF; the host does, from the call's arrival to its end).
Per-caller order holds: one caller's calls take one FIFO path (queue, MPI pair, queue).
"""

from __future__ import annotations

from mpiray import _ids
from mpiray.core import protocol as P
from mpiray.core.call_backlog import CallBacklog
from mpiray.core.task_spec import TaskSpec
from mpiray.exceptions import ActorDiedError


class ActorRouter:
    def __init__(self, scheduler):
        self.s = scheduler
        self.calls = {}   # task id -> (node to tell when it ends or None,
        #                  contained held here or None, return ids)
        # (calls a full actor queue cannot take now: the scheduler never waits for room)
        self.backlog = CallBacklog(scheduler.io, scheduler.stimulus_driver, self._fail)

    @property
    def cluster(self):
        return self.s.cluster

    # ------------------------------------------------------------ calls leaving a node
    def call_from_here(self, spec):
        """A process here calls an actor: onto its queue if it runs (or waits to be
        placed) here, else to the node it runs on, else to its owner (its creator's
        node), which knows where it runs."""
        rec = self.s.actors.actors.get(spec.actor_id)
        # (placed elsewhere since, with calls still waiting for room in what is now its
        # proxy queue: behind them, so that this caller's order holds)
        if rec is not None and (rec.host is None or self.backlog.pending(spec.actor_id)):
            if not self.backlog.push(spec.actor_id, spec):
                self._fail(spec)
            return
        target = rec.host if rec is not None else _ids.node_of(spec.actor_id)
        if target == self.cluster.me:  # ours, and unknown here: it is gone
            self._fail(spec)
            return
        self.calls[spec.task_id] = (None, list(spec.contained), spec.return_ids())
        # the call goes before route(): a fetch that route() may send must follow it
        self.cluster.send(target, ("actor_call", spec.actor_id, spec.to_bytes()))
        self.cluster.call_routed(spec.task_id, target, spec.return_ids())

    def forwarded_from_proxy(self, actor_id, payload, host):
        """The agent drained a call from this node's proxy queue of a remote actor."""
        if payload == P.TERMINATE:
            self.cluster.send(host, ("actor_call", actor_id, payload))
            return
        spec = TaskSpec.from_bytes(payload)
        self.calls.setdefault(spec.task_id, (None, list(spec.contained), spec.return_ids()))
        self.cluster.send(host, ("actor_call", actor_id, payload))
        self.cluster.call_routed(spec.task_id, host, spec.return_ids())
        self.pass_cancel(spec.task_id, host)

    def pass_cancel(self, task_id, host):
        """A call cancelled while it waited here goes on cancelled (after the call)."""
        if self.s.actors.cancelled_calls.pop(task_id, None) is not None:
            self.s.io.clear_cancel_marks(task_id)
            self.cluster.send(host, ("call_cancel", task_id, True))

    # ------------------------------------------------------------ calls arriving
    def call_in(self, actor_id, payload, source):
        rec = self.s.actors.actors.get(actor_id)
        if payload == P.TERMINATE:
            if rec is not None and rec.host is not None:
                self.cluster.send(rec.host, ("actor_call", actor_id, payload))
            elif rec is not None:
                self.s.io.terminate_actor(actor_id)
            return
        spec = TaskSpec.from_bytes(payload)
        self.s.kept.update(spec.return_ids())        # values or errors, kept for the caller
        if rec is not None and rec.host is not None:  # runs elsewhere: pass it on
            self.calls[spec.task_id] = (source, None, spec.return_ids())
            if self.backlog.pending(actor_id) and self.backlog.push(actor_id, spec):
                return   # (behind the calls still waiting for its proxy queue)
            self.cluster.send(rec.host, ("actor_call", actor_id, payload))
            self.cluster.call_routed(spec.task_id, rec.host, spec.return_ids())
            self.pass_cancel(spec.task_id, rec.host)
            return
        for oid in spec.contained:                   # the call holds its arguments here
            self.s._incref(oid)
        self.calls[spec.task_id] = (source, list(spec.contained), spec.return_ids())
        # No record yet can mean a creation still on its way through this node's inbox:
        # its queue exists (the creator makes it first), and the call waits in it.
        if not self.backlog.push(actor_id, spec):
            self._fail(spec)

    def _fail(self, spec):
        """The actor is gone: the call's returns get the cause, and it ends here."""
        self.s.seal_error(spec.return_ids(), self.s.actors.death_cause(spec.actor_id))
        self.finished(spec.task_id, spec.contained)

    # ------------------------------------------------------------ calls ending
    def finished(self, task_id, contained):
        """A call ended here (values sealed, or failed): release what this node held for
        it and tell the node it came from (small returns go along)."""
        entry = self.calls.pop(task_id, None)
        if self.cluster is not None:
            self.cluster.call_ended(task_id)
        if entry is None:
            for oid in contained:
                self.s._decref(oid)
            return
        prev, held, return_ids = entry
        for oid in held or ():
            self.s._decref(oid)
        if prev is not None:
            self.s.send_returns(prev, ("call_done", task_id), return_ids)

    def call_done(self, task_id, inline=()):
        """The next hop says a call we passed on has ended (a return its cancel answered
        here already is dropped: the caller has its answer)."""
        early = self.s.actors.answered_early
        if early and inline:
            for oid in [x[0] for x in inline if x[0] in early]:
                self.cluster.inlined(oid)   # (its route has nothing left to fetch)
            inline = [x for x in inline if x[0] not in early]
        for oid in self.calls.get(task_id, (None, None, ()))[2]:
            early.discard(oid)
        here = self.s.take_returns(inline)
        self.cluster.fetch_after_end(task_id, here)   # (what came along is not fetched)
        entry = self.calls.get(task_id)
        if entry is not None:
            self.s.sealed_elsewhere(entry[2], here)
        self.finished(task_id, ())

    def is_passing(self, task_id) -> bool:
        return task_id in self.calls

    # ------------------------------------------------------------ actors moving
    def place_remotely(self, rec, node=None) -> bool:
        """Sends a pending actor to node, by default another node with room; False if
        none has."""
        if rec.origin is not None:
            return False  # an actor sent here stays here (its creator chose this node)
        if node is None:
            node = self.cluster.pick(rec.spec.placement, (), lambda oid: True, strict=True)
        if node is None:
            return False
        rec.host = node
        rec.state = "REMOTE"
        self.cluster.views[node].acquire(rec.spec.resources)  # held there while it lives
        functions = self.cluster.functions_for(node, [rec.spec.creation.function_id],
                                               self.s.io.read_blob)
        self.cluster.send(node, ("actor_create", P.dumps(rec.spec), functions))
        self.s.io.forward_actor_queue(rec.spec.actor_id, node)
        return True

    def created_here(self, aspec, origin):
        """An actor another node placed here: its queue and spec live on this node."""
        self.s.io.adopt_actor(aspec)
        self.s.actors.create(aspec, origin=origin)

    def dead_elsewhere(self, actor_id, cause):
        """The host says the actor is dead for good: end it here too (calls still in
        the proxy queue fail with the cause)."""
        rec = self.s.actors.actors.get(actor_id)
        if rec is None or rec.state == "DEAD":
            return
        self.s.io.stop_forwarding(actor_id)
        self.cluster.views[rec.host].release(rec.spec.resources)
        rec.cause = cause
        rec.no_restart = True
        self.s.actors._to_dead(rec)

    def kill(self, actor_id, no_restart, why=None) -> bool:
        """Passes a kill (and why, if it is not ray.kill) on to where the actor is; False
        if it is this node's to do."""
        rec = self.s.actors.actors.get(actor_id)
        if rec is None and _ids.node_of(actor_id) != self.cluster.me:
            self.cluster.send(_ids.node_of(actor_id), ("actor_kill", actor_id, no_restart, why))
            return True
        if rec is not None and rec.host is not None and rec.state != "DEAD":
            self.cluster.send(rec.host, ("actor_kill", actor_id, no_restart, why))
            return True
        return False

    def tell_creator(self, rec, cause):
        if rec.origin is not None:
            from mpiray.serialization import serialize_error

            self.cluster.send(rec.origin, ("actor_dead", rec.spec.actor_id,
                                           serialize_error(cause).to_bytes()))


def default_cause(actor_id):
    return ActorDiedError("The actor is dead.", actor_id=actor_id.hex())

"""What one node tells ray.util.state about its actors and tasks (the driver gathers
every node's answer: api._every_node, mpi/roles.py ASKABLE)."""

from __future__ import annotations

import os

from mpiray import _ids
from mpiray.core import actor_manager as AM
from mpiray.core import protocol as P
from mpiray.core import scheduler as S
from mpiray.core.actor_spec import recorded_slots
from mpiray.core.task_spec import TaskSpec
from mpiray.util.network import get_node_ip_address

WHOLE = 1 << 16   # (bytes of a queue item to copy: all of it)

# Ray's state names for ours
ACTOR_STATES = {AM.PENDING: "PENDING_CREATION", AM.STARTING: "PENDING_CREATION",
                AM.ALIVE: "ALIVE", AM.DEAD: "DEAD"}
TASK_STATES = {S.WAITING: "PENDING_ARGS_AVAIL", S.READY: "PENDING_NODE_ASSIGNMENT",
               S.INFEASIBLE: "PENDING_NODE_ASSIGNMENT", S.DISPATCHED: "RUNNING"}


def actors(scheduler) -> list:
    """Every actor this node runs or has not placed yet (one placed on another node is
    that node's to report)."""
    with scheduler.lock:
        out = []
        for rec in scheduler.actors.actors.values():
            if rec.host is not None:
                continue
            worker = scheduler.workers.get(rec.slot)
            state = ACTOR_STATES[rec.state]
            if state == "PENDING_CREATION" and rec.restarts:
                state = "RESTARTING"
            out.append({
                "actor_id": rec.spec.actor_id.hex(), "class_name": rec.spec.class_name,
                "state": state, "name": rec.spec.name, "ray_namespace": rec.spec.namespace,
                "pid": worker.pid if worker is not None and rec.state != AM.DEAD else rec.pid,
                "is_detached": rec.spec.detached, "required_resources": dict(rec.spec.resources),
                "death_cause": None if rec.cause is None else str(rec.cause),
                "num_restarts": rec.restarts,
                "_placed": rec.state != AM.PENDING,
            })
        return out


def tasks(scheduler) -> list:
    """The tasks this node holds that have not ended (a task sent on to another node
    is that node's to report), and the calls of its actors: running (their process
    holds them) or waiting in their queues."""
    with scheduler.lock:
        rows = [{
            "task_id": rec.spec.task_id.hex(), "name": rec.spec.name,
            # (a task queued ahead for the next free worker: Ray's "submitted to a worker")
            # (one queued ahead for the next free worker waits for a CPU: as Ray's task
            # not yet given a node's resources)
            "state": "PENDING_NODE_ASSIGNMENT" if rec.ahead and rec.state == S.DISPATCHED
            else TASK_STATES[rec.state], "attempt_number": rec.spec.attempt,
            "required_resources": dict(rec.spec.resources), "type": "NORMAL_TASK",
            "func_or_class_name": rec.spec.name, "actor_id": None,
        } for rec in scheduler.tasks.values() if rec.state in TASK_STATES]
        rows += [{
            "task_id": task_id.hex(), "name": name, "state": "FAILED" if failed else "FINISHED",
            "attempt_number": attempt, "required_resources": dict(resources),
            "type": "NORMAL_TASK", "func_or_class_name": name, "actor_id": None,
        } for task_id, name, attempt, resources, failed in scheduler.ended]
        actors = [rec for rec in scheduler.actors.actors.values()
                  if rec.host is None and rec.state != AM.DEAD]
    for rec in actors:
        rows += _actor_calls(scheduler, rec)
    return rows


def _actor_calls(scheduler, rec) -> list:
    """A racy look at an actor's queue (core/actor_manager.py, _running_here)."""
    q = scheduler.io.actor_queue(rec.spec.actor_id)
    if q is None:
        return []
    store, rows = scheduler.io.store, []
    held = q.held_heads(recorded_slots(rec.spec), WHOLE) if rec.state == AM.ALIVE else []
    for state, items in (("RUNNING", held), ("SUBMITTED_TO_WORKER", q.queued_heads(WHOLE))):
        for item in items:
            try:
                spec = TaskSpec.from_bytes(P.decode_item(item, store))
            except Exception:  # noqa: BLE001 - taken and reused while we looked
                continue
            rows.append({
                "task_id": spec.task_id.hex(), "name": spec.name, "state": state,
                "attempt_number": spec.attempt, "required_resources": {},
                "type": "ACTOR_TASK", "func_or_class_name": spec.name,
                "actor_id": rec.spec.actor_id.hex(),
            })
    return rows


_HANDLE_SUFFIX = _ids.ACTOR_HANDLE_INDEX.to_bytes(4, "little")


def objects(scheduler) -> list:
    """The objects in this node's store that refs hold (Ray's list_objects rows): held by
    a ref somewhere (LOCAL_REFERENCE) or only inside another object (CAPTURED_IN_OBJECT)."""
    with scheduler.lock:
        scheduler._apply_driver_refs()   # (the driver's dropped refs count first)
        held = list(scheduler.counts.items())
        inside = {oid for inner in scheduler.contains.values() for oid in inner}
    store, rows = scheduler.io.store, []
    for oid, count in held:
        if oid.endswith(_HANDLE_SUFFIX) or not store.contains(oid):
            continue   # (an actor's handle count; a return not made yet, or elsewhere)
        try:
            size = store.size_of(oid)
        except Exception:  # noqa: BLE001 - freed meanwhile
            continue
        rows.append({
            "object_id": oid.hex(), "object_size": size, "task_status": "FINISHED",
            "reference_type": "CAPTURED_IN_OBJECT" if oid in inside and count <= 1
            else "LOCAL_REFERENCE", "call_site": "disabled", "type": "DRIVER",
            "pid": os.getpid(), "ip": get_node_ip_address(),
        })
    return rows


def workers(scheduler) -> list:
    """This node's worker processes (Ray's list_workers rows)."""
    with scheduler.lock:
        infos = [(w.pid, w.kind, w.actor_id) for w in scheduler.workers.values() if w.pid]
    return [{"worker_id": f"{pid:056x}", "is_alive": True, "worker_type": "WORKER",
             "pid": pid, "ip": get_node_ip_address(),
             "actor_id": actor_id.hex() if kind == "actor" and actor_id else None}
            for pid, kind, actor_id in infos]


def named_actors(scheduler) -> list:
    """(name, namespace) of the named actors this node created that are not dead for good."""
    return scheduler.actors.named()

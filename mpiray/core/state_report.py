"""What one node tells ray.util.state about its actors and tasks (the driver gathers
every node's answer: api._every_node, mpi/roles.py ASKABLE)."""

from __future__ import annotations

import os

from mpiray import _ids
from mpiray.core import actor_manager as AM
from mpiray.core import placement
from mpiray.core import protocol as P
from mpiray.core import scheduler as S
from mpiray.core.actor_spec import recorded_slots
from mpiray.core.task_spec import TaskSpec
from mpiray.util.network import get_node_ip_address

WHOLE = S.WHOLE_ITEM   # (bytes of a queue item to copy: all of it)

# Ray's state names for ours
ACTOR_STATES = {AM.PENDING: "PENDING_CREATION", AM.STARTING: "PENDING_CREATION",
                AM.ALIVE: "ALIVE", AM.DEAD: "DEAD"}
TASK_STATES = {S.WAITING: "PENDING_ARGS_AVAIL", S.READY: "PENDING_NODE_ASSIGNMENT",
               S.INFEASIBLE: "PENDING_NODE_ASSIGNMENT", S.DISPATCHED: "RUNNING",
               S.RETRY_WAIT: "PENDING_NODE_ASSIGNMENT"}


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
                "death_cause": _death_cause(rec),
                "num_restarts": rec.restarts, "repr_name": rec.repr_name,
                "serialized_runtime_env": _serialized_env(rec.spec.creation.runtime_env),
                "placement_group_id": placement.group_of(rec.spec.resources),
                "_placed": rec.state != AM.PENDING,
            })
        return out


def _serialized_env(env):
    """Ray's serialized_runtime_env: the actor's runtime_env as JSON, or None."""
    if not env:
        return None
    import json

    return json.dumps(env, sort_keys=True, default=str)


def _death_cause(rec):
    """Ray's ActorState.death_cause: None while it lives; a constructor that raised is a
    creation_task_failure_context, any other death an actor_died_error_context (the
    error's text and facts, and why: RAY_KILL, OUT_OF_SCOPE or WORKER_DIED)."""
    cause = rec.cause
    if cause is None:
        return None
    text = str(cause)
    if getattr(cause, "actor_init_failed", False):
        return {"creation_task_failure_context": {"language": "PYTHON",
                                                  "formatted_exception_string": text}}
    spec = rec.spec
    reason = "RAY_KILL" if "ray.kill" in text else "OUT_OF_SCOPE" if rec.unreferenced \
        else "WORKER_DIED"
    ip = get_node_ip_address()
    return {"actor_died_error_context": {
        "error_message": text, "owner_ip_address": ip, "node_ip_address": ip,
        "pid": rec.pid or 0, "name": spec.name or "", "ray_namespace": spec.namespace,
        "class_name": spec.class_name, "actor_id": spec.actor_id.hex(),
        "never_started": rec.pid is None, "reason": reason}}


def _task_state(rec) -> str:
    # (one queued ahead for the next free worker waits for a CPU: as Ray's task not yet
    # given a node's resources)
    return "PENDING_NODE_ASSIGNMENT" if rec.ahead and rec.state == S.DISPATCHED \
        else TASK_STATES[rec.state]


def tasks(scheduler) -> list:
    """The tasks this node holds that have not ended (a task sent on to another node
    is that node's to report), its actors' creation tasks, and the calls of its actors:
    running (their process holds them) or waiting in their queues."""
    with scheduler.lock:
        rows = []
        running = scheduler.running_workers()
        for rec in scheduler.tasks.values():
            if rec.state not in TASK_STATES:
                continue
            worker = running.get(rec.spec.task_id)
            # (a task queued ahead that a worker has taken since is running)
            state = "RUNNING" if worker is not None else _task_state(rec)
            rows.append({
                "task_id": rec.spec.task_id.hex(), "name": rec.spec.name, "state": state,
                "attempt_number": rec.spec.attempt,
                "required_resources": dict(rec.spec.resources), "type": "NORMAL_TASK",
                "placement_group_id": placement.group_of(rec.spec.resources),
                "func_or_class_name": rec.spec.function_name or rec.spec.name, "actor_id": None,
                "parent_task_id": rec.spec.parent,
                "worker_pid": worker.pid if worker else None,
                "worker_id": _worker_id(worker) if worker else None,
                "_placed": state == "RUNNING",   # (a pending task is on no node yet)
                **_times(rec.created, rec.dispatched if state == "RUNNING" else None, None),
            })
        rows += [{
            "task_id": task_id.hex(), "name": name, "state": "FAILED" if error else "FINISHED",
            "attempt_number": attempt, "required_resources": dict(resources),
            "placement_group_id": placement.group_of(resources),
            "type": "NORMAL_TASK", "func_or_class_name": function_name or name, "actor_id": None,
            "parent_task_id": parent,
            "error_type": error[0] if error else None, "error_message": error[1] if error else None,
            **_times(*times),
        } for task_id, name, function_name, attempt, resources, error, parent, times in scheduler.ended]
        mine = [rec for rec in scheduler.actors.actors.values() if rec.host is None]
        rows += [_creation_task(rec) for rec in mine]
    for rec in mine:
        if rec.state != AM.DEAD:
            rows += _actor_calls(scheduler, rec)
    for row in rows:   # (Ray's: set on FAILED rows only; a worker's on running ones)
        for key in _UNSET_COLUMNS:
            row.setdefault(key, None)
    return rows


_UNSET_COLUMNS = ("error_type", "error_message", "worker_pid", "worker_id", "placement_group_id",
                  "creation_time_ms", "start_time_ms", "end_time_ms")


def _times(created, started, ended) -> dict:
    """Ray's creation/start/end_time_ms of a task attempt (None: not known, or not yet)."""
    return {"creation_time_ms": _ms(created), "start_time_ms": _ms(started),
            "end_time_ms": _ms(ended)}


def _ms(t):
    return None if t is None else int(t * 1000)


def _worker_id(w) -> str:
    """A worker's id as list_workers and its own get_worker_id() give it."""
    from mpiray.core import current
    from mpiray.runtime_context import worker_hex

    session = (current.info() or {}).get("session", "")
    return worker_hex(session, f"{session}-{w.slot}", w.pid)


def _creation_task(rec) -> dict:
    """An actor's creation task, as Ray lists it (Class.__init__, ACTOR_CREATION_TASK)."""
    if rec.state == AM.PENDING:
        state = "PENDING_NODE_ASSIGNMENT"
    elif rec.state == AM.STARTING:
        state = "RUNNING"
    elif rec.state == AM.DEAD and getattr(rec.cause, "actor_init_failed", False):
        state, error_type = "FAILED", "TASK_EXECUTION_EXCEPTION"
    elif rec.state == AM.DEAD and rec.pid is None:   # (killed, or failed, before it ever ran)
        state, error_type = "FAILED", "ACTOR_DIED"
    else:
        state = "FINISHED"
    spec = rec.spec.creation
    return {"task_id": spec.task_id.hex(), "name": spec.name, "state": state,
            "attempt_number": rec.restarts, "required_resources": dict(rec.spec.resources),
            "placement_group_id": placement.group_of(rec.spec.resources),
            "type": "ACTOR_CREATION_TASK", "func_or_class_name": spec.name,
            "actor_id": rec.spec.actor_id.hex(), "parent_task_id": spec.parent,
            "_placed": rec.state != AM.PENDING,
            "error_type": error_type if state == "FAILED" else None,
            "error_message": str(rec.cause) if state == "FAILED" else None}


def _actor_calls(scheduler, rec) -> list:
    """A racy look at an actor's queue (core/actor_manager.py, _running_here)."""
    q = scheduler.io.actor_queue(rec.spec.actor_id)
    if q is None:
        return []
    store, rows = scheduler.io.store, []
    held = q.held_heads(recorded_slots(rec.spec), WHOLE) if rec.state == AM.ALIVE else []
    # (a call waiting in the actor's queue waits for the calls before it, or a free
    # thread: Ray's PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY)
    for state, items in (("RUNNING", held),
                         ("PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY", q.queued_heads(WHOLE))):
        for item in items:
            try:
                spec = TaskSpec.from_bytes(P.decode_item(item, store))
            except Exception:  # noqa: BLE001 - taken and reused while we looked
                continue
            rows.append({
                "task_id": spec.task_id.hex(), "name": spec.name, "state": state,
                "attempt_number": spec.attempt, "required_resources": {},
                "type": "ACTOR_TASK",
                # (the method's, whatever name= the call was given, as Ray's)
                "func_or_class_name": f"{rec.spec.class_name}.{spec.method.partition(':')[0]}",
                "actor_id": rec.spec.actor_id.hex(), "parent_task_id": spec.parent,
                "placement_group_id": placement.group_of(rec.spec.resources),
            })
    return rows


_HANDLE_SUFFIX = _ids.ACTOR_HANDLE_INDEX.to_bytes(4, "little")
# Ray's ObjectState.task_status of an object whose task has not ended
_MAKING = {S.WAITING: "WAITING_FOR_DEPENDENCIES", S.READY: "SCHEDULED",
           S.INFEASIBLE: "SCHEDULED", S.DISPATCHED: "RUNNING"}


def objects(scheduler) -> list:
    """The objects in this node's store that refs hold (Ray's list_objects rows): held by
    a ref somewhere (LOCAL_REFERENCE) or only inside another object (CAPTURED_IN_OBJECT)."""
    with scheduler.lock:
        scheduler._apply_driver_refs()   # (the driver's dropped refs count first)
        held = list(scheduler.counts.items())
        inside = {oid for inner in scheduler.contains.values() for oid in inner}
        making = {}   # a held return of a task this node has not run yet: its state
        for oid, _ in held:
            rec = scheduler.tasks.get(oid[:_ids.TASK_ID_SIZE])
            if rec is not None and rec.state in _MAKING:
                making[oid] = "WAITING_FOR_EXECUTION" if rec.ahead else _MAKING[rec.state]
    store, rows = scheduler.io.store, []
    for oid, count in held:
        if oid.endswith(_HANDLE_SUFFIX):
            continue   # (an actor's handle count)
        status = making.get(oid)
        if status is not None and not store.contains(oid):
            size = -1   # (as Ray's: not made yet, size unknown)
        elif not store.contains(oid):
            continue   # (made elsewhere, or gone)
        else:
            status = "FINISHED"
            try:
                size = store.size_of(oid)
            except Exception:  # noqa: BLE001 - freed meanwhile
                continue
        rows.append({
            "object_id": oid.hex(), "object_size": size, "task_status": status,
            "reference_type": "CAPTURED_IN_OBJECT" if oid in inside and count <= 1
            else "LOCAL_REFERENCE", "call_site": "disabled", "type": "DRIVER",
            "pid": os.getpid(), "ip": get_node_ip_address(),
        })
    return rows


def workers(scheduler) -> list:
    """This node's worker processes, alive and ended (the last ENDED_WORKERS_KEPT), and the
    driver on its node (Ray's list_workers rows; worker_id as each process's
    get_worker_id() gives it)."""
    from mpiray.core import current
    from mpiray.runtime_context import worker_hex

    session = (current.info() or {}).get("session", "")
    with scheduler.lock:
        alive = [(w, None, None, None) for w in scheduler.workers.values() if w.pid]
        ended = list(scheduler.ended_workers)
    ip = get_node_ip_address()
    rows = [{"worker_id": _worker_id(w),
             "is_alive": end is None, "worker_type": "WORKER", "pid": w.pid, "ip": ip,
             "actor_id": w.actor_id.hex() if w.kind == "actor" and w.actor_id else None,
             "exit_type": exit_type, "exit_detail": detail,
             "start_time_ms": w.started_ms, "end_time_ms": end or 0}   # (Ray's 0: alive)
            for w, end, exit_type, detail in ended + alive]
    runtime = current.runtime()
    if runtime is not None and runtime.is_driver:
        rows.insert(0, {"worker_id": worker_hex(session, "driver", os.getpid()), "is_alive": True,
                        "worker_type": "DRIVER", "pid": os.getpid(), "ip": ip, "actor_id": None,
                        "exit_type": None, "exit_detail": None,
                        "start_time_ms": _process_start_ms(os.getpid()), "end_time_ms": 0})
    return rows


def _process_start_ms(pid: int):
    """When the process started (Linux's /proc), in ms since the epoch; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return int((boot + ticks / os.sysconf("SC_CLK_TCK")) * 1000)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def exit_of(worker, status: str, clean: bool, actor, why=None, oom=None) -> tuple:
    """(Ray's exit_type, exit_detail) of a worker process that ended with status (the
    zygote's words: "exit code 4", "killed by signal 9 (SIGKILL)"): clean, it ended by
    itself; actor, the record of the actor it ran; why, for a task worker the scheduler
    ended: "cancel" (ray.cancel(force=True)) or "group" (its placement group went);
    oom: the memory monitor killed it, and why."""
    if oom:
        return "NODE_OUT_OF_MEMORY", oom
    cause = getattr(actor, "cause", None)
    text = str(cause) if cause is not None else ""
    if getattr(cause, "actor_init_failed", False):
        return "USER_ERROR", text
    if why == "cancel":
        return "INTENDED_USER_EXIT", "The worker was killed by ray.cancel(force=True) of its task."
    if why == "group" or "placement group was removed" in text:
        return "INTENDED_SYSTEM_EXIT", "The worker was destroyed because its placement group was removed."
    if worker.kind != "actor":
        if clean:
            return "INTENDED_SYSTEM_EXIT", ("The worker exited because it was idle (or had run "
                                            "its function's max_calls tasks).")
        return "SYSTEM_ERROR", _unexpected(status)
    if "ray.kill" in text:   # (however its process ended)
        return "INTENDED_SYSTEM_EXIT", "The actor was killed by ray.kill."
    if clean:
        return AM.EXITS.get(getattr(actor, "exit_how", None),
                            ("INTENDED_USER_EXIT", "The actor exited."))
    return "SYSTEM_ERROR", _unexpected(status)


def _unexpected(status) -> str:
    return (f"The worker died unexpectedly ({status}). Possible causes: it was killed with "
            f"SIGKILL (by the OOM killer when memory ran short, or by a user), it crashed "
            f"(SIGSEGV and the like), or it called os._exit or sys.exit with a nonzero code.")


def named_actors(scheduler) -> list:
    """(name, namespace) of the named actors this node created that are not dead for good."""
    return scheduler.actors.named()

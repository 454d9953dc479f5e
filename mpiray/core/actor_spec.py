"""ActorSpec: what a node needs to place, start and restart one actor."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mpiray import _ids


@dataclass
class ActorSpec:
    actor_id: bytes
    class_name: str
    creation: object                     # TaskSpec of kind ACTOR_CREATION
    placement: dict                      # resources needed to place it (Ray: 1 CPU)
    resources: dict                      # resources it holds while alive
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1
    is_async: bool = False
    name: str = ""
    namespace: str = ""
    detached: bool = False
    methods: dict = field(default_factory=dict)   # method name -> actor._method_table entry
    # Ray's concurrency groups: group -> how many of its calls may run at once, and
    # method -> its group (the others are in the default group, of max_concurrency)
    concurrency_groups: dict = field(default_factory=dict)
    method_groups: dict = field(default_factory=dict)
    owner_pid: int = 0    # the process that created it: a non-detached actor dies with it
    out_of_order: bool = False   # allow_out_of_order_execution=True


TERMINATE_METHOD = "__ray_terminate__"
# Every actor has these, as in Ray: __ray_ready__() answers once the actor is up (its
# constructor's error otherwise), __ray_call__(fn, *args) runs fn(the actor, *args) in it.
BUILT_IN_METHODS = (TERMINATE_METHOD, "__ray_ready__", "__ray_call__")

MAX_RECORDED = 16384  # in-flight calls recorded for recovery (queue consumer slots): the
# most max_concurrency can be (Ray's own tests run async actors at 8000)
GROUPS_RECORDED = 256  # the same for an actor with concurrency groups (the queue's limit):
# a call waiting for its group's turn holds a slot too, so one busy group must not take
# them all before a call of another group is even read (calls come off one FIFO queue)


def recorded_slots(aspec) -> int:
    """How many calls of this actor may be in flight (each in a recorded queue slot, so
    that the scheduler recovers them if its process dies)."""
    if aspec.concurrency_groups:
        return GROUPS_RECORDED
    return min(max(1, aspec.max_concurrency), MAX_RECORDED)


def runs_in_order(aspec) -> bool:
    """One caller's calls run in the order made (Ray's sequential actors); an async or
    threaded actor, or one made with allow_out_of_order_execution=True, runs each call
    when its arguments are ready."""
    return not aspec.is_async and aspec.max_concurrency <= 1 and \
        not aspec.concurrency_groups and not aspec.out_of_order


def queue_consumers(aspec) -> int:
    """The consumer slots the actor's queue is made with: one per recorded call."""
    from mpiray._native.queue import DEFAULT_CONSUMERS

    return max(DEFAULT_CONSUMERS, recorded_slots(aspec))


def name_key(name: str, namespace: str) -> bytes:
    """The store id under which a named actor is registered (create is atomic)."""
    return hashlib.sha1(f"actor-name\0{namespace}\0{name}".encode()).digest()


def spec_key(actor_id: bytes) -> bytes:
    return _ids.object_id(actor_id, _ids.ACTOR_SPEC_INDEX)


def death_key(actor_id: bytes) -> bytes:
    return _ids.object_id(actor_id, _ids.ACTOR_DEATH_INDEX)


def note_attempt(store, task_id: bytes, attempt: int) -> None:
    """An actor call's attempts so far (retries on exceptions run in the actor's process,
    where a crash would lose their count): read back by taken_attempt."""
    key = _ids.object_id(task_id, _ids.ATTEMPT_INDEX)
    try:
        store.delete(key)
    except KeyError:
        pass
    store.put(key, attempt.to_bytes(4, "little"))


def taken_attempt(store, task_id: bytes, attempt: int) -> int:
    """The call's attempts so far: its spec's, or more if it was retried on exceptions
    (the note goes)."""
    key = _ids.object_id(task_id, _ids.ATTEMPT_INDEX)
    buf = store.get(key, 0)
    if buf is None:
        return attempt
    noted = int.from_bytes(bytes(buf), "little")
    del buf
    try:
        store.delete(key)
    except KeyError:
        pass
    return max(attempt, noted)


def restarting_key(actor_id: bytes) -> bytes:
    return _ids.object_id(actor_id, _ids.ACTOR_RESTARTING_INDEX)


def fails_fast(aspec) -> bool:
    """Its calls are not retried after a crash (max_task_retries=0, Ray's default) though
    it restarts: as in Ray, one made while a restart is overdue fails at once
    (ActorUnavailableError) instead of waiting for the new instance (actor_manager.py,
    RESTART_GRACE_S)."""
    return aspec.max_restarts != 0 and aspec.max_task_retries == 0


def handle_key(actor_id: bytes) -> bytes:
    return _ids.object_id(actor_id, _ids.ACTOR_HANDLE_INDEX)

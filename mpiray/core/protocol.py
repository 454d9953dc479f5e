"""What processes of one node say to each other, both halves side by side.

    worker/actor process ──events (one pickled list per push)──► node inbox ──► Scheduler
    any process ──TaskSpec bytes──► shared task queue ──► task worker
    any process ──TaskSpec bytes──► actor's queue ──► actor process

A worker batches its events in an outbox (ref counts, seals, completions) and pushes
them as one item; an item too big for a queue slot is put in the store and the queue
carries a pointer to it (``encode_item`` / ``decode_item``).
"""

from __future__ import annotations

import pickle

# Event codes (first element of each event tuple).
INCREF = 1          # (INCREF, oid)
DECREF = 2          # (DECREF, oid)
SEALED = 3          # (SEALED, oid, contained_oids)              a put by a worker
TASK_DONE = 4       # (TASK_DONE, task_id, slot, sealed, release, retry, failed, started: time.time())
SUBMIT = 5          # (SUBMIT, spec)
BLOCKED = 6         # (BLOCKED, task_id)         the task waits in get()
UNBLOCKED = 7       # (UNBLOCKED, task_id)
CREATE_ACTOR = 8    # (CREATE_ACTOR, actor_spec)
ACTOR_READY = 9     # (ACTOR_READY, actor_id, slot, repr_name)
ACTOR_FAILED = 10   # (ACTOR_FAILED, actor_id, error_blob)          the constructor raised
ACTOR_EXIT = 11     # (ACTOR_EXIT, actor_id, slot)                  exit_actor() / terminate
ACTOR_DONE = 12     # (ACTOR_DONE, sealed, release, task_id, driver_failed)
KILL_ACTOR = 13     # (KILL_ACTOR, actor_id, no_restart[, reply, why])
CANCEL = 14         # (CANCEL, task_id, force, recursive[, child: of a cancelled task, if still there])
TIMINGS = 31        # (TIMINGS, blob)   a worker's timed tasks and calls (core/timeline.py)
FROM = 36           # (FROM, slot)       first of every worker's batch: INCREF/DECREF that
                    #                    follow are that worker's own holds
HOLD = 37           # (HOLD, [oid, ...])   holds that are not the sender's own (they outlive it):
UNHOLD = 38         # (UNHOLD, [oid, ...]) an actor call's arguments, an out-of-band pickled ref
NODE_QUERY = 39     # (NODE_QUERY, question, reply_oid)   nodes() & co from a worker (core/cluster_info.py)
FREE_NOW = 40       # (FREE_NOW, [oid, ...])   free(): sealed objects replaced by ObjectFreedError
TASK_BACK = 41      # (TASK_BACK, task_id, node)   a task we sent there waited there: place it again

# Queue items that are not TaskSpecs.
ITEM_IN_STORE = b"@"     # b"@" + oid: the real item is a stored object
TERMINATE = b"T"         # an actor's last item (exit once every earlier call is done); a task worker's retirement


def encode_item(payload: bytes, max_payload: int, store, new_oid) -> bytes:
    """payload itself if it fits a queue slot, else a pointer to a stored copy."""
    if len(payload) <= max_payload:
        return payload
    oid = new_oid()
    store.put(oid, payload)
    return ITEM_IN_STORE + oid


def decode_item(item: bytes, store) -> bytes:
    """The payload an item carries. A stored payload stays in the store until
    ``release_item``, so an item recovered from a dead consumer can still be read."""
    if is_pointer(item):
        buf = store.get(item[1:], 0)
        data = bytes(buf)
        del buf
        return data
    return item


def is_pointer(item: bytes) -> bool:
    return item[:1] == ITEM_IN_STORE and len(item) == 21


def release_item(item: bytes, store) -> None:
    if is_pointer(item):
        try:
            store.delete(item[1:])
        except KeyError:
            pass


def dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=5)


loads = pickle.loads

# Sent by the driver's monitor thread, which reads the zygote's reports.
WORKER_STARTED = 15  # (WORKER_STARTED, slot, pid, id prefix: core/zygote.py)
WORKER_DIED = 16     # (WORKER_DIED, slot, pid, status)

# Across nodes (MPI mode): what the node's MPI thread hands its scheduler, and FETCH,
# which any process sends when it waits for an object its node may lack.
REMOTE_TASK = 17       # (REMOTE_TASK, spec, origin_node)
REMOTE_TASK_DONE = 18  # (REMOTE_TASK_DONE, task_id)        the node we sent it to is done
BORROW = 19            # (BORROW, oid)        another node holds refs to an object owned here
UNBORROW = 20          # (UNBORROW, oid)
FREE = 21              # (FREE, oid)          the owner of a return we hold dropped it
FETCH = 22             # (FETCH, [oid, ...])
ARRIVED = 23           # (ARRIVED, oid, contained, source node)   a copy from another node was sealed here
REMOTE_CALL = 24       # (REMOTE_CALL, spec)  a process here calls an actor of another node
ACTOR_CALL_IN = 25     # (ACTOR_CALL_IN, actor_id, payload, from_node)
CALL_DONE = 26         # (CALL_DONE, task_id)         a call we passed on has ended
REMOTE_ACTOR = 27      # (REMOTE_ACTOR, actor_spec, origin_node)   placed here by its creator
ACTOR_DEAD = 28        # (ACTOR_DEAD, actor_id, cause)             dead on the node it ran on
NAME_OP = 29           # (NAME_OP, op, key, value, reply_oid)   to node 0's name registry
TICK = 30              # (TICK,)      time passed: delayed work that is due (MPI thread)
PG_OP = 32             # (PG_OP, op, args, reply_oid)   to the placement group table (node 0's)
PG_MSG = 33            # (PG_MSG, kind, args)   placement groups between nodes (core/placement.py)
CALL_CANCEL = 34       # (CALL_CANCEL, task_id, recursive)  another node cancelled an actor call: mark it here
ITEM_HELD = 35         # (ITEM_HELD, oid)   a generator item pushed from here arrived at its caller's node
GLOBAL_GC = 42         # (GLOBAL_GC,)   the store is filling: every process collects its garbage
TASK_LENT = 43         # (TASK_LENT, task_id, lent)   a task we sent there blocked in get() (lent
                       #   its CPU there: True) or goes on (False)
LOCATE = 44            # (LOCATE, [oid, ...], reply_oid)   wait(fetch_local=False): reply with
                       #   those sealed on any node once one is (core/locate.py)
LOCATE_DROP = 45       # (LOCATE_DROP, reply_oid)   that wait timed out
REMOTE_LOCATE = 46     # (REMOTE_LOCATE, oid, node)   node waits for oid (owned here) to be sealed
LOCATED = 47           # (LOCATED, oid)   its owner says oid is sealed on some node

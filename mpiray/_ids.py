"""Binary ids: task, object and actor ids, made without any coordination.

    task id   (16 B) = node (2 B) | process nonce (6 B) | counter (8 B)
    object id (20 B) = task id | index (4 B, little endian)

Return i of a task is object (task id, i + 1), so a caller holds its refs before the
task runs; a put is index 0 of a fresh id. A generator task's id has STREAM_BIT set in
its last byte: item i it yields is (task id, i + 1) too, and its one declared return is
(task id, STREAM_END_INDEX), so any node tells a stream's items from their id alone.
A few reserved indexes name side objects that processes use to talk through the store
(a cancel mark, an actor's death note).
The node that made an id owns what it names (``node_of``): across nodes, refcounts,
fetches and frees of an object go to its owner.
"""

import itertools
import os
import struct
import threading

TASK_ID_SIZE = 16
OBJECT_ID_SIZE = 20

CANCEL_INDEX = 0xFFFFFFF0        # present in the store => the task was cancelled
FORCE_CANCEL_INDEX = 0xFFFFFFF1
CANCEL_RECURSIVE = b"r"          # the cancel mark's value when the task's children go too
ACTOR_DEATH_INDEX = 0xFFFFFFF2   # sealed when an actor is dead for good: its cause
ACTOR_SPEC_INDEX = 0xFFFFFFF3    # an actor's creation spec, read by each incarnation
ACTOR_HANDLE_INDEX = 0xFFFFFFF4  # refcount key for an actor's handles
QUEUE_ITEM_INDEX = 0xFFFFFFF5    # a queue message too big for its slot, held in the store
ACTOR_RESTARTING_INDEX = 0xFFFFFFF6  # present while an actor restarts (its calls may fail fast)
ATTEMPT_INDEX = 0xFFFFFFF7       # an actor call's attempts so far, once retried on an exception
STREAM_END_INDEX = 0xFFFFFFEF    # a generator task's end: the refs of every item it made
STREAM_BIT = 0x80                # in a task id's last byte: a generator task
CALL_BIT = 0x40                  # in a task id's last byte: an actor call

_lock = threading.Lock()
_node = b"\0\0"
_nonce = _node + os.urandom(6)
_counter = itertools.count(1)
_pid = os.getpid()
_INDEX = struct.Struct("<I")
_END = _INDEX.pack(STREAM_END_INDEX)


def _fresh_nonce_after_fork():
    global _nonce, _counter, _pid
    _nonce, _counter, _pid = _node + os.urandom(6), itertools.count(1), os.getpid()


def new_nonce(node_index: int) -> bytes:
    """A process prefix for node ``node_index``: every id a process makes starts with it."""
    return node_index.to_bytes(2, "little") + os.urandom(6)


def set_node(index: int, nonce: bytes = None) -> None:
    """Ids made from now on in this process are owned by node ``index`` (and start with
    ``nonce``, one of new_nonce(index), when the process that forked this one chose it:
    the node then knows what a dead worker made)."""
    global _node, _nonce, _counter
    _node = index.to_bytes(2, "little")
    _nonce, _counter = nonce or new_nonce(index), itertools.count(1)


def this_node() -> int:
    return _node[0] | (_node[1] << 8)


def node_of(id_bytes: bytes) -> int:
    """The node that made a task, object or actor id (its owner)."""
    return id_bytes[0] | (id_bytes[1] << 8)


os.register_at_fork(after_in_child=_fresh_nonce_after_fork)


def new_id() -> bytes:
    """A 16-byte id unique across processes and hosts (random nonce, local counter)."""
    return _nonce + next(_counter).to_bytes(8, "little")


def object_id(base: bytes, index: int) -> bytes:
    return base + _INDEX.pack(index)


def new_stream_id() -> bytes:
    """A task id for a generator task (see STREAM_BIT)."""
    tid = new_id()
    return tid[:-1] + bytes((tid[-1] | STREAM_BIT,))


def new_call_id(stream: bool) -> bytes:
    """A task id for an actor call (see CALL_BIT; and STREAM_BIT for a generator method)."""
    tid = new_id()
    return tid[:-1] + bytes((tid[-1] | CALL_BIT | (STREAM_BIT if stream else 0),))


def is_actor_call(oid: bytes) -> bool:
    return bool(oid[TASK_ID_SIZE - 1] & CALL_BIT)


def stream_end(task_id: bytes) -> bytes:
    return task_id + _END


def is_stream_item(oid: bytes) -> bool:
    """oid is an item yielded by a generator task (not its end, not a put)."""
    return (oid[TASK_ID_SIZE - 1] & STREAM_BIT) != 0 and len(oid) == OBJECT_ID_SIZE \
        and 0 < _INDEX.unpack_from(oid, TASK_ID_SIZE)[0] < STREAM_END_INDEX


def index_of(oid: bytes) -> int:
    return _INDEX.unpack_from(oid, TASK_ID_SIZE)[0]


def is_stream_end(oid: bytes) -> bool:
    return oid[TASK_ID_SIZE:] == _END


def return_ids(task_id: bytes, num_returns: int) -> list:
    return [task_id + _INDEX.pack(i + 1) for i in range(num_returns)]


def task_of(oid: bytes) -> bytes:
    return oid[:TASK_ID_SIZE]


def new_put_id() -> bytes:
    return new_id() + b"\0\0\0\0"


def is_put(oid: bytes) -> bool:
    return oid[TASK_ID_SIZE:] == b"\0\0\0\0"


def new_item_id() -> bytes:
    """The store id of a queue message too big for its queue slot (core/protocol.py)."""
    return new_id() + _INDEX.pack(QUEUE_ITEM_INDEX)


def new_node_id(index: int) -> str:
    """A node's id: 28 bytes in hex, as Ray's NodeID. It starts with the node's index and
    ends with a check of the rest, so node_index_of() tells one of ours from any other id
    (Ray's NodeID.from_random(), say) without asking anyone."""
    import hashlib
    import secrets

    body = f"{index:04x}" + secrets.token_hex(24)
    return body + hashlib.sha1(body.encode()).hexdigest()[:4]


def node_index_of(node_id: str):
    """The index of the node new_node_id() gave this id, or None if it is not one."""
    import hashlib

    if len(node_id) != 56 or hashlib.sha1(node_id[:52].encode()).hexdigest()[:4] != node_id[52:]:
        return None
    try:
        return int(node_id[:4], 16)
    except ValueError:
        return None

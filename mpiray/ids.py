"""Ray's id types (ray.TaskID, ray.NodeID, ...): the bytes of an id, with Ray's methods.

mpiray's ids are its own sizes (a task id is 16 bytes, an object id 20: see _ids); these
classes wrap them where Ray hands out an id object instead of a hex string
(ObjectRef.task_id(), the runtime context's deprecated properties), so code that calls
.hex(), .binary(), .is_nil() or compares them works unchanged.
"""

from __future__ import annotations


class BaseID:
    __slots__ = ("_bytes",)

    def __init__(self, id_bytes: bytes):
        if not isinstance(id_bytes, bytes):
            raise TypeError(f"{type(self).__name__} needs bytes, got {type(id_bytes).__name__}")
        self._bytes = id_bytes

    @classmethod
    def from_binary(cls, id_bytes: bytes):
        return cls(id_bytes)

    @classmethod
    def from_hex(cls, hex_id: str):
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def nil(cls):
        return cls(b"\xff" * cls.size())

    @classmethod
    def from_random(cls):
        import os

        return cls(os.urandom(cls.size()))

    @classmethod
    def size(cls) -> int:
        return cls._SIZE

    def binary(self) -> bytes:
        return self._bytes

    def hex(self) -> str:
        return self._bytes.hex()

    def is_nil(self) -> bool:
        return all(b == 0xFF for b in self._bytes)

    def __eq__(self, other):
        return type(other) is type(self) and other._bytes == self._bytes

    def __hash__(self):
        return hash((type(self).__name__, self._bytes))

    def __repr__(self):
        return f"{type(self).__name__}({self.hex()})"

    def __reduce__(self):
        return (type(self), (self._bytes,))


def _current_job_id():
    """The running job's id (one job per runtime here: every id belongs to it)."""
    from mpiray.runtime_context import get_runtime_context

    return of_hex(JobID, get_runtime_context().get_job_id())


class TaskID(BaseID):
    __slots__ = ()
    _SIZE = 16

    def job_id(self):
        return _current_job_id()


class ActorID(BaseID):
    __slots__ = ()
    _SIZE = 16

    @property
    def job_id(self):   # (a property on Ray's ActorID, a method on its TaskID)
        return _current_job_id()


class NodeID(BaseID):
    __slots__ = ()
    _SIZE = 28


class JobID(BaseID):
    __slots__ = ()
    _SIZE = 4


class WorkerID(BaseID):
    __slots__ = ()
    _SIZE = 16


class PlacementGroupID(BaseID):
    __slots__ = ()
    _SIZE = 16


class UniqueID(BaseID):
    """Ray's generic 28-byte id (UniqueID.from_random() for an id of one's own)."""
    __slots__ = ()
    _SIZE = 28


class ActorClassID(UniqueID):
    __slots__ = ()


class FunctionID(UniqueID):
    __slots__ = ()


def of_hex(cls, hex_id):
    """cls(hex_id's bytes), or None for None (no task, no actor); ids that are not hex
    (the driver's worker id) are kept as their UTF-8 bytes."""
    if hex_id is None:
        return None
    try:
        return cls(bytes.fromhex(hex_id))
    except ValueError:
        return cls(hex_id.encode())

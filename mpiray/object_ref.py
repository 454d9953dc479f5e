"""ObjectRef: a handle on an object in the store, counted while it lives.

Creating a ref adds to its process's local count and dropping it subtracts
(``mpiray.core.refcount``); pickling a ref records it in the serialization context so
the container (a stored object, a task's arguments) holds it too.
"""

from __future__ import annotations

import types

from mpiray import _ids
from mpiray.core import refcount, serialization_context
from mpiray.ids import TaskID

_ID_SIZE = _ids.OBJECT_ID_SIZE
_add_local = refcount.add_local        # (bound once: a ref is made per put and per call)
_remove_local = refcount.remove_local


class ObjectRef:
    __slots__ = ("_id", "_counted", "__weakref__")

    # ObjectRef[int] in annotations, as Ray's generic ObjectRef
    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, binary: bytes, _counted: bool = True):
        self._counted = False   # (__del__ runs on a ref whose id was refused too)
        if type(binary) is not bytes or len(binary) != _ID_SIZE:
            raise ValueError(f"ID string needs to have length {_ID_SIZE} (an ObjectRef id is "
                             f"{_ID_SIZE} bytes), got {binary!r}")
        self._id = binary
        self._counted = _counted
        if _counted:
            _add_local(binary)

    def __del__(self):
        if self._counted:
            try:
                _remove_local(self._id)
            except Exception:  # interpreter shutdown: nothing left to tell
                pass

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    @classmethod
    def from_binary(cls, binary: bytes) -> "ObjectRef":
        return cls(binary)

    @classmethod
    def from_hex(cls, hex_id: str) -> "ObjectRef":
        return cls(bytes.fromhex(hex_id))

    @classmethod
    def nil(cls) -> "ObjectRef":
        """The ref that names no object (all-zero id), as Ray's."""
        return cls(bytes(_ID_SIZE), _counted=False)

    @classmethod
    def from_random(cls) -> "ObjectRef":
        """A ref to a fresh id that names no object yet (as Ray's: for tests and ids)."""
        return cls(_ids.new_put_id(), _counted=False)

    def is_nil(self) -> bool:
        return self._id == bytes(_ID_SIZE)

    def job_id(self):
        """The job this object belongs to (the driver's: one job per runtime here)."""
        from mpiray.ids import _current_job_id

        return _current_job_id()

    def task_id(self):
        """The TaskID of the task that made this object (a put's: the putting task's)."""
        return TaskID(self._id[: _ids.TASK_ID_SIZE])

    def __eq__(self, other):
        return type(other) is ObjectRef and other._id == self._id

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        serialization_context.record(self._id)
        return (ObjectRef, (self._id,))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def future(self):
        """A concurrent.futures.Future resolved with the object's value."""
        from mpiray.core.futures import future_of

        return future_of(self)

    def _on_completed(self, py_callback):
        """Ray's: py_callback(value) once the object is ready, on the process's waiter
        thread; the value is the error (an exception object) if the task failed."""
        def done(future):
            error = future.exception()
            py_callback(error if error is not None else future.result())

        self.future().add_done_callback(done)

    def as_future(self):
        """An asyncio.Future of this object's value, on the running (or current) loop."""
        import asyncio  # (here, not at the top: `import mpiray` does without it)

        return asyncio.wrap_future(self.future())

    def __await__(self):
        import asyncio

        return asyncio.wrap_future(self.future()).__await__()

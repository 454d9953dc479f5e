"""Generator tasks: the caller's side of a task or actor method that yields.

    worker: for value in fn(): ──serialize──► item i = (task id, i + 1) in the store
            │                                  (sealed as it is made; across nodes pushed
            │                                   to the caller's node at once)
            └─ the generator ends ──► end = (task id, STREAM_END_INDEX): every item's ref
    caller: ObjectRefGenerator ──next()──► waits for item i, or for the end
            ──► ObjectRef(item i) │ the end's error │ StopIteration

Until its end is sealed, a stream's items are held by the scheduler for the stream;
from then on the end object holds them, and each item's own refs. An item the caller
took goes when its refs do (as in Ray); the items nobody took go when the generator
(which holds the end) is dropped, and so do the items of a task that died half-way
(Scheduler._stream_over).
"""

from __future__ import annotations

import collections.abc
import types


from mpiray import _ids
from mpiray.object_ref import ObjectRef



class DynamicObjectRefGenerator:
    """The value of a num_returns="dynamic" task (and the end of every stream): the
    refs of what the generator yielded, in order."""

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __repr__(self):
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"


class StreamEnd:
    """The value of a streaming task's end: it tells how many items there are; `get` of
    `gen.completed()` gives it. It does not hold the items (its ids are not recorded as
    contained): the node keeps an item no ref holds until the stream is over (its end
    freed: scheduler._stream_item / _stream_over), and one the caller took goes with its
    refs, as in Ray, while the generator lives on. It makes no ObjectRef when read: a
    ref made and dropped there would free an item the generator has not handed out."""

    def __init__(self, refs=(), ids=None):
        self._ids = [r.binary() for r in refs] if ids is None else list(ids)

    def __len__(self):
        return len(self._ids)

    def __reduce__(self):
        return (StreamEnd, ((), self._ids))

    def __repr__(self):
        return f"StreamEnd({len(self._ids)} items)"


class ObjectRefGenerator:
    """What calling a generator task returns: iterate it (``for ref in gen``, ``async
    for``, ``next(gen)``) for one ObjectRef per value yielded, as soon as each is made.
    An exception in the generator comes as a ref holding it, after the values yielded
    before it. Not thread-safe, and not to be passed to other tasks (as in Ray)."""

    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, end_ref: ObjectRef):
        self._end = end_ref
        self._task_id = end_ref.binary()[: _ids.TASK_ID_SIZE]
        self._index = 0          # items handed out so far
        self._count = None       # how many items the task made, once its end is read
        self._failed = False     # the task itself failed: its end holds the error
        self._finished = False   # everything handed out (StopIteration from now on)

    # ------------------------------------------------------------ iteration
    def __iter__(self):
        return self

    def __next__(self) -> ObjectRef:
        ref = self._next(None)
        if ref is None:
            raise StopIteration
        return ref

    def _next_sync(self, timeout_s=None) -> ObjectRef:
        """Ray's: the next ref, or a nil ref when none is ready within timeout_s (None:
        wait); StopIteration once everything was handed out."""
        from mpiray.exceptions import GetTimeoutError

        try:
            ref = self._next(timeout_s)
        except GetTimeoutError:
            return ObjectRef.nil()
        if ref is None:
            raise StopIteration
        return ref

    async def _next_async(self, timeout_s=None) -> ObjectRef:
        """_next_sync for an event loop: the wait does not block the loop."""
        import asyncio

        try:
            return await asyncio.wait_for(self.__anext__(), timeout_s)
        except asyncio.TimeoutError:
            return ObjectRef.nil()

    @property
    def _generator_ref(self) -> ObjectRef:
        """Ray's name for the end's ref (completed())."""
        return self._end

    # Ray's ObjectRefGenerator is a collections.abc.Generator whose other methods are
    # not implemented: the task runs elsewhere, nothing can be sent into it.
    def send(self, value):
        raise NotImplementedError("ObjectRefGenerator does not support send()")

    def throw(self, *args):
        raise NotImplementedError("ObjectRefGenerator does not support throw()")

    def close(self):
        raise NotImplementedError("ObjectRefGenerator does not support close()")

    async def asend(self, value):
        raise NotImplementedError("ObjectRefGenerator does not support asend()")

    async def athrow(self, *args):
        raise NotImplementedError("ObjectRefGenerator does not support athrow()")

    async def aclose(self):
        raise NotImplementedError("ObjectRefGenerator does not support aclose()")

    def __aiter__(self):
        return self

    async def __anext__(self) -> ObjectRef:
        # The process's waiter thread (core/futures.py) tells when the next item or the
        # end is here, so that the event loop keeps running; the item is taken here, so a
        # cancelled await (wait_for) loses none.
        import asyncio  # (here, not at the top: `import mpiray` does without it)

        from mpiray.api import _runtime
        from mpiray.core.futures import when_any
        from mpiray.exceptions import RaySystemError

        while not self.next_ready():
            if self.is_finished():
                raise StopAsyncIteration
            end = self._end.binary()
            # once the end is here, only the item (on its way from another node) is awaited
            ids = [self._item_id()] if _runtime().store.contains(end) else [self._item_id(), end]
            if await asyncio.wrap_future(when_any(ids)) is None:
                raise RaySystemError("the runtime was shut down during the iteration")
        ref = self._next(0)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _item_id(self):
        return _ids.object_id(self._task_id, self._index + 1)

    def _next(self, timeout):
        """The next item's ref, the end's ref if the task failed, or None once all is
        handed out. timeout (seconds, None: forever) only bounds the first wait."""
        from mpiray.api import _runtime
        from mpiray.exceptions import GetTimeoutError

        if self._finished:
            return None
        rt = _runtime()
        item, end = self._item_id(), self._end.binary()
        if self._count is None:
            ready = rt.wait(item + end, 1, timeout)
            if not ready[0] and not ready[1]:
                raise GetTimeoutError(f"no item of the generator task {self._task_id.hex()} "
                                      f"within {timeout} s")
            if not ready[0]:
                self._read_end(rt)
        if self._failed:
            if rt.store.contains(item):  # (made before the failure)
                self._index += 1
                return ObjectRef(item)
            self._finished = True
            return self._end
        if self._count is not None and self._index >= self._count:
            self._finished = True
            return None
        # Ready, or made before the end: across nodes an item may still be on its way.
        if not rt.store.contains(item):
            rt.wait(item, 1, None)
        self._index += 1
        return ObjectRef(item)

    def _read_end(self, rt):
        from mpiray.serialization import deserialize

        buf = rt.store.get(self._end.binary(), 0)
        value, is_error = deserialize(buf)
        del buf
        if is_error:
            self._failed = True
        else:
            self._count = len(value)

    # ------------------------------------------------------------ Ray's other methods
    def next_ready(self) -> bool:
        """next() would return at once with an item (or the task's error); False once it
        would raise StopIteration, as Ray's (is_finished() tells that apart)."""
        if self._finished:
            return False
        from mpiray.api import _runtime

        rt = _runtime()
        if rt.store.contains(self._item_id()):
            return True
        if not rt.store.contains(self._end.binary()):
            return False
        if self._count is None and not self._failed:
            self._read_end(rt)
        # ended: the failure is next, or no item is left (StopIteration), or the next is
        # still on its way from another node
        return self._failed

    def _would_not_block(self) -> bool:
        """ray.wait's readiness: next() returns (an item, the error) or raises
        StopIteration at once."""
        return self.next_ready() or self.is_finished()

    def is_finished(self) -> bool:
        """The task has ended and every item was handed out."""
        if self._finished:
            return True
        from mpiray.api import _runtime

        rt = _runtime()
        if self._count is None and not self._failed and rt.store.contains(self._end.binary()):
            self._read_end(rt)
        return self._count is not None and self._index >= self._count

    def completed(self) -> ObjectRef:
        """A ref that is ready once the task has ended (its value: a StreamEnd, which
        says how many items there were); getting it raises the task's error if the task
        itself failed."""
        return self._end

    def task_id(self):
        return self._task_id.hex()

    def _wait_ids(self):
        """(next item id, end id): the generator is ready for wait() once either is."""
        return self._item_id(), self._end.binary()

    def __reduce__(self):
        raise TypeError("an ObjectRefGenerator cannot be passed to another task or actor, "
                        "or stored (as in Ray): pass the ObjectRefs it gives instead")

    def __repr__(self):
        return f"ObjectRefGenerator(task {self._task_id.hex()}, {self._index} taken)"


collections.abc.Generator.register(ObjectRefGenerator)   # (as Ray's, a Generator)

__all__ = ["DynamicObjectRefGenerator", "ObjectRefGenerator", "StreamEnd"]

"""Each process's count of the ObjectRefs it holds, reported on 0<->1 transitions.

    ObjectRef() / __del__ ──► add_local / remove_local ──► sink.incref / sink.decref
                                                           (driver: the scheduler's
                                                            queue of ref events;
                                                            worker: its outbox)

``__del__`` may run inside the garbage collector on any thread, so sinks only append
to a thread-safe buffer; the owner of the buffer applies the events in order. It may
also run on this very thread while the lock is held: a sink call allocates, and an
allocation can start a collection that drops refs held by garbage cycles (an exception's
traceback, say). So the lock is reentrant, and the count changes before the sink hears
of it, so that a nested call sees it done.
"""

import threading

_counts: dict = {}
_lock = threading.RLock()
_sink = None


def set_sink(sink) -> None:
    """sink has incref(oid) and decref(oid); None stops reporting (no runtime)."""
    global _sink
    with _lock:
        _sink = sink
        _counts.clear()


def add_local(oid: bytes) -> None:
    with _lock:
        n = _counts.get(oid)
        if n is None:
            _counts[oid] = 1
            if _sink is not None:
                _sink.incref(oid)
        else:
            _counts[oid] = n + 1


def remove_local(oid: bytes) -> None:
    with _lock:
        n = _counts.get(oid, 0)
        if n > 1:
            _counts[oid] = n - 1
        elif n == 1:
            del _counts[oid]
            if _sink is not None:
                _sink.decref(oid)


def pin(oid: bytes) -> None:
    """oid is held for the rest of the job (Ray pins a ref pickled out of band): a hold
    that is not this process's own, so the process's end does not drop it."""
    with _lock:
        if _sink is not None:
            _sink.pin(oid)


def held(oid: bytes) -> int:
    return _counts.get(oid, 0)

"""Each process's count of the ObjectRefs it holds, reported on 0<->1 transitions.

    ObjectRef() / __del__ ──► add_local / remove_local ──► sink.incref / sink.decref
                                                           (driver: the scheduler's
                                                            queue of ref events;
                                                            worker: its outbox)

``__del__`` may run inside the garbage collector on any thread, so sinks only append
to a thread-safe buffer; the owner of the buffer applies the events in order.
"""

import threading

_counts: dict = {}
_lock = threading.Lock()
_sink = None


def set_sink(sink) -> None:
    """sink has incref(oid) and decref(oid); None stops reporting (no runtime)."""
    global _sink
    with _lock:
        _sink = sink
        _counts.clear()


def add_local(oid: bytes) -> None:
    with _lock:
        n = _counts.get(oid, 0)
        _counts[oid] = n + 1
        if n == 0 and _sink is not None:
            _sink.incref(oid)


def remove_local(oid: bytes) -> None:
    with _lock:
        n = _counts.get(oid, 0)
        if n <= 1:
            _counts.pop(oid, None)
            if n == 1 and _sink is not None:
                _sink.decref(oid)
        else:
            _counts[oid] = n - 1


def held(oid: bytes) -> int:
    return _counts.get(oid, 0)

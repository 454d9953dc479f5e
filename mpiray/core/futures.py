"""ObjectRef.future(), `await ref`, `async for` over a generator: one thread per process
waits for every awaited object at once, so that an event loop never blocks in get and
any number of awaits may be pending.

    future_of(ref) / when_any(oids) ──► Watch ──► pending {oid: {Watch}}
    waiter thread: store.wait_ids(every pending oid + its wake id, 1)
        ──► a ready oid fires its watches (in this thread):
              future_of: the value (or the error) ──► Future.set_result / set_exception
              when_any:  the oid ──► Future.set_result
    a registration while the thread sleeps puts the wake object: the wait ends at once
    a Future cancelled (asyncio.wait_for's timeout, a task cancelled) drops its Watch

The thread is a daemon: a pending await never holds the interpreter at exit, and
shutdown() stops it before the store goes (stop()).
"""

from __future__ import annotations

import concurrent.futures
import threading

from mpiray import _ids
from mpiray.core import context

WAIT_SLICE_S = 0.5   # the longest sleep: signals and shutdown are looked at this often


class Watch:
    __slots__ = ("oids", "fire", "fired", "task")

    def __init__(self, oids, fire, lends=True):
        self.oids, self.fire, self.fired = oids, fire, False
        # the task that awaits (its CPU is lent meanwhile); None: no task waits on it
        self.task = context.task_id() if lends else None


class Waiter:
    def __init__(self, runtime):
        self.rt = runtime
        self.lock = threading.Lock()
        self.pending = {}        # oid -> {Watch}
        self.wake_id = None      # while the thread sleeps: putting it ends the sleep
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="mpiray-await", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------ registrations
    def watch(self, oids, fire, lends=True, pull=True) -> Watch:
        """fire(oid) runs once, in the waiter thread, when the first of oids is sealed
        (None at shutdown). lends: the running task waits for it (its CPU is lent).
        pull: under MPI, ask for copies of those on other nodes."""
        w = Watch(list(oids), fire, lends)
        with self.lock:
            if self.stopped:
                raise RuntimeError("the runtime was shut down")
            for oid in w.oids:
                self.pending.setdefault(oid, set()).add(w)
            wake = self.wake_id
            self.wake_id = None
        if wake is not None:
            self._put_wake(wake)
        if pull:
            self.rt._pull([oid for oid in w.oids if not self.rt.store.contains(oid)])
        return w

    def _running_task_awaits(self) -> bool:
        """The task running in this worker now registered one of the pending watches."""
        running = self.rt.running_task() if self.rt.running_task is not None else None
        return running is not None and any(
            w.task == running for watches in self.pending.values() for w in watches)

    def drop(self, w: Watch) -> None:
        with self.lock:
            self._unlink(w)
        w.fire = None

    def _unlink(self, w):
        w.fired = True
        for oid in w.oids:
            watches = self.pending.get(oid)
            if watches is not None:
                watches.discard(w)
                if not watches:
                    del self.pending[oid]

    def _put_wake(self, wake):
        try:
            self.rt.store.put(wake, b"")
        except Exception:  # noqa: BLE001 - (store full or closing: the slice ends the sleep)
            pass

    # ------------------------------------------------------------ the thread
    def _run(self):
        store = self.rt.store
        while True:
            with self.lock:
                if self.stopped:
                    return
                oids = list(self.pending)
                wake = self.wake_id = _ids.new_put_id()
                lend = self._running_task_awaits()
            ready = bytearray(len(oids) + 1)
            try:
                if lend:
                    with self.rt._blocked():   # a task awaiting lends its CPU, as in get()
                        store.wait_ids(b"".join(oids) + wake, 1, WAIT_SLICE_S, ready)
                else:
                    store.wait_ids(b"".join(oids) + wake, 1, WAIT_SLICE_S, ready)
            except Exception:  # noqa: BLE001 - the store closed under us: shutting down
                return
            with self.lock:
                if self.wake_id is None:   # (a registration took it: put, or about to be)
                    ready[-1] = 1
                self.wake_id = None
                fired = []
                for i, oid in enumerate(oids):
                    if ready[i]:
                        for w in list(self.pending.get(oid, ())):
                            self._unlink(w)
                            fired.append((w, oid))
            for w, oid in fired:
                try:
                    w.fire(oid)
                except Exception:  # noqa: BLE001 - a callback's failure is not the waiter's
                    pass
                # The Future keeps its done-callback (which holds w) after it fired, and
                # fire holds the Future: cleared, the awaited value goes with the
                # caller's last reference instead of at the next cyclic collection.
                w.fire = None
            fired = w = None
            if ready[-1]:   # (after the firing: it may wait a moment for a racing put)
                self._delete(wake)

    def _delete(self, wake):
        store = self.rt.store
        try:
            if store.get(wake, 0.05) is not None or store.contains(wake):
                store.delete(wake)
        except Exception:  # noqa: BLE001
            pass

    def stop(self):
        """Shutdown: the thread ends, and every pending await fails."""
        with self.lock:
            self.stopped = True
            watches = {w for ws in self.pending.values() for w in ws}
            self.pending.clear()
            wake, self.wake_id = self.wake_id, None
        if wake is not None:
            self._put_wake(wake)
        self.thread.join(timeout=2 * WAIT_SLICE_S)
        for w in watches:
            try:
                w.fire(None)
            except Exception:  # noqa: BLE001
                pass
            w.fire = None


_lock = threading.Lock()


def waiter_of(runtime) -> Waiter:
    w = getattr(runtime, "waiter", None)
    if w is None:
        with _lock:
            w = getattr(runtime, "waiter", None)
            if w is None:
                w = runtime.waiter = Waiter(runtime)
    return w


def stop(runtime) -> None:
    w = getattr(runtime, "waiter", None)
    if w is not None:
        w.stop()


def _shut_down_error():
    from mpiray.exceptions import RaySystemError

    return RaySystemError("the runtime was shut down while this object was awaited")


def future_of(ref) -> concurrent.futures.Future:
    """A Future of ref's value (or its error)."""
    from mpiray.api import _runtime

    rt = _runtime()
    future = concurrent.futures.Future()
    oid = ref.binary()
    if rt.store.contains(oid):
        _resolve(rt, future, oid, ref)
        return future

    def fire(ready):
        if ready is None:
            if future.set_running_or_notify_cancel():
                future.set_exception(_shut_down_error())
            return
        _resolve(rt, future, ready, ref)

    w = waiter_of(rt).watch([oid], fire)
    future.add_done_callback(lambda f: f.cancelled() and waiter_of(rt).drop(w))
    return future


def _resolve(rt, future, oid, ref):
    if not future.set_running_or_notify_cancel():
        return   # (cancelled meanwhile)
    try:
        value = rt.get_one(oid)
    except BaseException as exc:  # noqa: BLE001 - the object's error is the Future's
        future.set_exception(exc)
    else:
        future.set_result(value)
    del ref   # (held until now: the object lives while it is awaited)


def when_any(oids) -> concurrent.futures.Future:
    """A Future of the first of oids to be sealed here (its id); None at shutdown."""
    from mpiray.api import _runtime

    rt = _runtime()
    future = concurrent.futures.Future()

    def fire(ready):
        if future.set_running_or_notify_cancel():
            future.set_result(ready)

    w = waiter_of(rt).watch(oids, fire)
    future.add_done_callback(lambda f: f.cancelled() and waiter_of(rt).drop(w))
    return future

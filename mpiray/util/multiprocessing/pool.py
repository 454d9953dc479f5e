"""A multiprocessing.Pool whose processes are mpiray actors, as Ray's is.

    Pool(processes=N) ──► N pool actors (initializer(*initargs) in each constructor)
    map / imap / starmap ──chunks──► the actors in turn ──► results in order
    apply_async / map_async ──► AsyncResult over the call refs (callbacks on a thread)
    an item's exception ──► returned as _PoolTaskError ──► raised as itself by get()/next()
    maxtasksperchild ──► an actor that ran that many chunks ends after them; a fresh one
                         takes its place
    close() ──► no more work; join() ──► every result is in; terminate() ──► actors killed
"""

from __future__ import annotations

import itertools
import logging
import threading
from multiprocessing import TimeoutError

import mpiray

_log = logging.getLogger(__name__)


class _PoolTaskError:
    """An item's exception, carried back as a result (the chunk's other items still count)."""

    def __init__(self, underlying):
        self.underlying = underlying


@mpiray.remote
class _PoolActor:
    def __init__(self, initializer, initargs):
        if initializer is not None:
            initializer(*initargs)

    def run(self, fn, chunk, star):
        out = []
        for args in chunk:
            try:
                out.append(fn(*args) if star else fn(args))
            except Exception as exc:  # noqa: BLE001 - raised by get() in the caller
                out.append(_PoolTaskError(exc))
        return out

    def run_one(self, fn, args, kwargs):
        try:
            return [fn(*args, **kwargs)]
        except Exception as exc:  # noqa: BLE001
            return [_PoolTaskError(exc)]


def _raise_errors(values):
    for v in values:
        if type(v) is _PoolTaskError:
            raise v.underlying
    return values


class IMapIterator:
    """imap's results in order (imap_unordered's as they come), with next(timeout) as
    multiprocessing's; every chunk is submitted when imap is called."""

    def __init__(self, refs, ordered):
        self._pending, self._ordered = list(refs), ordered
        self._items = []

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        while not self._items:
            if not self._pending:
                raise StopIteration
            if self._ordered:
                ref = self._pending[0]
            else:
                ready, _ = mpiray.wait(self._pending, num_returns=1, timeout=timeout)
                if not ready:
                    raise TimeoutError(f"no result after {timeout} s")
                ref = ready[0]
            try:
                chunk = mpiray.get(ref, timeout=timeout)
            except mpiray.exceptions.GetTimeoutError:
                raise TimeoutError(f"no result after {timeout} s") from None
            self._pending.remove(ref)
            self._items.extend(reversed(chunk))
        item = self._items.pop()
        if type(item) is _PoolTaskError:
            return item.underlying   # (as Ray's imap: a failed item's exception is its result)
        return item


class AsyncResult:
    def __init__(self, refs, unpack, callback=None, error_callback=None):
        self._refs, self._unpack = refs, unpack
        self._value, self._error, self._done = None, None, threading.Event()
        self._callback, self._error_callback = callback, error_callback
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        try:
            self._value = self._unpack(_raise_errors(_flatten(mpiray.get(self._refs))))
            if self._callback:
                self._callback(self._value)
        except Exception as exc:  # noqa: BLE001 - handed to get() / error_callback
            self._error = exc
            if self._error_callback:
                self._error_callback(exc)
        finally:
            self._refs = None
            self._done.set()

    def ready(self):
        return self._done.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("the result is not ready")
        return self._error is None

    def wait(self, timeout=None):
        self._done.wait(timeout)

    def get(self, timeout=None):
        if not self._done.wait(timeout):
            raise TimeoutError(f"result not ready after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


def _as_iterable(arg):
    """Ray's imap of one non-iterable argument: deprecated (a warning), taken as [arg]."""
    try:
        iter(arg)
        return arg
    except TypeError:
        import warnings

        warnings.warn("Passing a non-iterable argument to the ray.util.multiprocessing.Pool "
                      "imap and imap_unordered methods is deprecated as of Ray 2.3 and will "
                      "be removed in a future release; pass a list instead.",
                      DeprecationWarning, stacklevel=3)
        return [arg]


class Pool:
    """Ray's ray.util.multiprocessing.Pool: `processes` actors (default: the cluster's
    CPUs), each holding `ray_remote_args` (default one CPU)."""

    def __init__(self, processes=None, initializer=None, initargs=None, maxtasksperchild=None,
                 context=None, ray_address=None, ray_remote_args=None):
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError(f"processes must be a positive integer, got {processes!r}")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild < 1):
            raise ValueError(f"maxtasksperchild must be a positive integer, got {maxtasksperchild!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        from mpiray.util.debug import log_once

        if context is not None and log_once("pool_context_argument"):   # (once, as Ray's)
            _log.warning("Pool's context argument is ignored: its processes are mpiray actors")
        if not mpiray.is_initialized():
            mpiray.init(num_cpus=processes)
        # (as Ray's PoolActor: no CPU held, so that work inside a pool's tasks, a pool
        # of its own included, still finds CPUs; the pool is sized to the CPUs instead)
        self._remote_args = dict(ray_remote_args or {"num_cpus": 0})
        cpus = int(mpiray.cluster_resources().get("CPU", 1))
        self._processes = processes or max(1, cpus)
        want = max(self._remote_args.get("num_cpus", 0), 1) * self._processes
        if want > cpus:
            raise ValueError(f"Tried to start a pool of {self._processes} processes, but the "
                             f"cluster has only {cpus} CPUs")
        self._initializer, self._initargs = initializer, tuple(initargs or ())
        self._maxtasks = maxtasksperchild
        self._actors = [self._new_actor() for _ in range(self._processes)]
        # as Ray's: the pool is there (its initializers run) when Pool() returns
        mpiray.get([a.__ray_ready__.remote() for a in self._actors])
        self._ran = [0] * self._processes       # chunks given to each actor
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._results = []                       # what join() waits for
        self._closed = False

    def _new_actor(self):
        return _PoolActor.options(**self._remote_args).remote(self._initializer, self._initargs)

    def _next_actor(self):
        """The actor for the next chunk (in turn); one that has run maxtasksperchild
        chunks ends once they are done, and a fresh one takes its place."""
        with self._lock:
            i = next(self._turn) % self._processes
            if self._maxtasks is not None and self._ran[i] >= self._maxtasks:
                self._actors[i].__ray_terminate__.remote()
                self._actors[i], self._ran[i] = self._new_actor(), 0
            self._ran[i] += 1
            return self._actors[i]

    def _check_open(self):
        if self._closed:
            raise ValueError("Pool not running")

    def _chunks(self, iterable, chunksize):
        items = list(iterable)
        if chunksize is None:
            chunksize = max(1, -(-len(items) // (self._processes * 4)))
        it = iter(items)
        return [list(c) for c in iter(lambda: list(itertools.islice(it, chunksize)), [])]

    def _submit_chunks(self, fn, iterable, chunksize, star):
        self._check_open()
        return [self._next_actor().run.remote(fn, chunk, star)
                for chunk in self._chunks(iterable, chunksize)]

    def _track(self, result):
        self._results = [r for r in self._results if not r.ready()] + [result]
        return result

    def apply(self, fn, args=(), kwds=None):
        return self.apply_async(fn, args, kwds).get()

    def apply_async(self, fn, args=(), kwds=None, callback=None, error_callback=None):
        self._check_open()
        ref = self._next_actor().run_one.remote(fn, tuple(args), dict(kwds or {}))
        return self._track(AsyncResult([ref], lambda vals: vals[0], callback, error_callback))

    def map(self, fn, iterable, chunksize=None):
        return self.map_async(fn, iterable, chunksize).get()

    def map_async(self, fn, iterable, chunksize=None, callback=None, error_callback=None):
        refs = self._submit_chunks(fn, iterable, chunksize, False)
        return self._track(AsyncResult(refs, list, callback, error_callback))

    def starmap(self, fn, iterable, chunksize=None):
        return self.starmap_async(fn, iterable, chunksize).get()

    def starmap_async(self, fn, iterable, chunksize=None, callback=None, error_callback=None):
        refs = self._submit_chunks(fn, iterable, chunksize, True)
        return self._track(AsyncResult(refs, list, callback, error_callback))

    def imap(self, fn, iterable, chunksize=1):
        iterable = _as_iterable(iterable)
        return IMapIterator(self._submit_chunks(fn, iterable, chunksize, False), ordered=True)

    def imap_unordered(self, fn, iterable, chunksize=1):
        iterable = _as_iterable(iterable)
        return IMapIterator(self._submit_chunks(fn, iterable, chunksize, False), ordered=False)

    def close(self):
        """No more work; the actors end once what was given them is done."""
        if not self._closed:
            self._closed = True
            for actor in self._actors:
                actor.__ray_terminate__.remote()

    def terminate(self):
        """Ends the pool's actors now (work not done fails)."""
        self._closed = True
        for actor in self._actors:
            mpiray.kill(actor)

    def join(self):
        """Waits until every result given out is in (close() or terminate() first)."""
        if not self._closed:
            raise ValueError("Pool is still running: call close() or terminate() first")
        for result in self._results:
            result.wait()

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.terminate()


def _flatten(chunks):
    return [x for chunk in chunks for x in chunk]

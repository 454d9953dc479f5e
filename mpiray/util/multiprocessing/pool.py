"""A multiprocessing.Pool whose work runs as mpiray tasks.

    map / imap / starmap ──chunks──► one task per chunk ──► results in order
    apply_async / map_async ──► AsyncResult over the task refs (callbacks on a thread)
    initializer(*initargs): once in each worker process that runs the pool's work
"""

from __future__ import annotations

import itertools
import secrets
import threading
from multiprocessing import TimeoutError

import mpiray


@mpiray.remote
def _run_chunk(fn, chunk, star):
    return [fn(*args) if star else fn(args) for args in chunk]


@mpiray.remote
def _run_one(fn, args, kwargs):
    return fn(*args, **kwargs)


_INITIALIZED = set()   # in a worker process: the pools whose initializer ran here


class _WithInitializer:
    """fn, after the pool's initializer has run once in this process (as a
    multiprocessing worker runs it once, not per item); pickled by reference to this
    module, so the record above lives on in the worker between tasks."""

    def __init__(self, fn, initializer, initargs, pool_token):
        self.fn, self.initializer, self.initargs, self.token = fn, initializer, initargs, pool_token

    def __call__(self, *args, **kwargs):
        if self.token not in _INITIALIZED:
            self.initializer(*self.initargs)
            _INITIALIZED.add(self.token)
        return self.fn(*args, **kwargs)


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
        return self._items.pop()


class AsyncResult:
    def __init__(self, refs, unpack, callback=None, error_callback=None):
        self._refs, self._unpack = refs, unpack
        self._value, self._error, self._done = None, None, threading.Event()
        self._callback, self._error_callback = callback, error_callback
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        try:
            self._value = self._unpack(mpiray.get(self._refs))
            if self._callback:
                self._callback(self._value)
        except Exception as exc:  # noqa: BLE001 - handed to get() / error_callback
            self._error = exc
            if self._error_callback:
                self._error_callback(exc)
        finally:
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


class Pool:
    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 ray_address=None):
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError(f"processes must be a positive integer, got {processes!r}")
        if not mpiray.is_initialized():
            mpiray.init(num_cpus=processes)
        self._processes = processes or int(mpiray.cluster_resources().get("CPU", 1))
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._token = secrets.token_hex(8)
        self._closed = False

    def _wrap(self, fn):
        if self._initializer is None:
            return fn
        return _WithInitializer(fn, self._initializer, self._initargs, self._token)

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
        fn = self._wrap(fn)
        return [_run_chunk.remote(fn, chunk, star) for chunk in self._chunks(iterable, chunksize)]

    def apply(self, fn, args=(), kwds=None):
        return self.apply_async(fn, args, kwds).get()

    def apply_async(self, fn, args=(), kwds=None, callback=None, error_callback=None):
        self._check_open()
        ref = _run_one.remote(self._wrap(fn), tuple(args), dict(kwds or {}))
        return AsyncResult([ref], lambda vals: vals[0], callback, error_callback)

    def map(self, fn, iterable, chunksize=None):
        return self.map_async(fn, iterable, chunksize).get()

    def map_async(self, fn, iterable, chunksize=None, callback=None, error_callback=None):
        refs = self._submit_chunks(fn, iterable, chunksize, False)
        return AsyncResult(refs, _flatten, callback, error_callback)

    def starmap(self, fn, iterable, chunksize=None):
        return self.starmap_async(fn, iterable, chunksize).get()

    def starmap_async(self, fn, iterable, chunksize=None, callback=None, error_callback=None):
        refs = self._submit_chunks(fn, iterable, chunksize, True)
        return AsyncResult(refs, _flatten, callback, error_callback)

    def imap(self, fn, iterable, chunksize=1):
        return IMapIterator(self._submit_chunks(fn, iterable, chunksize, False), ordered=True)

    def imap_unordered(self, fn, iterable, chunksize=1):
        return IMapIterator(self._submit_chunks(fn, iterable, chunksize, False), ordered=False)

    def close(self):
        self._closed = True

    def terminate(self):
        self._closed = True

    def join(self):
        if not self._closed:
            raise ValueError("Pool is still running: call close() first")

    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.terminate()


def _flatten(chunks):
    return [x for chunk in chunks for x in chunk]

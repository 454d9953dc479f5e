"""A multiprocessing.Pool whose work runs as mpiray tasks.

    map / imap / starmap ──chunks──► one task per chunk ──► results in order
    apply_async / map_async ──► AsyncResult over the task refs (callbacks on a thread)
"""

from __future__ import annotations

import itertools
import threading
from multiprocessing import TimeoutError

import mpiray


@mpiray.remote
def _run_chunk(fn, chunk, star):
    return [fn(*args) if star else fn(args) for args in chunk]


@mpiray.remote
def _run_one(fn, args, kwargs):
    return fn(*args, **kwargs)


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
        self._initializer, self._initargs = initializer, initargs
        self._closed = False

    def _wrap(self, fn):
        init, initargs = self._initializer, self._initargs
        if init is None:
            return fn

        def with_init(*args, **kwargs):
            init(*initargs)
            return fn(*args, **kwargs)

        return with_init

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
        for ref in self._submit_chunks(fn, iterable, chunksize, False):
            yield from mpiray.get(ref)

    def imap_unordered(self, fn, iterable, chunksize=1):
        pending = self._submit_chunks(fn, iterable, chunksize, False)
        while pending:
            ready, pending = mpiray.wait(pending, num_returns=1)
            yield from mpiray.get(ready[0])

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

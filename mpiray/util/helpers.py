"""ray.util.as_completed and ray.util.map_unordered: results in the order they are ready.

    refs ──wait(num_returns=chunk)──► ready chunk ──get──► yielded values (or refs)
      ▲                                                          │
      └──────────── map_unordered submits more (≤ backpressure) ─┘
"""

from __future__ import annotations

DEFAULT_CHUNK_SIZE = 10        # as Ray's: refs waited for at once
DEFAULT_BACKPRESSURE_SIZE = 100  # as Ray's: map_unordered's most tasks in flight


def _check_chunk(chunk_size):
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")


def _take_ready(pending, chunk_size, yield_obj_refs, wait_kwargs):
    """Waits for up to chunk_size of pending; (their values or refs, the rest)."""
    import mpiray

    ready, rest = mpiray.wait(pending, num_returns=min(chunk_size, len(pending)), **wait_kwargs)
    return (ready if yield_obj_refs else mpiray.get(ready)), rest


def as_completed(refs, *, chunk_size=DEFAULT_CHUNK_SIZE, yield_obj_refs=False, **kwargs):
    """Yields the values of refs (or the refs, with yield_obj_refs) a chunk at a time, as
    each chunk is ready; kwargs go to wait() (timeout, fetch_local)."""
    _check_chunk(chunk_size)
    pending = list(refs)
    while pending:
        done, pending = _take_ready(pending, chunk_size, yield_obj_refs, kwargs)
        yield from done


def map_unordered(fn, items, *, backpressure_size=DEFAULT_BACKPRESSURE_SIZE,
                  chunk_size=DEFAULT_CHUNK_SIZE, yield_obj_refs=False, **kwargs):
    """fn.remote(item) for every item, at most backpressure_size in flight (None: no
    limit); yields results as they are ready (see as_completed)."""
    _check_chunk(chunk_size)
    if backpressure_size is not None and (not isinstance(backpressure_size, int)
                                          or backpressure_size < 1):
        raise ValueError(f"backpressure_size must be an integer >= 1 or None, got {backpressure_size!r}")
    if not hasattr(fn, "remote"):
        raise TypeError(f"map_unordered() applies a remote function; got {type(fn).__name__}")
    pending = []
    for item in items:
        if backpressure_size is not None and len(pending) >= backpressure_size:
            done, pending = _take_ready(pending, chunk_size, yield_obj_refs, kwargs)
            yield from done
        pending.append(fn.remote(item))
    while pending:
        done, pending = _take_ready(pending, chunk_size, yield_obj_refs, kwargs)
        yield from done

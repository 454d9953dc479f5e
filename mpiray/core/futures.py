"""ObjectRef.future() and `await ref`: a concurrent Future filled by a helper thread
that waits on the store (so an event loop never blocks in get)."""

from __future__ import annotations

import concurrent.futures

_pool = None


def future_of(ref) -> concurrent.futures.Future:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="mpiray-await")
    from mpiray.api import get

    return _pool.submit(get, ref)

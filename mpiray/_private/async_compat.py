"""ray._private.async_compat: telling async functions and classes apart, as Ray's."""

from __future__ import annotations

import functools
import inspect


def is_async_func(func) -> bool:
    """A coroutine function or an async generator function."""
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


@functools.lru_cache(maxsize=2**10)
def has_async_methods(cls) -> bool:
    """Whether a class has an async method (an async actor's)."""
    return any(True for _ in inspect.getmembers(cls, predicate=is_async_func))


@functools.lru_cache(maxsize=2**10)
def sync_to_async(func):
    """An async function calling func (func itself if it is async); the same one each time."""
    if is_async_func(func):
        return func

    @functools.wraps(func)
    async def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper

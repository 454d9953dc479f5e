"""Ray's test helpers that Ray programs' own tests import (`ray._private.test_utils`,
`ray._common.test_utils`): wait_for_condition and the SignalActor and Semaphore actors."""

from __future__ import annotations

import asyncio
import time

import mpiray


def wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100,
                       raise_exceptions=False, **kwargs):
    """Calls condition_predictor(**kwargs) until it returns true, for up to timeout s;
    RuntimeError if it never did (its last exception named, unless raise_exceptions:
    then that exception is raised at once)."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start <= timeout:
        try:
            if condition_predictor(**kwargs):
                return
        except Exception as exc:  # noqa: BLE001 - kept to name it, as Ray's does
            if raise_exceptions:
                raise
            last = exc
        time.sleep(retry_interval_ms / 1000.0)
    message = "The condition wasn't met before the timeout expired."
    if last is not None:
        message += f" Last exception: {type(last).__name__}: {last}"
    raise RuntimeError(message)


async def async_wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100,
                                   **kwargs):
    start = time.monotonic()
    last = None
    while time.monotonic() - start <= timeout:
        try:
            result = condition_predictor(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
        except Exception as exc:  # noqa: BLE001
            last = exc
        await asyncio.sleep(retry_interval_ms / 1000.0)
    message = "The condition wasn't met before the timeout expired."
    if last is not None:
        message += f" Last exception: {type(last).__name__}: {last}"
    raise RuntimeError(message)


@mpiray.remote(num_cpus=0)
class SignalActor:
    """Tasks wait() on it until someone send()s (clear=True: waits again after)."""

    def __init__(self):
        self.ready_event = asyncio.Event()
        self.num_waiters = 0

    def send(self, clear=False):
        self.ready_event.set()
        if clear:
            self.ready_event.clear()

    async def wait(self, should_wait=True):
        if should_wait:
            self.num_waiters += 1
            await self.ready_event.wait()
            self.num_waiters -= 1

    async def cur_num_waiters(self):
        return self.num_waiters


@mpiray.remote(num_cpus=0)
class Semaphore:
    def __init__(self, value=1):
        self._sema = asyncio.Semaphore(value=value)

    async def acquire(self):
        await self._sema.acquire()

    async def release(self):
        self._sema.release()

    async def locked(self):
        return self._sema.locked()


__all__ = ["Semaphore", "SignalActor", "async_wait_for_condition", "wait_for_condition"]

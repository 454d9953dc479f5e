"""Running one TaskSpec in a worker: arguments in, returns (or the error) out.

    spec ──unpack_args (zero-copy gets)──► fn(*args) ──serialize──► store (returns)
                    │ argument is an error                    │ raised
                    ▼                                         ▼
           same error bytes ──► returns          RayTaskError ──► returns
                                        (or a retry, when retry_exceptions allows)
"""

from __future__ import annotations

import os
import traceback

from mpiray.core import context
from mpiray.core import protocol as P
from mpiray.core.runtime import DependencyFailed
from mpiray.exceptions import RayTaskError, TaskCancelledError
from mpiray.serialization import serialize, serialize_error


_NONE = serialize(None).to_bytes()


class ExitActor(BaseException):
    """Raised by mpiray.actor.exit_actor(): ends the actor after this call."""


def run(runtime, spec, fn):
    """Executes fn for spec and writes its returns. Returns (sealed, retry):
    sealed = [(oid, contained oids)], retry = True when the scheduler should re-run it."""
    # Actor calls see the GPUs of their process; a task sees the ones it was given.
    if spec.actor_id:
        context.set_task(spec.task_id.hex(), spec.name)
    else:
        context.set_task(spec.task_id.hex(), spec.name, spec.gpu_ids, spec.resources)
    try:
        try:
            args, kwargs = runtime.unpack_args(spec)
        except DependencyFailed as failed:
            return _write_bytes(runtime, spec, failed.error_bytes), False
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure goes home
            if isinstance(exc, (SystemExit, KeyboardInterrupt, ExitActor)):
                raise
            if _should_retry(spec, exc):
                return [], True
            return _write_error(runtime, spec, wrap(exc, spec.name)), False
        return write_returns(runtime, spec, result), False
    finally:
        context.set_task(None, None)


def _should_retry(spec, exc):
    if spec.attempt >= spec.max_retries or isinstance(exc, TaskCancelledError):
        return False
    rx = spec.retry_exceptions
    if rx is True:
        return isinstance(exc, Exception)
    if isinstance(rx, (list, tuple)):
        return isinstance(exc, tuple(rx))
    return False


def wrap(exc, name):
    if isinstance(exc, RayTaskError):  # from a nested get: keep the original cause
        exc = exc.cause if exc.cause is not None else exc
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return RayTaskError(name, tb, exc, pid=os.getpid(), ip="127.0.0.1")


def write_returns(runtime, spec, result):
    oids = spec.return_ids()
    if spec.num_returns == 0:
        return []
    if spec.num_returns == 1:
        values = [result]
    else:
        values = list(result) if result is not None else []
        if len(values) != spec.num_returns:
            err = wrap(ValueError(
                f"{spec.name} declared num_returns={spec.num_returns} but returned "
                f"{len(values)} values"), spec.name)
            return _write_error(runtime, spec, err)
    sealed = []
    for oid, value in zip(oids, values):
        if value is None:  # (the commonest return: one ready-made object)
            runtime.store.put(oid, _NONE)
            sealed.append((oid, []))
            continue
        sobj = serialize(value)
        runtime.write(oid, sobj)
        if sobj.contained:
            # Told now, while `result` still holds those refs: once it is dropped, this
            # process's DECREFs follow, and the return's hold must already be counted.
            runtime.channel.send([(P.SEALED, oid, sobj.contained)], flush=False)
        sealed.append((oid, []))
    return sealed


def _write_error(runtime, spec, err):
    return _write_bytes(runtime, spec, serialize_error(err).to_bytes())


def _write_bytes(runtime, spec, data):
    sealed = []
    for oid in spec.return_ids():
        try:
            runtime.store.put(oid, data)
        except Exception:  # noqa: BLE001 - already sealed by a racing cancel
            pass
        sealed.append((oid, []))
    return sealed

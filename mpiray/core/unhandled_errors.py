"""Ray's "Unhandled error" report: a task's error that nothing read (no get, no task took
it as an argument) is printed when its last reference goes, so that a failed task whose
result nobody looks at is not silent.

    the scheduler frees oid ──► store.delete(oid, keep_unread_error=True)
        kept: an error no get has pinned ──► report() ──► stderr ──► store.delete(oid)

    an interactive driver's failed call, still unread UNHANDLED_GRACE_S later
        ──► Scheduler._report_unread ──► store.is_unread_error ──► report() (reads it: once)

As in Ray, only a task's own failures are reported (RayTaskError, WorkerCrashedError),
not an actor's death or a cancellation, and RAY_IGNORE_UNHANDLED_ERRORS=1 silences it.
A copy fetched to another node is read there by whoever asked for it, and the copy it
came from was read to send it: each error is reported once, by the node where it was
left unread.
"""

from __future__ import annotations

import os

from mpiray import _ids
from mpiray.exceptions import RayTaskError, TaskCancelledError, WorkerCrashedError

IGNORE_ENV = "RAY_IGNORE_UNHANDLED_ERRORS"


def delete_reporting(store, oid) -> None:
    """Deletes oid; a task error nobody read is reported first. KeyError if absent."""
    if store.delete(oid, keep_unread_error=True):
        return
    try:
        report(store, oid)
    finally:
        store.delete(oid)


def _cancelled_itself(error, oid) -> bool:
    """A cancellation of the task that made oid, whether it came before the task ran or
    interrupted its code (RayTaskError(TaskCancelledError) naming the task itself); a
    task that let a child's TaskCancelledError through failed on its own, and is told."""
    if isinstance(error, RayTaskError):
        error = error.cause
    return isinstance(error, TaskCancelledError) and \
        error.task_id == oid[: _ids.TASK_ID_SIZE].hex()


def report(store, oid) -> None:
    if os.environ.get(IGNORE_ENV, "0") not in ("", "0"):
        return
    from mpiray.serialization import deserialize

    buf = store.get(oid, 0)
    if buf is None:
        return
    try:
        error = deserialize(buf)[0]
    except Exception as exc:  # noqa: BLE001 - its class cannot be loaded here
        error = f"object {oid.hex()}: an error that cannot be loaded here ({exc!r})"
    finally:
        del buf
    if _cancelled_itself(error, oid):
        return
    if isinstance(error, (RayTaskError, WorkerCrashedError)) or isinstance(error, str):
        from mpiray._private import worker   # (a program may have replaced its handler)

        worker._unhandled_error_handler(error)

"""Ray's exception names, with Ray's class hierarchy.

A task's exception comes home as ``RayTaskError``; ``as_instanceof_cause`` makes an
object that is *also* an instance of the user's class, so ``except ValueError`` in the
driver catches a ``ValueError`` raised in a worker (Ray does the same).
"""

from __future__ import annotations

import logging

_log = logging.getLogger("mpiray")


class RayError(Exception):
    """Base of every error mpiray raises on behalf of the runtime."""


class RaySystemError(RayError):
    pass


class RayTaskError(RayError):
    """A task or actor method raised; ``cause`` is the original exception."""

    def __init__(self, function_name="<unknown>", traceback_str="", cause=None, proctitle="", pid=None, ip=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip
        super().__init__(self._message())

    def _message(self):
        where = f" (pid={self.pid}, ip={self.ip})" if self.pid is not None else ""
        head = f"{type(self.cause).__name__ if self.cause is not None else 'Error'}"
        at = f" in {self.function_name}()" if self.function_name is not None else ""
        return f"{head}{at}{where}\n{self.traceback_str.rstrip()}"

    def __str__(self):
        return self._message()

    def __reduce__(self):
        return (RayTaskError, (self.function_name, self.traceback_str, self.cause, self.proctitle, self.pid, self.ip))

    def as_instanceof_cause(self):
        """An error that is both a RayTaskError and an instance of the cause's class."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or isinstance(self, cause_cls) or not _can_subclass(cause_cls):
            return self
        dual = _dual_class(cause_cls)
        err = _new_dual(dual, self.cause)
        if err is None:
            # As Ray does: a class that cannot be made this way comes as RayTaskError only.
            _log.warning("The exception type %s raised in %s cannot be subclassed, so it is "
                         "raised as RayTaskError only; its original is the error's .cause",
                         cause_cls.__name__, self.function_name)
            return self
        err.__dict__.update(self.__dict__)
        err.args = getattr(self.cause, "args", ())
        err.__cause__ = self.cause
        return err


def _rebuild_dual(*args):
    return RayTaskError(*args).as_instanceof_cause()


def _new_dual(dual, cause):
    """An instance of dual made with no arguments, else with the cause's (classes whose
    __new__ wants them: ExceptionGroup, pydantic's ValidationError); None if neither."""
    for args in ((), getattr(cause, "args", ())):
        try:
            return dual.__new__(dual, *args)
        except Exception:  # noqa: BLE001 - any refusal of this __new__
            continue
    return None


def _can_subclass(cls):
    if cls is RayTaskError or not issubclass(cls, BaseException):
        return False
    try:
        type("_probe", (RayTaskError, cls), {})
        return True
    except TypeError:  # layout conflicts (e.g. some C exception types)
        return False


_DUALS: dict = {}


def _dual_class(cause_cls):
    dual = _DUALS.get(cause_cls)
    if dual is None:
        def __str__(self):
            return RayTaskError._message(self)

        def __reduce__(self):   # (a copy is dual too: pickled, put, returned by a task)
            return (_rebuild_dual, RayTaskError.__reduce__(self)[1])

        def __getattr__(self, name):  # (only for what the error itself lacks)
            cause = self.__dict__.get("cause")
            if cause is None or name.startswith("__"):
                raise AttributeError(name)
            return getattr(cause, name)   # Ray's: the cause's attributes (code, returncode, ...)

        dual = type(
            f"RayTaskError({cause_cls.__name__})",
            (RayTaskError, cause_cls),
            {"__str__": __str__, "__reduce__": __reduce__, "__getattr__": __getattr__,
             "__init__": lambda self, *a, **k: None},
        )
        _DUALS[cause_cls] = dual
    return dual


class TaskCancelledError(RayError):
    def __init__(self, task_id=None, message=None):
        self.task_id = task_id
        self._message = message
        super().__init__(message or f"Task {task_id} was cancelled")

    def __reduce__(self):  # (args holds the message, not the task id)
        return (type(self), (self.task_id, self._message))


class WorkerCrashedError(RayError):
    def __init__(self, message="The worker died unexpectedly while executing this task."):
        super().__init__(message)


class RayActorError(RayError):
    def __init__(self, message="The actor died unexpectedly before finishing this task.", actor_id=None,
                 cause=None, actor_init_failed=False):
        self.actor_id = actor_id
        self.cause = cause
        self.error_msg = message
        self._actor_init_failed = actor_init_failed
        super().__init__(message)

    @property
    def actor_init_failed(self) -> bool:
        """The actor's constructor raised (cause says what)."""
        return self._actor_init_failed

    @property
    def preempted(self) -> bool:
        """The actor's node was preempted (never here: nodes do not leave a job)."""
        return False


class ActorDiedError(RayActorError):
    pass


class ActorUnavailableError(RayActorError):
    pass


class ActorUnschedulableError(RayError):
    pass


class TaskUnschedulableError(RayError):
    pass


class TaskPlacementGroupRemoved(RayError):
    """The placement group the task was to run in was removed."""

    def __init__(self, message="The placement group of this task was removed."):
        super().__init__(message)


class ActorPlacementGroupRemoved(RayActorError):
    """The placement group the actor lived in was removed (a RayActorError here, so
    that its callers' `except RayActorError` sees it)."""


class AsyncioActorExit(RayError):
    pass


class GetTimeoutError(RayError, TimeoutError):
    pass


class ObjectStoreFullError(RayError):
    pass


class OutOfDiskError(RayError):
    pass


class OutOfMemoryError(RayError):
    pass


class ObjectLostError(RayError):
    def __init__(self, object_ref_hex="", owner_address="", call_site=""):
        self.object_ref_hex = object_ref_hex
        super().__init__(f"Object {object_ref_hex} is lost and cannot be recovered.")


class ObjectFetchTimedOutError(ObjectLostError):
    pass


class ReferenceCountingAssertionError(ObjectLostError):
    pass


class OwnerDiedError(ObjectLostError):
    pass


class ObjectFreedError(ObjectLostError):
    pass


class ObjectReconstructionFailedError(ObjectLostError):
    pass


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectLostError):
    pass


class ObjectReconstructionFailedLineageEvictedError(ObjectLostError):
    pass


class NodeDiedError(RayError):
    pass


class LocalRayletDiedError(RayError):
    pass


class RuntimeEnvSetupError(RayError):
    pass


class PendingCallsLimitExceeded(RayError):
    pass


class CrossLanguageError(RayError):
    pass


class ActorClassInheritanceException(TypeError):
    """A class derived from an actor class (@remote class): not supported, as in Ray."""

"""Ray's exception names, with Ray's class hierarchy.

A task's exception comes home as ``RayTaskError``; ``as_instanceof_cause`` makes an
object that is *also* an instance of the user's class, so ``except ValueError`` in the
driver catches a ``ValueError`` raised in a worker (Ray does the same).
"""

from __future__ import annotations

import logging

_log = logging.getLogger(__name__)   # (mpiray.exceptions, as Ray's ray.exceptions)


class RayError(Exception):
    """Base of every error mpiray raises on behalf of the runtime."""


class RaySystemError(RayError):
    """Something in the runtime failed (not the user's code); str() as Ray's."""

    def __init__(self, client_exc="", traceback_str=None):
        super().__init__(client_exc)
        self.client_exc, self.traceback_str = client_exc, traceback_str

    def __str__(self):
        text = f"System error: {self.client_exc}"
        return text + (f"\ntraceback: {self.traceback_str}" if self.traceback_str else "")

    def __reduce__(self):
        return (type(self), (self.client_exc, self.traceback_str))


class UnserializableException(RaySystemError):
    """An error whose pickle could not be loaded where it was read (its class wants other
    arguments than its args, say): what is known of it stands in. Newer Ray raises this
    class, older Ray a RaySystemError "Failed to unpickle serialized exception": this is
    both."""

    def __init__(self, original_stack_trace=""):
        super().__init__(f"Failed to unpickle serialized exception: {original_stack_trace}")
        self.original_stack_trace = original_stack_trace

    def __reduce__(self):
        return (type(self), (self.original_stack_trace,))


class RayTaskError(RayError):
    """A task or actor method raised; ``cause`` is the original exception."""

    def __init__(self, function_name="<unknown>", traceback_str="", cause=None, proctitle="", pid=None,
                 ip=None, actor_repr=None, actor_id=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle or (f"ray::{function_name}" if function_name is not None else "")
        self.pid = pid
        self.ip = ip
        self.actor_repr = actor_repr
        self.actor_id = actor_id
        super().__init__(self._message())

    def _message(self):
        """As Ray's: `ray::f() (pid=..., ip=...)`, then the traceback without its
        "Traceback (most recent call last):" line."""
        where = ""
        if self.pid is not None:
            actor = f", actor_id={self.actor_id}, repr={self.actor_repr}" if self.actor_repr else ""
            where = f" (pid={self.pid}, ip={self.ip}{actor})"
        title = f"{self.proctitle}(){where}" if self.proctitle else \
            f"{type(self.cause).__name__ if self.cause is not None else 'Error'}{where}"
        lines = [line for line in self.traceback_str.rstrip().split("\n")
                 if not line.startswith("Traceback (most recent call last)")]
        return "\n".join([title] + lines)

    def __str__(self):
        return self._message()

    def __reduce__(self):
        return (RayTaskError, (self.function_name, self.traceback_str, self.cause, self.proctitle,
                               self.pid, self.ip, self.actor_repr, self.actor_id))

    def as_instanceof_cause(self):
        """An error that is both a RayTaskError and an instance of the cause's class."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or isinstance(self, cause_cls):
            return self
        if not _can_subclass(cause_cls):
            if cause_cls is not RayTaskError and issubclass(cause_cls, BaseException):
                _log.warning("User exception type %s (raised in %s) in RayTaskError can not be "
                             "subclassed! This exception is raised as RayTaskError only. You "
                             "can use `ray_task_error.cause` to access the user exception.",
                             cause_cls, self.function_name)
            return self
        dual = _dual_class(cause_cls)
        err = _new_dual(dual, self.cause)
        if err is None:
            # As Ray does: a class that cannot be made this way comes as RayTaskError only.
            _log.warning("The exception type %s raised in %s cannot be made a RayTaskError: "
                         "this exception is raised as RayTaskError only. You can use "
                         "`ray_task_error.cause` to access the user exception.",
                         cause_cls.__name__, self.function_name)
            return self
        err.__dict__.update(self.__dict__)
        err.args = getattr(self.cause, "args", ())
        err.__cause__ = self.cause
        return err

    make_dual_exception_instance = as_instanceof_cause   # (Ray's newer name for it)


def _rebuild_dual(*args):
    return RayTaskError(*args).as_instanceof_cause()


def _new_dual(dual, cause):
    """An instance of dual made with no arguments, else with the cause's (classes whose
    __new__ wants them: ExceptionGroup, pydantic's ValidationError); None if neither.
    Called as a class first (MemoryError's __new__ refuses a direct call for a subclass),
    then by its __new__ (a class whose __init__ wants arguments: dual's takes any)."""
    for make in (lambda args: dual(*args), lambda args: dual.__new__(dual, *args)):
        for args in ((), getattr(cause, "args", ())):
            try:
                return make(args)
            except Exception:  # noqa: BLE001 - any refusal of this way of making it
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
            # (a dunder only when the cause holds it, as __notes__ from add_note(): the
            # protocol probes copy and pickle make must not find the cause's)
            if cause is None or name.startswith("__") and name not in getattr(cause, "__dict__", {}):
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
    """As Ray's: "Task: <id> was cancelled. " then the message, if any."""

    def __init__(self, task_id=None, error_message=None):
        self.task_id = task_id
        self.error_message = error_message
        super().__init__(str(self))

    def __str__(self):
        text = f"Task: {self.task_id} was cancelled. " if self.task_id else ""
        return text + (self.error_message or "")

    def __reduce__(self):  # (args holds the text, not the task id)
        return (type(self), (self.task_id, self.error_message))


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


class _WithMessage(RayError):
    """Ray's errors that put a fixed sentence before the message they are given."""
    _LEAD = ""

    def __init__(self, error_message=""):
        self.error_message = error_message
        super().__init__(str(self))

    def __str__(self):
        return self._LEAD + str(self.error_message)

    def __reduce__(self):
        return (type(self), (self.error_message,))


class ActorUnschedulableError(_WithMessage):
    _LEAD = "The actor is not schedulable: "


class TaskUnschedulableError(_WithMessage):
    _LEAD = "The task is not schedulable: "


class TaskPlacementGroupRemoved(RayError):
    """The placement group the task was to run in was removed."""

    def __init__(self, message="The placement group corresponding to this task has been removed."):
        super().__init__(message)


class ActorPlacementGroupRemoved(ActorDiedError):
    """The placement group the actor lived in was removed: Ray destroys its worker, and
    its callers get an ActorDiedError (this class is one)."""


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
    """As Ray's: made from the object's id (and where it was made); the text says why."""

    def __init__(self, object_ref_hex="", owner_address="", call_site=""):
        self.object_ref_hex = object_ref_hex
        self.owner_address = owner_address
        self.call_site = call_site
        super().__init__(f"Failed to retrieve object {object_ref_hex}. {self._why()}")

    def _why(self):
        return "All copies of the object have been lost and it cannot be recovered."

    def __reduce__(self):   # (args holds the message: rebuilt from the id, not from it)
        return (type(self), (self.object_ref_hex, self.owner_address, self.call_site))


class ObjectFetchTimedOutError(ObjectLostError):
    def _why(self):
        return "Fetch for the object timed out."


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    def _why(self):
        return "The object has already been deleted by the reference counting protocol."


class OwnerDiedError(ObjectLostError):
    def _why(self):
        return "The object's owner has exited, so it cannot be retrieved."


class ObjectFreedError(ObjectLostError):
    def _why(self):
        return ("The object was manually freed using the internal `free` call. Please "
                "ensure that `free` is only called once the object is no longer needed.")


class ObjectReconstructionFailedError(ObjectLostError):
    pass


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectLostError):
    pass


class ObjectReconstructionFailedLineageEvictedError(ObjectLostError):
    pass


class NodeDiedError(RayError):
    pass


class LocalRayletDiedError(RayError):
    def __str__(self):
        return "The task's local raylet died. Check raylet.out for more information."


class RuntimeEnvSetupError(_WithMessage):
    _LEAD = "Failed to set up runtime environment.\n"


class AuthenticationError(RayError):
    """Ray's: a connection to a cluster that wants a token was refused (mpiray asks for
    none; the class is here for code that names it)."""


class PendingCallsLimitExceeded(RayError):
    pass


class CrossLanguageError(RayError):
    pass


class ActorClassInheritanceException(TypeError):
    """A class derived from an actor class (@remote class): not supported, as in Ray."""


class UserCodeException(RayError):
    """Ray's: an error raised by user code, where Ray reports it as such."""


class RpcError(RayError):
    def __init__(self, message, rpc_code=None):
        self.rpc_code = rpc_code
        super().__init__(message)


class PlasmaObjectNotAvailable(Exception):
    """Ray's: an object not in the (Plasma) store when asked for without waiting."""


class ObjectRefStreamEndOfStreamError(RayError):
    """A generator's stream has no more items (next() raises StopIteration for users)."""


class RayChannelError(RaySystemError):
    """Ray's compiled-graph channels (not in mpiray: defined so that code catching it loads)."""


class RayChannelTimeoutError(RayChannelError, TimeoutError):
    pass


class RayCgraphCapacityExceeded(RaySystemError):
    pass


class OufOfBandObjectRefSerializationException(RayError):
    """Ray's name (spelled so) for pickling an ObjectRef outside a task's arguments or a
    put where Ray's config forbids it; mpiray always allows it (refs pickled anywhere are
    counted: core/serialization_context.py), so it only exists to be caught."""


RAY_EXCEPTION_TYPES = [
    PlasmaObjectNotAvailable, RayError, RayTaskError, WorkerCrashedError, RayActorError,
    ObjectStoreFullError, ObjectLostError, ObjectFetchTimedOutError,
    ReferenceCountingAssertionError, ObjectReconstructionFailedError,
    ObjectReconstructionFailedMaxAttemptsExceededError,
    ObjectReconstructionFailedLineageEvictedError, OwnerDiedError, GetTimeoutError,
    AsyncioActorExit, RuntimeEnvSetupError, TaskPlacementGroupRemoved,
    ActorPlacementGroupRemoved, PendingCallsLimitExceeded, LocalRayletDiedError,
    TaskUnschedulableError, ActorDiedError, ActorUnschedulableError, ActorUnavailableError,
    RayChannelError, RayChannelTimeoutError, OutOfMemoryError, ObjectRefStreamEndOfStreamError,
    RpcError, UserCodeException, NodeDiedError, TaskCancelledError, OutOfDiskError,
    RaySystemError, CrossLanguageError, OufOfBandObjectRefSerializationException,
    UnserializableException,
]

"""mpiray: Ray Core programs on one host, and on MPI clusters (`import mpiray as ray`).

    @ray.remote functions and actors, ObjectRefs, get/put/wait/cancel/kill, options,
    resources and GPUs, Ray's exceptions; a C++ shared-memory object store and task
    queue per node underneath.
"""

from mpiray import exceptions
from mpiray.actor import ActorClass, ActorHandle, exit_actor, method
from mpiray.api import (
    available_resources, cancel, cluster_resources, free, get, get_actor, get_gpu_ids,
    init, is_initialized, kill, nodes, put, shutdown, timeline, wait,
)
from mpiray.generators import DynamicObjectRefGenerator, ObjectRefGenerator
from mpiray.logging_config import LoggingConfig
from mpiray.ids import (ActorClassID, ActorID, FunctionID, JobID, NodeID, PlacementGroupID,
                        TaskID, UniqueID, WorkerID)
from mpiray.object_ref import ObjectRef
from mpiray.remote_function import RemoteFunction
from mpiray.runtime_context import get_runtime_context

ObjectID = ObjectRef   # (Ray keeps the old name of ObjectRef as an alias)
__version__ = "0.1.0"

# Ray's worker modes (ray.get_runtime_context().worker.mode in Ray; here for code that
# imports them): a driver script, a worker process, Ray's (removed) local mode.
SCRIPT_MODE, WORKER_MODE, LOCAL_MODE = 0, 1, 2


def remote(*args, **kwargs):
    """@remote, @remote(**options): a remote function or an actor class."""
    def make(target, options):
        if isinstance(target, (RemoteFunction, ActorClass)):
            raise TypeError(f"@remote applies to functions and classes; {target.__name__} is "
                            "remote already (use .options(...) to change its options)")
        if isinstance(target, type):
            return ActorClass(target, options)
        if callable(target):
            return RemoteFunction(target, options)
        raise TypeError(f"@remote applies to functions and classes, not {type(target).__name__}")

    if len(args) == 1 and not kwargs and callable(args[0]):
        return make(args[0], {})
    if args or not kwargs:   # (Ray's check, and its AssertionError: @remote() is refused)
        raise AssertionError(
            'The @ray.remote decorator must be applied either with no arguments and no '
            'parentheses, for example "@ray.remote", or it must be applied using some of '
            'the options (num_returns, num_cpus, num_gpus, resources, max_calls, ...), for '
            'example "@ray.remote(num_returns=2, resources={"CustomResource": 1})".')
    return lambda target: make(target, kwargs)


def __getattr__(name):
    """`ray.util` and `ray.runtime_env` without an import of their own, as in Ray (loaded on
    first use: a plain `import mpiray` stays quick)."""
    if name in ("util", "runtime_env", "cloudpickle", "types", "job_config", "_private",
                "_common", "actor", "dag", "internal", "experimental", "_raylet"):
        import importlib

        return importlib.import_module(f"mpiray.{name}")
    raise AttributeError(f"module 'mpiray' has no attribute {name!r}")


__all__ = [
    "ActorClass", "ActorHandle", "ActorID", "DynamicObjectRefGenerator", "JobID", "LoggingConfig",
    "NodeID",
    "ObjectID", "ObjectRef", "ObjectRefGenerator", "PlacementGroupID", "TaskID", "WorkerID",
    "UniqueID", "ActorClassID", "FunctionID",
    "RemoteFunction", "available_resources",
    "cancel", "cluster_resources", "exceptions", "exit_actor", "free", "get", "get_actor",
    "get_gpu_ids", "get_runtime_context", "init", "is_initialized", "kill", "method",
    "nodes", "put", "remote", "shutdown", "timeline", "wait",
]

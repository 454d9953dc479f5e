"""TaskSpec: everything a worker needs to run one task, actor creation or actor call.

It crosses a queue for every task, so it pickles as a plain tuple of its fields (about
five times cheaper than a dataclass); user exception classes in retry_exceptions are
the one field that may need cloudpickle.
"""

from __future__ import annotations

import pickle

import cloudpickle

from mpiray._ids import return_ids, stream_end
from mpiray.core.accelerators import NONE

NORMAL, ACTOR_CREATION, ACTOR_CALL = 0, 1, 2
# num_returns of a generator task: its items stream to the caller (an ObjectRefGenerator),
# or are handed over all at once at its end (num_returns="dynamic"). Either way its one
# declared return is the stream's end object (mpiray/generators.py).
STREAMING, DYNAMIC = -1, -2
GROUP_SEP = ":"   # method "m:g": an actor call of m in concurrency group g (.options)

_FIELDS = ("task_id", "kind", "function_id", "name", "args", "deps", "contained",
           "num_returns", "resources", "max_retries", "retry_exceptions", "attempt",
           "actor_id", "method", "devices", "runtime_env", "max_calls", "depth", "parent",
           "function_name")
_FIRST_RETURN = (1).to_bytes(4, "little")  # return i is object (task id, i + 1): see _ids


class TaskSpec:
    """task_id: 16-byte id; kind: NORMAL / ACTOR_CREATION / ACTOR_CALL; function_id: stored
    blob of the function or class; name: task name; args: serialized (args, kwargs), or b""
    when they live in the store as deps[-1]; deps: oids of top-level ref arguments;
    contained: every oid the arguments hold; resources: what it needs; devices: what it got;
    runtime_env: core/runtime_env.py's canonical dict, or None; max_calls: how many tasks of
    this function a worker runs before it exits (0: no limit); depth: 1 for what the driver
    submits, one more than its submitter's for the rest (the scheduler runs deeper first);
    parent: the hex id of the task or actor call that submitted it (None: the driver);
    function_name: the function's own name when the task was given another (name=), else
    None (list_tasks' func_or_class_name)."""

    __slots__ = _FIELDS

    def __init__(self, task_id, kind, function_id, name, args, deps, contained, num_returns=1,
                 resources=None, max_retries=0, retry_exceptions=False, attempt=0, actor_id=b"",
                 method="", devices=None, runtime_env=None, max_calls=0, depth=1, parent=None,
                 function_name=None):
        self.task_id, self.kind, self.function_id, self.name = task_id, kind, function_id, name
        self.args, self.deps, self.contained = args, deps, contained
        self.num_returns, self.max_retries, self.retry_exceptions = num_returns, max_retries, retry_exceptions
        self.attempt, self.actor_id, self.method = attempt, actor_id, method
        self.resources = {} if resources is None else resources
        self.devices = NONE if devices is None else devices
        self.runtime_env, self.max_calls, self.depth = runtime_env, max_calls, depth
        self.parent, self.function_name = parent, function_name

    def return_ids(self):
        if self.num_returns == 1:  # (the commonest case, on every submit and every return)
            return [self.task_id + _FIRST_RETURN]
        if self.num_returns < 0:
            return [stream_end(self.task_id)]
        return return_ids(self.task_id, self.num_returns)

    def fields(self):
        return (self.task_id, self.kind, self.function_id, self.name, self.args, self.deps,
                self.contained, self.num_returns, self.resources, self.max_retries,
                self.retry_exceptions, self.attempt, self.actor_id, self.method, self.devices,
                self.runtime_env, self.max_calls, self.depth, self.parent, self.function_name)

    def __reduce__(self):
        return (_from_tuple, (self.fields(),))

    def to_bytes(self) -> bytes:
        fields = self.fields()
        if self.retry_exceptions in (False, True):
            return pickle.dumps(fields, protocol=5)
        return cloudpickle.dumps(fields, protocol=5)  # user exception classes, by value

    @staticmethod
    def from_bytes(data) -> "TaskSpec":
        return _from_tuple(pickle.loads(data))


def _from_tuple(fields):
    spec = TaskSpec.__new__(TaskSpec)
    (spec.task_id, spec.kind, spec.function_id, spec.name, spec.args, spec.deps,
     spec.contained, spec.num_returns, spec.resources, spec.max_retries,
     spec.retry_exceptions, spec.attempt, spec.actor_id, spec.method, spec.devices,
     spec.runtime_env, spec.max_calls, spec.depth, spec.parent, spec.function_name) = fields
    return spec

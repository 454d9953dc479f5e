"""TaskSpec: everything a worker needs to run one task, actor creation or actor call."""

from __future__ import annotations

from dataclasses import dataclass, field

import pickle

import cloudpickle

NORMAL, ACTOR_CREATION, ACTOR_CALL = 0, 1, 2


@dataclass
class TaskSpec:
    task_id: bytes
    kind: int
    function_id: bytes            # stored blob of the function or class
    name: str                     # task name (Ray: the function's qualified name)
    args: bytes                   # serialized (args, kwargs); top-level refs are resolved
    deps: list                    # oids of top-level ObjectRef arguments
    contained: list               # every oid the arguments hold (deps included)
    num_returns: int = 1
    resources: dict = field(default_factory=dict)
    max_retries: int = 0
    retry_exceptions: object = False   # bool or a tuple of exception classes
    attempt: int = 0
    actor_id: bytes = b""
    method: str = ""
    gpu_ids: list = field(default_factory=list)
    caller: bytes = b""           # actor calls: the caller's handle id (ordering)

    def return_ids(self):
        from mpiray._ids import return_ids

        return return_ids(self.task_id, self.num_returns)

    def to_bytes(self) -> bytes:
        if self.retry_exceptions in (False, True):
            return pickle.dumps(self, protocol=5)
        return cloudpickle.dumps(self, protocol=5)  # user exception classes, by value

    @staticmethod
    def from_bytes(data: bytes) -> "TaskSpec":
        return pickle.loads(data)

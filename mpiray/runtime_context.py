"""get_runtime_context(): who and where the caller is (driver, task or actor)."""

from __future__ import annotations

import warnings

from mpiray import ids
from mpiray.core import affinity, context, current, placement


class RuntimeContext:
    def get_task_id(self):
        return context.task_id()

    def get_task_name(self):
        return context.task_name()

    def get_actor_id(self):
        return context.process().get("actor_id")

    def get_node_id(self):
        return _info("Node ID").get("node_id")

    def get_node_labels(self) -> dict:
        """The labels of the node the caller runs on (nodes()[i]["Labels"])."""
        from mpiray.core.labels import current_node_labels

        _info("Node labels")
        return current_node_labels()

    def get_job_id(self):
        """The driver's: the same on every node (each node has a session of its own)."""
        info = _info("Job ID")
        return info.get("job_id") or info.get("session")

    def get_worker_id(self):
        """A WorkerID's hex form (28 bytes, as Ray's), the same for the life of the
        process (the driver's included)."""
        import os

        who = context.process().get("worker_id") or "driver"
        return worker_hex(_info("Worker ID").get("session", ""), who, os.getpid())

    @property
    def namespace(self):
        return (current.info() or {}).get("namespace", "")

    def get_namespace(self):
        return self.namespace

    def get_assigned_resources(self):
        """What the running task or actor holds, as Ray reports it ({} in the driver);
        the node:<i> slivers that pin a task to a node are not resources it was given."""
        out = {}
        for key, amount in context.resources().items():
            base = placement.base_name(key)  # a bundle's CPU_group_<i>_<pg> is a CPU
            if not base.startswith("node:") and \
                    base not in (placement.BUNDLE, placement.CAPTURE, affinity.SPREAD):
                out[base] = round(amount * 10000) / 10000   # (Ray's units: 0.0001)
        return out

    def is_canceled(self) -> bool:
        """ray.cancel was called on the running task or actor call (a running sync
        actor call is not interrupted: it may look here and stop)."""
        from mpiray import _ids
        from mpiray.api import _runtime

        if context.process().get("actor_is_async"):
            # as Ray's: an async call is cancelled on its loop (CancelledError), not asked
            raise RuntimeError("This method is not supported in an async actor.")
        task = context.task_id()
        return task is not None and _runtime().store.contains(
            _ids.object_id(bytes.fromhex(task), _ids.CANCEL_INDEX))

    def get_placement_group_id(self):
        """The hex id of the placement group the running task or actor is in, or None."""
        return placement.group_of(context.resources())

    def get_accelerator_ids(self):
        """Every accelerator kind's ids held by the running task or actor, as strings."""
        from mpiray.core import accelerators

        return accelerators.report(context.devices())

    def get_resource_ids(self):
        """Ray's older name of get_accelerator_ids()."""
        return self.get_accelerator_ids()

    @property
    def gcs_address(self):
        return None   # (no GCS: the control store lives in the driver, docs/mpi.md)

    @property
    def was_current_actor_reconstructed(self):
        return bool(context.process().get("reconstructed"))

    def get(self) -> dict:
        """Ray's older dict form of the context: its ids as id objects, as Ray's."""
        out = {"job_id": ids.of_hex(ids.JobID, self.get_job_id()),
               "node_id": ids.of_hex(ids.NodeID, self.get_node_id()), "namespace": self.namespace}
        if self.get_task_id() is not None:
            out["task_id"] = ids.of_hex(ids.TaskID, self.get_task_id())
        if self.get_actor_id() is not None:
            out["actor_id"] = ids.of_hex(ids.ActorID, self.get_actor_id())
        return out

    @property
    def runtime_env(self):
        """The runtime_env the caller runs in: the job's, under its task's or actor's."""
        from mpiray.core import runtime_env as renv
        from mpiray.runtime_env import RuntimeEnv

        rt = current.runtime()
        merged = renv.merge((current.info() or {}).get("runtime_env"),
                            rt.inherited_env if rt is not None else None)
        return RuntimeEnv(**(merged or {}))

    def get_runtime_env_string(self) -> str:
        import json

        return json.dumps(self.runtime_env)

    # Ray's deprecated properties: id objects where the get_* methods give hex strings.
    # Ray's older id properties: id objects, each with Ray's deprecation warning
    @property
    def job_id(self):
        _deprecated("get_job_id")
        return ids.of_hex(ids.JobID, self.get_job_id())

    @property
    def node_id(self):
        _deprecated("get_node_id")
        return ids.of_hex(ids.NodeID, self.get_node_id())

    @property
    def task_id(self):
        _deprecated("get_task_id")
        return ids.of_hex(ids.TaskID, self.get_task_id())

    @property
    def actor_id(self):
        _deprecated("get_actor_id")
        return ids.of_hex(ids.ActorID, self.get_actor_id())

    def get_actor_name(self):
        """The running actor's name ("" if it has none; None outside an actor)."""
        return context.process().get("actor_name")

    def get_task_function_name(self):
        return context.task_function_name()

    def get_dashboard_url(self) -> str:
        """"" as Ray's when no dashboard runs (mpiray has none)."""
        return ""

    @property
    def current_placement_group_id(self):
        _deprecated("get_placement_group_id")
        return ids.of_hex(ids.PlacementGroupID, self.get_placement_group_id())

    @property
    def should_capture_child_tasks_in_placement_group(self) -> bool:
        return any(k.startswith(placement.CAPTURE + "_group_") for k in context.resources())

    @property
    def current_actor(self):
        """A handle on the running actor (its methods callable); outside an actor, Ray's
        RuntimeError."""
        from mpiray.actor import ActorHandle

        proc = context.process()
        aid = proc.get("actor_id")
        if aid is None:
            raise RuntimeError("This method is only available in an actor.")
        return ActorHandle(bytes.fromhex(aid), proc.get("actor_class", "actor"),
                           proc.get("actor_methods", {}), -1, proc.get("actor_in_order", True),
                           weak=True)


def worker_hex(session: str, who: str, pid: int) -> str:
    """A worker's id: who ("driver", or "<session>-<slot>") in this session; slots are
    reused when workers end, so the pid tells processes apart."""
    import hashlib

    return hashlib.sha224(f"{session}/{who}/{pid}".encode()).hexdigest()


def _info(what: str) -> dict:
    """The runtime's facts; as Ray's getters, an AssertionError when none runs."""
    info = current.info()
    if info is None:
        raise AssertionError(f"{what} is not available because Ray has not been initialized.")
    return info


def _deprecated(instead: str) -> None:
    warnings.warn(f"Use {instead}() instead", DeprecationWarning, stacklevel=3)


def get_runtime_context() -> RuntimeContext:
    """As Ray's (one of its AUTO_INIT_APIS): starts the runtime if none runs, unless
    RAY_ENABLE_AUTO_CONNECT=0; a context got outside one raises AssertionError from its
    getters of ids."""
    from mpiray.api import auto_init

    auto_init()
    return RuntimeContext()

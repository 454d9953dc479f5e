"""ray.util.state: the cluster's actors, tasks, objects, workers, nodes and placement
groups, as lists of dicts with Ray's field names (what each node reports:
core/state_report.py), and Ray's summaries of them.

    list_actors() ──► driver: its node's report + every other node's (MPI "ask")
    list_tasks()  ──► the tasks not ended yet, and the attempts that ended, on every node
    summarize_*() ──► the same lists, counted by function, class or state
"""

from __future__ import annotations

from mpiray.util.state.common import (ActorState, JobState, NodeState, ObjectState,  # noqa: F401
                                      PlacementGroupState, StateSchema, TaskState, WorkerState)
from mpiray.util.state.exception import RayStateApiException  # noqa: F401
from mpiray.util.state.logs import get_log, list_logs  # noqa: F401

DEFAULT_LIMIT = 100
_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b}   # (Ray's only two)


def _comparable(field, value):
    """As Ray's state API: numbers compare as numbers, yes/no fields take "true"/"1" and
    "false"/"0", anything else compares as text, case-blind."""
    if isinstance(field, bool):
        text = str(value).lower()
        return field, text in ("true", "1") if text in ("true", "1", "false", "0") else text
    if isinstance(field, (int, float)):
        try:
            return field, float(value)
        except (TypeError, ValueError):
            pass
    return str(field).lower(), str(value).lower()


def _filtered(rows, filters, limit, kind=StateSchema):
    for f in filters or ():
        if not (isinstance(f, (tuple, list)) and len(f) == 3):
            raise ValueError(f"a filter is (key, predicate, value); got {f!r}")
        if f[1] not in _OPS:
            raise ValueError(f"Unsupported filter predicate {f[1]} is given. Available "
                             f"predicates: =, !=.")
        key, op, value = f
        if rows and key not in rows[0] and key.lower() in rows[0]:
            key = key.lower()   # (as Ray's: keys are case-blind too)
        if rows and key not in rows[0]:
            raise ValueError(f"cannot filter on {key!r}; the fields are {', '.join(rows[0])}")
        rows = [r for r in rows if _OPS[op](*_comparable(r.get(key), value))]
    return [kind(r) for r in rows[:limit]]


def _gather(question):
    import mpiray
    from mpiray.api import _gathered
    from mpiray.core import current

    answers = _gathered(f"ray.util.state.list_{question}", question)
    node = current.node()
    if node is not None and node.cluster_table:
        ids = [info["node_id"] for info in node.cluster_table]
    else:
        ids = [(current.info() or {}).get("node_id")]
    job = mpiray.get_runtime_context().get_job_id()
    # (an actor not placed yet is on no node: Ray's node_id None)
    return [dict(row, node_id=ids[index] if row.pop("_placed", True) else None, job_id=job)
            for index, rows in answers for row in rows]


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
                raise_on_missing_output=True, _explain=False) -> list:
    return _filtered(_gather("actors"), filters, limit, ActorState)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
               raise_on_missing_output=True, _explain=False) -> list:
    """Every node's tasks: pending or running, and the last attempts that ended."""
    return _filtered(_gather("tasks"), filters, limit, TaskState)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
               raise_on_missing_output=True, _explain=False) -> list:
    import mpiray

    rows = [{"node_id": n["NodeID"], "node_ip": n["NodeManagerAddress"], "state": "ALIVE",
             "node_name": n["NodeName"], "resources_total": n["Resources"],
             "is_head_node": n["NodeIndex"] == 0, "labels": dict(n["Labels"]),
             "state_message": None} for n in mpiray.nodes()]
    return _filtered(rows, filters, limit, NodeState)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30,
                          detail=False, raise_on_missing_output=True, _explain=False) -> list:
    import mpiray
    from mpiray.util.placement_group import placement_group_table

    job = mpiray.get_runtime_context().get_job_id()   # (one job per cluster: its groups)
    rows = [{"placement_group_id": pg, "name": info["name"], "state": info["state"],
             "strategy": info["strategy"], "bundles": [info["bundles"][i] for i in sorted(info["bundles"])],
             "creator_job_id": job, "is_detached": info["is_detached"], "stats": info["stats"]}
            for pg, info in placement_group_table().items()]
    return _filtered(rows, filters, limit, PlacementGroupState)


def list_jobs(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
              raise_on_missing_output=True, _explain=False) -> list:
    """The one job there is: this driver's (mpiray runs one job per cluster)."""
    import os
    import sys

    import mpiray

    ctx = mpiray.get_runtime_context()
    rows = [{"job_id": ctx.get_job_id(), "submission_id": None, "status": "RUNNING",
             "type": "DRIVER", "entrypoint": " ".join(sys.argv), "driver_pid": os.getpid(),
             "namespace": ctx.namespace}]
    return _filtered(rows, filters, limit, JobState)


def _one(rows):
    return rows[0] if rows else None


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
                 raise_on_missing_output=True, _explain=False) -> list:
    """The objects refs hold, in every node's store."""
    return _filtered(_gather("objects"), filters, limit, ObjectState)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
                 raise_on_missing_output=True, _explain=False) -> list:
    """Every node's worker processes (task workers and actors)."""
    return _filtered(_gather("workers"), filters, limit, WorkerState)


def _counted(rows, key, fields):
    summary = {}
    for row in rows:
        entry = summary.setdefault(row[key], dict({f: row[f] for f in fields}, state_counts={}))
        counts = entry["state_counts"]
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return summary


def summarize_tasks(address=None, timeout=30, raise_on_missing_output=True,
                    _explain=False) -> dict:
    """Ray's: tasks counted by function (or actor method) and state."""
    rows = _gather("tasks")
    return {"cluster": {
        "summary": _counted(rows, "func_or_class_name", ("func_or_class_name", "type")),
        "total_tasks": sum(r["type"] == "NORMAL_TASK" for r in rows),
        "total_actor_tasks": sum(r["type"] == "ACTOR_TASK" for r in rows),
        "total_actor_scheduled": sum(r["type"] == "ACTOR_CREATION_TASK" for r in rows),
        "summary_by": "func_name"}}


def summarize_actors(address=None, timeout=30, raise_on_missing_output=True,
                     _explain=False) -> dict:
    """Ray's: actors counted by class and state."""
    rows = _gather("actors")
    return {"cluster": {"summary": _counted(rows, "class_name", ("class_name",)),
                        "total_actors": len(rows), "summary_by": "class"}}


def _tally(values) -> dict:
    out = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def summarize_objects(address=None, timeout=30, raise_on_missing_output=True,
                      _explain=False) -> dict:
    """Ray's: objects counted (call sites are not recorded, as Ray's default)."""
    rows = _gather("objects")
    size_mb = sum(r["object_size"] for r in rows if r["object_size"] > 0) / 2**20
    refs = {}
    for r in rows:
        refs[r["reference_type"]] = refs.get(r["reference_type"], 0) + 1
    group = {"total_objects": len(rows), "total_size_mb": size_mb,
             "total_num_workers": len({r["pid"] for r in rows}),
             "total_num_nodes": len({r["node_id"] for r in rows}),
             "task_state_counts": _tally(r["task_status"] for r in rows),
             "ref_type_counts": refs}
    return {"cluster": {"summary": {"disabled": group} if rows else {},
                        "total_objects": len(rows), "total_size_mb": size_mb,
                        "callsite_enabled": False, "summary_by": "callsite"}}


def get_actor(id: str, address=None, timeout=30, _explain=False):
    id = id.hex() if hasattr(id, "hex") and not isinstance(id, str) else id   # (an ActorID too)
    return _one(list_actors(filters=[("actor_id", "=", id)], limit=1))


def get_task(id: str, address=None, timeout=30, _explain=False):
    """The task's row, or as Ray's, the list of its attempts' rows when it ran more than
    once; None if no node knows it."""
    rows = sorted(list_tasks(filters=[("task_id", "=", id)], limit=10_000),
                  key=lambda r: r["attempt_number"])
    return rows[0] if len(rows) == 1 else (rows or None)


def get_objects(id: str, address=None, timeout=30, _explain=False) -> list:
    return list_objects(filters=[("object_id", "=", id)], limit=10_000)


def get_worker(id: str, address=None, timeout=30, _explain=False):
    return _one(list_workers(filters=[("worker_id", "=", id)], limit=1))


def get_node(id: str, address=None, timeout=30, _explain=False):
    return _one(list_nodes(filters=[("node_id", "=", id)], limit=1))


def get_placement_group(id: str, address=None, timeout=30, _explain=False):
    return _one(list_placement_groups(filters=[("placement_group_id", "=", id)], limit=1))


__all__ = ["get_actor", "get_node", "get_objects", "get_placement_group", "get_task",
           "get_worker", "list_actors", "list_jobs", "list_nodes", "list_objects",
           "list_placement_groups", "list_tasks", "list_workers", "summarize_actors",
           "summarize_objects", "summarize_tasks"]

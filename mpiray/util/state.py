"""ray.util.state: the cluster's actors, tasks, nodes and placement groups, as lists of
dicts with Ray's field names (what each node reports: core/state_report.py).

    list_actors() ──► driver: its node's report + every other node's (MPI "ask")
    list_tasks()  ──► the tasks not ended yet, on every node
"""

from __future__ import annotations

DEFAULT_LIMIT = 100


class _Row(dict):
    """One listed item: a dict, whose fields also read as attributes (Ray's states are
    dataclasses: `actor.state`)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
_OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _filtered(rows, filters, limit):
    for f in filters or ():
        if not (isinstance(f, (tuple, list)) and len(f) == 3 and f[1] in _OPS):
            raise ValueError(f"a filter is (key, '=' or '!=', value), got {f!r}")
        key, op, value = f
        if rows and key not in rows[0]:
            raise ValueError(f"cannot filter on {key!r}; the fields are {', '.join(rows[0])}")
        rows = [r for r in rows if _OPS[op](str(r.get(key)), str(value))]
    return [_Row(r) for r in rows[:limit]]


def _gather(question):
    from mpiray.api import _driver_node, _every_node
    from mpiray.core import state_report

    node = _driver_node(f"ray.util.state.list_{question}")
    pump = getattr(node, "pump", None)
    if pump is not None:
        pump.drain()   # what workers have already reported
    answers = _every_node(node, question, getattr(state_report, question))
    ids = [info["node_id"] for info in node.cluster_table] if node.cluster_table else [node.node_id]
    return [dict(row, node_id=ids[index]) for index, rows in answers for row in rows]


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
                raise_on_missing_output=True, _explain=False) -> list:
    return _filtered(_gather("actors"), filters, limit)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
               raise_on_missing_output=True, _explain=False) -> list:
    """The tasks that have not ended (pending or running), on every node."""
    return _filtered(_gather("tasks"), filters, limit)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30, detail=False,
               raise_on_missing_output=True, _explain=False) -> list:
    import mpiray

    rows = [{"node_id": n["NodeID"], "node_ip": n["NodeManagerAddress"], "state": "ALIVE",
             "node_name": n["NodeManagerHostname"], "resources_total": n["Resources"],
             "is_head_node": n["NodeIndex"] == 0} for n in mpiray.nodes()]
    return _filtered(rows, filters, limit)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=30,
                          detail=False, raise_on_missing_output=True, _explain=False) -> list:
    from mpiray.util.placement_group import placement_group_table

    rows = [{"placement_group_id": pg, "name": info["name"], "state": info["state"],
             "strategy": info["strategy"], "bundles": [info["bundles"][i] for i in sorted(info["bundles"])]}
            for pg, info in placement_group_table().items()]
    return _filtered(rows, filters, limit)


def get_actor(id: str, address=None, timeout=30, _explain=False):
    found = list_actors(filters=[("actor_id", "=", id)], limit=1)
    return found[0] if found else None


__all__ = ["get_actor", "list_actors", "list_nodes", "list_placement_groups", "list_tasks"]

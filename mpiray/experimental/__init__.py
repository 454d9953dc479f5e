"""ray.experimental: get_object_locations().

    get_object_locations(refs) ──► every node's held objects (state_report.objects, as
    list_objects gathers them) ──► {ref: {"node_ids": [nodes whose store has it],
                                          "object_size": bytes, "did_spill": bool}}
"""

from __future__ import annotations

import os


def get_object_locations(obj_refs, timeout_ms: int = -1) -> dict:
    """Where each object is: the ids of the nodes whose store holds a copy, its size in
    bytes, and whether it went to disk (known for the caller's node). An object not
    made yet is on no node (size None), as Ray's. timeout_ms is accepted for Ray's
    signature: the nodes answer at once."""
    from mpiray import api
    from mpiray.core import current
    from mpiray.object_ref import ObjectRef

    if current.runtime() is None:
        raise RuntimeError("Ray hasn't been initialized.")
    refs = list(obj_refs)
    for ref in refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"get_object_locations needs a list of ObjectRefs, got "
                            f"{type(ref).__name__}")
    node = current.node()
    ids = [info["node_id"] for info in node.cluster_table] if node is not None and \
        node.cluster_table else [(current.info() or {}).get("node_id")]
    wanted = {ref.binary().hex(): ref for ref in refs}
    found = {ref: {"node_ids": [], "object_size": None, "did_spill": False} for ref in refs}
    for index, rows in api._gathered("ray.experimental.get_object_locations", "objects"):
        for row in rows:
            ref = wanted.get(row["object_id"])
            if ref is None or row["object_size"] < 0:
                continue
            entry = found[ref]
            entry["node_ids"].append(ids[index])
            entry["object_size"] = row["object_size"]
    store = api._runtime().store
    for ref, entry in found.items():
        if entry["node_ids"]:
            entry["did_spill"] = os.path.exists(store.spill_path(ref.binary()))
    return found


__all__ = ["get_object_locations"]

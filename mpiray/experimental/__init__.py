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

    if current.runtime() is None:
        raise RuntimeError("Ray hasn't been initialized.")
    refs = _refs(obj_refs, "get_object_locations")
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


def get_local_object_locations(obj_refs) -> dict:
    """As get_object_locations, for the caller's node only (no other node is asked): its
    id and the object's size if its store holds a copy, else no node and size None."""
    from mpiray import api
    from mpiray.core import current

    if current.runtime() is None:
        raise RuntimeError("Ray hasn't been initialized.")
    refs = _refs(obj_refs, "get_local_object_locations")
    store = api._runtime().store
    here = (current.info() or {}).get("node_id")
    found = {}
    for ref in refs:
        try:
            size = store.size_of(ref.binary()) if store.contains(ref.binary()) else None
        except Exception:  # noqa: BLE001 - freed while we looked
            size = None
        found[ref] = {"node_ids": [here] if size is not None else [], "object_size": size,
                      "did_spill": size is not None and os.path.exists(store.spill_path(ref.binary()))}
    return found


def _refs(obj_refs, verb) -> list:
    from mpiray.object_ref import ObjectRef

    refs = list(obj_refs)
    for ref in refs:
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"{verb} needs a list of ObjectRefs, got {type(ref).__name__}")
    return refs


__all__ = ["get_local_object_locations", "get_object_locations"]

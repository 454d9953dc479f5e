"""Named actors: one registry per cluster, in the store of node 0 (the control store).

    process on node 0 (or single host) ──► node 0's store: put(name key) is atomic
    process on node k ──NAME_OP──► its scheduler ──("name_op")──► node 0's agent
                       ◄── reply object in node k's store ◄──("name_reply")──┘

A registration is a create of the name's key, which the store refuses when the key
exists, so two creators racing for one name cannot both win.
"""

from __future__ import annotations


from mpiray import _ids
from mpiray.core import actor_spec as A
from mpiray.core import protocol as P

REPLY_TIMEOUT_S = 60.0


def register(rt, name, namespace, entry) -> bool:
    """Claims name for entry (actor_id, class_name, methods); False if it is taken."""
    return ask(rt, "register", A.name_key(name, namespace), P.dumps(entry))


def lookup(rt, name, namespace):
    """(actor_id, class_name, methods) of the actor holding name, or None."""
    data = ask(rt, "lookup", A.name_key(name, namespace), None)
    return None if data is None else P.loads(data)


def ask(rt, op, key, value):
    """op on node 0's registry, from any process of any node (kv_store's way in too)."""
    if not rt.fetch_remote or _ids.this_node() == 0:
        return apply(rt.store, op, key, value)
    return rt.request((P.NAME_OP, op, key, value), REPLY_TIMEOUT_S,
                      "the actor name registry (node 0)")


def apply(store, op, key, value):
    """One registry operation on node 0's store."""
    if op == "register":
        try:
            store.put(key, value)
            return True
        except Exception:  # noqa: BLE001 - the store refuses a second create of one id
            if store.contains(key):
                return False
            raise
    if op == "lookup":
        buf = store.get(key, 0)
        if buf is None:
            return None
        data = bytes(buf)
        del buf
        return data
    if op == "delete":  # value: the actor id that must still hold the name
        buf = store.get(key, 0)
        if buf is not None and P.loads(buf)[0] == value:
            del buf
            try:
                store.delete(key)
            except KeyError:
                pass
        return None
    if op.startswith("kv_"):
        from mpiray.core import kv_store

        return kv_store.apply(store, op, key, value)
    raise ValueError(f"unknown name registry operation {op!r}")

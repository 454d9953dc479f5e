"""Ray's internal KV (ray.experimental.internal_kv): small byte values by key and
namespace, one store for the cluster, kept in node 0's object store beside the actor
name registry (core/actor_names.py carries the operations there from any node).

    _internal_kv_put(key, value) ──► actor_names.ask("kv_put") ──► node 0's store:
        object id = "KV" + hash(namespace)[:6] + hash(key)[:12], data = (key, value)
    _internal_kv_list(prefix) ──► the ids with the namespace's prefix ──► their keys
"""

from __future__ import annotations

import hashlib
import pickle

_TAG = b"KV"


def namespace_prefix(namespace: bytes) -> bytes:
    return _TAG + hashlib.sha1(b"kv-namespace\0" + namespace).digest()[:6]


def entry_id(namespace: bytes, key: bytes) -> bytes:
    return namespace_prefix(namespace) + hashlib.sha1(b"kv-key\0" + key).digest()[:12]


def _read(store, oid):
    buf = store.get(oid, 0)
    if buf is None:
        return None
    data = bytes(buf)
    del buf
    return pickle.loads(data)


def _delete(store, oid) -> bool:
    try:
        store.delete(oid)
        return True
    except KeyError:
        return False


def apply(store, op, key, value):
    """One operation on node 0's store: key is (namespace, key) as bytes."""
    namespace, name = key
    oid = entry_id(namespace, name)
    if op == "kv_get":
        found = _read(store, oid)
        return None if found is None else found[1]
    if op == "kv_exists":
        return store.contains(oid)
    if op == "kv_put":   # value: (bytes, overwrite); True if the key was there already
        data, overwrite = value
        existed = store.contains(oid)
        if existed and not overwrite:
            return True
        if existed:
            _delete(store, oid)
        store.put(oid, pickle.dumps((name, data)))
        return existed
    if op == "kv_del":   # value: by prefix; the number of keys deleted
        if not value:
            return int(_delete(store, oid))
        return sum(_delete(store, found) for found, entry in _entries(store, namespace)
                   if entry[0].startswith(name))
    if op == "kv_list":
        return [entry[0] for _, entry in _entries(store, namespace) if entry[0].startswith(name)]
    raise ValueError(f"unknown internal KV operation {op!r}")


def _entries(store, namespace):
    for oid in store.ids_with_prefix(namespace_prefix(namespace)):
        entry = _read(store, oid)
        if entry is not None:
            yield oid, entry

"""ray.experimental.internal_kv: Ray's cluster-wide key-value store for small values
(core/kv_store.py keeps it), as libraries on Ray use it: keys and values are bytes
(str is encoded), in a namespace (default: none)."""

from __future__ import annotations


def _bytes(what, x) -> bytes:
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"internal_kv {what} must be bytes or str, got {type(x).__name__}")


def _ask(op, key, namespace, value=None):
    from mpiray.core import actor_names, current

    rt = current.runtime()
    if rt is None:
        raise RuntimeError("Ray has not been started yet: call ray.init() before using "
                           "internal_kv")
    ns = b"" if namespace is None else _bytes("namespace", namespace)
    key = _bytes("key", key)
    if key.startswith(b"@namespace_"):   # (Ray's reserved prefix, and its error)
        raise RuntimeError(f"Key {key!r} is reserved: keys may not start with '@namespace_'")
    return actor_names.ask(rt, op, (ns, key), value)


def _internal_kv_initialized() -> bool:
    from mpiray.core import current

    return current.runtime() is not None


def _internal_kv_get(key, *, namespace=None):
    """The value stored under key, or None."""
    return _ask("kv_get", key, namespace)


def _internal_kv_exists(key, *, namespace=None) -> bool:
    return _ask("kv_exists", key, namespace)


def _internal_kv_put(key, value, overwrite: bool = True, *, namespace=None) -> bool:
    """Stores value under key (unless it is there and overwrite is False); True if the
    key was there already, as Ray's."""
    return _ask("kv_put", key, namespace, (_bytes("value", value), bool(overwrite)))


def _internal_kv_del(key, *, del_by_prefix: bool = False, namespace=None) -> int:
    """Deletes key (or every key starting with it); the number deleted."""
    return _ask("kv_del", key, namespace, bool(del_by_prefix))


def _internal_kv_list(prefix, *, namespace=None) -> list:
    """The keys starting with prefix."""
    return _ask("kv_list", prefix, namespace)


__all__ = ["_internal_kv_initialized", "_internal_kv_get", "_internal_kv_exists",
           "_internal_kv_put", "_internal_kv_del", "_internal_kv_list"]

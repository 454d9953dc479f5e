"""ray.util.inspect_serializability: which part of an object cannot be pickled.

    inspect(obj) ──cloudpickle.dumps──► fine: (True, set())
                   └─ fails ──► look inside: a function's globals and closure cells, an
                      object's attributes ──► the innermost parts that fail, as
                      FailureTuple(obj, name, parent)
"""

from __future__ import annotations

import inspect as _inspect
from collections import namedtuple

import cloudpickle

from mpiray.core import serialization_context

FailureTuple = namedtuple("FailureTuple", ["obj", "name", "parent"])


def _pickles(obj) -> bool:
    try:
        with serialization_context.collecting():   # (a trial: refs inside are not pinned)
            cloudpickle.dumps(obj)
        return True
    except Exception:  # noqa: BLE001 - any failure is the answer
        return False


def _parts(obj):
    """(name, value) of what obj is made of, as far as pickling goes."""
    if _inspect.isfunction(obj):
        closure = _inspect.getclosurevars(obj)
        yield from closure.globals.items()
        yield from closure.nonlocals.items()
        return
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        yield from attrs.items()


def inspect_serializability(base_obj, name=None, depth=3, print_file=None):
    """(True, set()) if base_obj pickles; else (False, {FailureTuple}) naming the
    innermost parts found (looking depth levels in) that do not, and a short report
    printed to print_file (stdout by default)."""
    name = name or getattr(base_obj, "__name__", type(base_obj).__name__)
    failures = set()
    ok = _inspect_one(base_obj, name, None, depth, failures, print_file, 0)
    return ok, failures


def _inspect_one(obj, name, parent, depth, failures, out, level) -> bool:
    if _pickles(obj):
        return True
    print(f"{'  ' * level}{name} ({type(obj).__name__}) cannot be serialized", file=out)
    found_inside = False
    if depth > 0:
        for part_name, part in _parts(obj):
            if not _inspect_one(part, part_name, obj, depth - 1, failures, out, level + 1):
                found_inside = True
    if not found_inside:
        failures.add(FailureTuple(_hashable(obj), name, _hashable(parent)))
    return False


def _hashable(obj):
    try:
        hash(obj)
        return obj
    except TypeError:
        return repr(obj)


__all__ = ["FailureTuple", "inspect_serializability"]

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

class FailureTuple(namedtuple("FailureTuple", ["obj", "name", "parent"])):
    """A part that does not pickle: what it is, its name, what holds it."""

    def __repr__(self):   # (Ray's)
        return f"FailTuple({self.name} [obj={self.obj}, parent={self.parent}])"


def _pickle_error(obj):
    """None if obj pickles, else what pickling it raised."""
    try:
        with serialization_context.collecting():   # (a trial: refs inside are not pinned)
            cloudpickle.dumps(obj)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return exc


def _parts(obj):
    """(name, value) of what obj is made of, as far as pickling goes."""
    if _inspect.isfunction(obj):
        closure = _inspect.getclosurevars(obj)
        yield from closure.globals.items()
        yield from closure.nonlocals.items()
        return
    if _inspect.isclass(obj):   # (its methods: what they use from outside)
        for name, member in vars(obj).items():
            if _inspect.isfunction(member):
                yield f"{obj.__qualname__}.{name}", member
        return
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        yield from attrs.items()


RULE = "=" * 80
TROUBLESHOOTING = ("Check https://docs.ray.io/en/master/ray-core/objects/serialization.html"
                   "#troubleshooting for more information.")


def inspect_serializability(base_obj, name=None, depth=3, print_file=None):
    """(True, set()) if base_obj pickles; else (False, {FailureTuple}) naming the
    innermost parts found (looking depth levels in) that do not, and a report, in the
    shape of Ray's, printed to print_file (stdout by default)."""
    name = name or getattr(base_obj, "__name__", type(base_obj).__name__)
    failures = set()
    lines = [RULE, f"Checking Serializability of {base_obj!r}", RULE]
    ok = _inspect_one(base_obj, name, None, depth, failures, lines, 0)
    if not ok:
        found = "\n".join(f"\t{f!r}" for f in sorted(failures, key=lambda f: f.name))
        lines += [RULE, f"Variable: \n\n{found}\n\nwas found to be non-serializable. There may "
                  f"be other non-serializable variables not detected.", RULE, TROUBLESHOOTING,
                  RULE]
    print("\n".join(lines), file=print_file)
    return ok, failures


def _inspect_one(obj, name, parent, depth, failures, lines, level) -> bool:
    error = _pickle_error(obj)
    if error is None:
        return True
    indent = "    " * level
    if level:
        lines.append(f"{indent}Serializing {name!r} {obj!r}...")
    lines.append(f"{indent}!!! FAIL serialization: {error}")
    found_inside = False
    if depth > 0:
        parts = list(_parts(obj))
        if _inspect.isfunction(obj):   # (Ray's words)
            lines.append(f"{indent}Detected {len(parts)} global variables. Checking serializability...")
        for part_name, part in parts:
            if not _inspect_one(part, part_name, obj, depth - 1, failures, lines, level + 1):
                found_inside = True
    if not found_inside:
        if level:
            lines.append(f"{indent}WARNING: Did not find non-serializable object in {obj!r}. "
                         "This may be an oversight.")
        failures.add(FailureTuple(_hashable(obj), name, _hashable(parent)))
    return False


def _hashable(obj):
    try:
        hash(obj)
        return obj
    except TypeError:
        return repr(obj)


__all__ = ["FailureTuple", "inspect_serializability"]

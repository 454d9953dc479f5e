"""Checking a remote call's arguments against the function's signature at .remote(),
as Ray does, so a wrong call fails where it is made instead of in a worker.

    RemoteFunction / ActorClass ──checker(fn)──► (exact count, check) once
    every .remote(): exactly that many positional arguments? done (inline) ; else
    check(args, kwargs): counts and names (~0.2 us), and for a call that fails them
    inspect.Signature.bind, which raises Python's own TypeError

    actor methods: shape(method) ──in the handle's method table (travels with every
    handle, a few bytes)──► checker_of_shape(shape) in whichever process calls it
"""

from __future__ import annotations

import inspect

_P = inspect.Parameter
_KINDS = {int(k): k for k in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD, _P.VAR_POSITIONAL,
                              _P.KEYWORD_ONLY, _P.VAR_KEYWORD)}
_of_shape = {}   # shape -> (exact, check): one per method of a class, not per handle


def checker(fn):
    """(exact, check): a call with exactly `exact` positional arguments and no keywords
    fits fn (-1: fn is not a plain f(a, b, ...)), which callers test inline on their hot
    path; check(args, kwargs) judges any other call, raising Python's TypeError. check
    is None where the signature cannot be read (builtins): then nothing is checked."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return -1, None
    return _checker_of(sig)


def shape(fn, bound: bool):
    """A picklable description of fn's parameters, (name, kind, has a default) each, the
    first one dropped when bound (a method's `self`); None where it cannot be read."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if bound and params and params[0].kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return tuple((p.name, int(p.kind), p.default is not _P.empty) for p in params)


def checker_of_shape(described):
    """(exact, check) as checker() gives, from a shape()."""
    if described is None:
        return -1, None
    found = _of_shape.get(described)
    if found is None:
        # A default's value does not matter to binding, only that there is one.
        found = _of_shape[described] = _checker_of(inspect.Signature(
            [_P(name, _KINDS[kind], default=None if has_default else _P.empty)
             for name, kind, has_default in described]))
    return found


def _checker_of(sig):
    params = list(sig.parameters.values())
    kinds = {p.kind for p in params}
    max_pos = float("inf") if _P.VAR_POSITIONAL in kinds else sum(
        p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) for p in params)
    any_kw = _P.VAR_KEYWORD in kinds
    names = {p.name for p in params if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)}
    positional = [p.name for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    # (name, or None for a positional-only one: a keyword cannot stand for it)
    required_pos = [(i, p.name if p.kind == _P.POSITIONAL_OR_KEYWORD else None)
                    for i, p in enumerate(params)
                    if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) and p.default is _P.empty]
    required_kw = [p.name for p in params if p.kind == _P.KEYWORD_ONLY and p.default is _P.empty]
    plain = all(p.kind == _P.POSITIONAL_OR_KEYWORD and p.default is _P.empty for p in params)
    return (len(params) if plain else -1,
            _general(sig, max_pos, any_kw, names, positional, required_pos, required_kw))


def _general(sig, max_pos, any_kw, names, positional, required_pos, required_kw):
    def check(args, kwargs):
        n = len(args)
        ok = n <= max_pos
        if ok and kwargs:
            if not any_kw and not names.issuperset(kwargs):
                ok = False
            elif any(name in kwargs for name in positional[:n]):
                ok = False   # given twice
        if ok:
            for i, name in required_pos:
                if i >= n and (name is None or name not in kwargs):
                    ok = False
                    break
        if ok and required_kw:
            ok = all(name in kwargs for name in required_kw)
        if not ok:
            sig.bind(*args, **kwargs)   # raises Python's TypeError naming the problem

    return check

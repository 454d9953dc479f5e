"""Checking a remote call's arguments against the function's signature at .remote(),
as Ray does, so a wrong call fails where it is made instead of in a worker.

    RemoteFunction / ActorClass ──checker(fn)──► check(args, kwargs) on every .remote()
    fast path: counts and names only (~0.2 us); a call that fails it goes to
    inspect.Signature.bind, which raises Python's own TypeError
"""

from __future__ import annotations

import inspect

_P = inspect.Parameter


def checker(fn):
    """check(args, kwargs), or None where the signature cannot be read (builtins)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
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
    check = _general(sig, max_pos, any_kw, names, positional, required_pos, required_kw)

    if all(p.kind == _P.POSITIONAL_OR_KEYWORD and p.default is _P.empty for p in params):
        exact = len(params)   # (the commonest: f(a, b) called as f.remote(x, y))

        def check_exact(args, kwargs):
            if kwargs or len(args) != exact:
                check(args, kwargs)

        return check_exact

    return check


def exact_count(fn) -> int:
    """How many arguments fn takes when it is a plain f(a, b, ...) (no defaults, no *,
    no keyword-only), else -1: a call with exactly that many positional arguments and no
    keywords needs no further check."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return -1
    if all(p.kind == _P.POSITIONAL_OR_KEYWORD and p.default is _P.empty for p in params):
        return len(params)
    return -1


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

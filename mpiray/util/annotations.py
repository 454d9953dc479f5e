"""ray.util.annotations: Ray's API-stability decorators. Each notes the stability in the
object's docstring, as Ray's do; Deprecated(warning=True) also warns when it is used."""

from __future__ import annotations

import functools
import inspect
import warnings


class RayDeprecationWarning(DeprecationWarning):
    """What a deprecated Ray API warns with (a DeprecationWarning)."""


_STABILITY = {
    "stable": "PublicAPI: This API is stable across Ray releases.",
    "beta": "PublicAPI (beta): This API is in beta and may change before becoming stable.",
    "alpha": "PublicAPI (alpha): This API is in alpha and may change before becoming stable.",
}


def PublicAPI(*args, stability: str = "stable", api_group: str = "Others"):
    """@PublicAPI or @PublicAPI(stability="beta" | "alpha")."""
    if len(args) == 1 and callable(args[0]):
        return _noted(args[0], _STABILITY["stable"])
    if args:
        raise TypeError(f"PublicAPI takes keyword arguments only, got {args!r}")
    if stability not in _STABILITY:
        raise ValueError(f"PublicAPI stability must be one of {list(_STABILITY)}, got {stability!r}")
    return lambda obj: _noted(obj, _STABILITY[stability])


def DeveloperAPI(*args):
    """@DeveloperAPI or @DeveloperAPI()."""
    note = "DeveloperAPI: This API may change across minor Ray releases."
    if len(args) == 1 and callable(args[0]):
        return _noted(args[0], note)
    if args:
        raise TypeError(f"DeveloperAPI takes no arguments, got {args!r}")
    return lambda obj: _noted(obj, note)


def Deprecated(*args, message: str = "", warning: bool = False):
    """@Deprecated or @Deprecated(message=..., warning=True): the docstring says so, and
    with warning=True each use warns (RayDeprecationWarning; Python shows it once per
    calling line unless its filters say otherwise)."""
    if len(args) == 1 and callable(args[0]):
        return Deprecated(message=message, warning=warning)(args[0])
    if args:
        raise TypeError(f"Deprecated takes keyword arguments only, got {args!r}")
    note = f"DEPRECATED: This API is deprecated and may be removed in future Ray releases. {message}"

    def mark(obj):
        if warning:
            obj = _warning_on_use(obj, note)
        return _noted(obj, note)

    return mark


def _warning_on_use(obj, note):
    def warn():
        warnings.warn(note, RayDeprecationWarning, stacklevel=3)

    if inspect.isclass(obj):
        init = obj.__init__

        @functools.wraps(init)
        def __init__(self, *a, **kw):
            warn()
            init(self, *a, **kw)

        obj.__init__ = __init__
        return obj

    @functools.wraps(obj)
    def wrapper(*a, **kw):
        warn()
        return obj(*a, **kw)

    return wrapper


def _noted(obj, note):
    """obj with note added to its docstring (kept as it is where that cannot be set)."""
    try:
        obj.__doc__ = (obj.__doc__ or "") + f"\n\n    {note}"
    except (AttributeError, TypeError):
        pass
    try:
        obj._annotated = note.split(":", 1)[0]
    except (AttributeError, TypeError):
        pass
    return obj


__all__ = ["Deprecated", "DeveloperAPI", "PublicAPI", "RayDeprecationWarning"]

"""ray.util.annotations: Ray's API-stability decorators, kept as markers (they change
nothing; code that marks its own API with them imports and runs)."""

from __future__ import annotations


def _marker(tag):
    def mark(*args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return _tagged(args[0], tag)
        return lambda obj: _tagged(obj, tag)
    mark.__name__ = tag
    return mark


def _tagged(obj, tag):
    try:
        obj._annotated = tag
    except (AttributeError, TypeError):
        pass
    return obj


PublicAPI = _marker("PublicAPI")
DeveloperAPI = _marker("DeveloperAPI")
Deprecated = _marker("Deprecated")
RayDeprecationWarning = DeprecationWarning

__all__ = ["Deprecated", "DeveloperAPI", "PublicAPI", "RayDeprecationWarning"]

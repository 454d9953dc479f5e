"""Ray's `ray._common` names that programs' tests import (test_utils)."""


def __getattr__(name):
    """Its modules as attributes, loaded on first use (`ray._private.test_utils.X`)."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

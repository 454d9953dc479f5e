"""Ray's `ray._private` names that programs use (internal_api.free, memory_summary)."""


def __getattr__(name):
    """Its modules as attributes, loaded on first use (`ray._private.test_utils.X`)."""
    import importlib

    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

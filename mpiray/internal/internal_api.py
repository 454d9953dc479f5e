"""ray.internal.internal_api: Ray's older path to ray._private.internal_api."""

from mpiray._private.internal_api import free, global_gc, memory_summary  # noqa: F401

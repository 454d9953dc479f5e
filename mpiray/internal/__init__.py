"""ray.internal: Ray's older home of free() (and ray.internal.internal_api)."""

from mpiray._private.internal_api import free

__all__ = ["free"]

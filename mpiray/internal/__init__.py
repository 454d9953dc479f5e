"""ray.internal: Ray's older home of free()."""

from mpiray._private.internal_api import free

__all__ = ["free"]

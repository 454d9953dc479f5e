"""ray.types: the ObjectRef type, for annotations (`from ray.types import ObjectRef`)."""

from mpiray.object_ref import ObjectRef

__all__ = ["ObjectRef"]

"""ray.util.serialization: custom serializers for classes pickle cannot handle (the same
functions as mpiray.util's; the module path is Ray's too)."""

from mpiray.serialization import deregister_serializer, register_serializer

__all__ = ["deregister_serializer", "register_serializer"]

"""ray.types: the types Ray's programs annotate with (`from ray.types import ObjectRef`)."""

from typing import Generic, TypeVar

from mpiray.object_ref import ObjectRef

T = TypeVar("T")


class StreamingObjectRefGeneratorType(Generic[T]):
    """What a generator task returns, for annotations: `StreamingObjectRefGeneratorType[int]`
    (the object itself is a mpiray.ObjectRefGenerator)."""


__all__ = ["ObjectRef", "StreamingObjectRefGeneratorType"]

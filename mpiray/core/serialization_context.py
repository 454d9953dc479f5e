"""Which ObjectRefs a value contained, recorded while it is pickled.

``ObjectRef.__reduce__`` calls ``record``; ``serialization.serialize`` opens a
context around one dump and hands the ids to the runtime, which makes the container
(a stored object, a task's arguments) hold those refs. Outside a context the process
itself holds the ref for good (Ray's out-of-band serialization).
"""

import os
import threading

_local = threading.local()


class collecting:
    """with collecting() as ids: pickle...  -> ids lists every ref pickled inside."""

    def __enter__(self):
        self.outer = getattr(_local, "ids", None)
        self.ids = []
        _local.ids = self.ids
        return self.ids

    def __exit__(self, *exc):
        _local.ids = self.outer
        return False


def record(oid: bytes, pin_out_of_band: bool = True) -> None:
    """Notes oid in the container being pickled; an ObjectRef pickled outside any (pickle
    or ray.cloudpickle called by the user: "out of band") is held for the rest of this
    process's life instead, as Ray pins it, so the copy can always be read back (an actor
    handle is not: as in Ray, a copy does not keep its actor alive)."""
    ids = getattr(_local, "ids", None)
    if ids is not None:
        ids.append(oid)
    elif pin_out_of_band:
        if getattr(_local, "user_pickling", False) and \
                os.environ.get("RAY_allow_out_of_band_object_ref_serialization", "1").lower() in ("0", "false"):
            from mpiray.exceptions import OufOfBandObjectRefSerializationException

            raise OufOfBandObjectRefSerializationException(
                f"It is not allowed to serialize ray.ObjectRef {oid.hex()}. If you want to allow "
                "serialization, set `RAY_allow_out_of_band_object_ref_serialization=1.` If you set "
                "the env var, the object is pinned forever in the lifetime of the worker process "
                "and can cause Ray object leaks.")
        from mpiray.core import refcount

        refcount.pin(oid)


class user_pickling:
    """with user_pickling(): ray.cloudpickle.dumps(...) -- the user's own pickling, where
    Ray checks RAY_allow_out_of_band_object_ref_serialization (plain pickle is not)."""

    def __enter__(self):
        self.outer = getattr(_local, "user_pickling", False)
        _local.user_pickling = True

    def __exit__(self, *exc):
        _local.user_pickling = self.outer
        return False

"""Names Ray's docs import from `ray._raylet` (`from ray._raylet import ObjectRefGenerator`)."""

from mpiray.generators import ObjectRefGenerator  # noqa: F401
from mpiray.object_ref import ObjectRef  # noqa: F401

StreamingObjectRefGenerator = ObjectRefGenerator   # (Ray keeps the old name too)

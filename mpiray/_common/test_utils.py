"""`ray._common.test_utils`: where newer Ray keeps its test helpers (mpiray._private.test_utils)."""

from mpiray._private.test_utils import (  # noqa: F401
    Semaphore, SignalActor, async_wait_for_condition, wait_for_condition,
)

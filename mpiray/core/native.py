"""The native core, imported in one place (the runtime's only door to C++)."""

from mpiray._native.queue import Queue, QueueClosed  # noqa: F401
from mpiray._native.store import Store  # noqa: F401

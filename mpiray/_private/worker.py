"""ray._private.worker: the names of Ray's worker module that programs and tests reach
for. `_unhandled_error_handler` is what an error nobody read is handed to when its last
ref goes (core/unhandled_errors.py); replacing it intercepts them, as in Ray.
`global_worker` answers the questions code asks of Ray's (mode, connected, ids)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def _unhandled_error_handler(e) -> None:
    logger.error("Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): %s", e)


class _GlobalWorker:
    @property
    def connected(self) -> bool:
        from mpiray.core import current

        return current.runtime() is not None

    @property
    def mode(self):
        """SCRIPT_MODE in the driver, WORKER_MODE in a task or actor's process, None
        without a runtime (Ray's values)."""
        from mpiray import SCRIPT_MODE, WORKER_MODE
        from mpiray.core import current

        rt = current.runtime()
        return None if rt is None else SCRIPT_MODE if rt.is_driver else WORKER_MODE

    @property
    def worker_id(self) -> bytes:
        from mpiray.runtime_context import get_runtime_context

        return bytes.fromhex(get_runtime_context().get_worker_id())

    @property
    def current_job_id(self):
        """The job's id; the nil id when not connected (this does not start Ray)."""
        import mpiray
        from mpiray.runtime_context import get_runtime_context

        if not mpiray.is_initialized():
            from mpiray.ids import JobID

            return JobID.nil()
        return get_runtime_context().job_id

    @property
    def node_ip_address(self) -> str:
        from mpiray.util.network import get_node_ip_address

        return get_node_ip_address()

    @property
    def namespace(self) -> str:
        from mpiray.runtime_context import get_runtime_context

        return get_runtime_context().namespace


global_worker = _GlobalWorker()

__all__ = ["global_worker"]

"""mpiray.util.multiprocessing.Pool: the stdlib Pool's API, each chunk a task."""

from mpiray.util.multiprocessing.pool import AsyncResult, Pool, TimeoutError

__all__ = ["Pool", "AsyncResult", "TimeoutError"]

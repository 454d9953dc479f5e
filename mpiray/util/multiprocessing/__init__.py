"""mpiray.util.multiprocessing.Pool: the stdlib Pool's API, each chunk a task (and, as
Ray's module does, the stdlib's JoinableQueue and TimeoutError under the same names)."""

from multiprocessing import JoinableQueue

from mpiray.util.multiprocessing.pool import AsyncResult, Pool, TimeoutError

__all__ = ["Pool", "AsyncResult", "TimeoutError", "JoinableQueue"]

# distutils: language = c++
"""The MPI thread's wait, without the GIL (see src/cpp/mpi_poll.h).

    poller = MpiPoller(mpi_function_address("MPI_Iprobe"), comm.handle, MPI.ANY_SOURCE, tag)
    poller.wait(timeout_s, nap_s)  -> MESSAGE | POKED | TIMEOUT      (MPI thread)
    poller.poke()                                                    (any thread)
"""
from libc.stdint cimport int64_t, intptr_t, uintptr_t
from libcpp.string cimport string

TIMEOUT, MESSAGE, POKED = 0, 1, 2


cdef extern from "mpi_poll.h" namespace "mpiray":
    cdef cppclass CMpiPoller "mpiray::MpiPoller":
        CMpiPoller(uintptr_t iprobe, intptr_t comm, int source, int tag)
        int wait(int64_t timeout_ns, int64_t nap_ns) nogil
        void poke() nogil
    int c_set_timer_slack_ns "mpiray::set_timer_slack_ns"(unsigned long ns) nogil


def mpi_function_address(name: str) -> int:
    """The address of an MPI function in the libmpi this process loaded (through mpi4py)."""
    import ctypes
    from mpi4py import MPI  # noqa: F401 - loads libmpi

    with open("/proc/self/maps") as maps:
        libs = sorted({line.split()[-1] for line in maps if "/libmpi" in line})
    for path in libs:
        try:
            return ctypes.cast(getattr(ctypes.CDLL(path), name), ctypes.c_void_p).value
        except (OSError, AttributeError):
            continue
    raise RuntimeError(f"{name} not found in the loaded MPI libraries {libs}")


def set_timer_slack_ns(unsigned long ns):
    """How late the calling thread's timed sleeps may end (Linux timer slack)."""
    if c_set_timer_slack_ns(ns) != 0:
        raise OSError("prctl(PR_SET_TIMERSLACK) failed")


cdef class MpiPoller:
    cdef CMpiPoller* _p
    cdef object _comm   # keeps the communicator (and so its handle) alive

    def __cinit__(self, uintptr_t iprobe, comm, int source, int tag):
        if iprobe == 0:
            raise ValueError("MpiPoller needs MPI_Iprobe's address")
        self._comm = comm
        self._p = new CMpiPoller(iprobe, <intptr_t><uintptr_t>comm.handle, source, tag)

    def __dealloc__(self):
        del self._p

    def wait(self, double timeout_s, double nap_s):
        """MESSAGE once a message is pending, POKED once poke() was called (since the
        last wait), else TIMEOUT after timeout_s; probes every nap_s meanwhile."""
        cdef int64_t t = <int64_t>(timeout_s * 1e9)
        cdef int64_t nap = <int64_t>(nap_s * 1e9)
        cdef int rc
        with nogil:
            rc = self._p.wait(t, nap)
        if rc < 0:
            raise RuntimeError(f"MPI_Iprobe failed with error code {-rc}")
        return rc

    def poke(self):
        self._p.poke()


cdef extern from "init_watchdog.h" namespace "mpiray":
    cdef cppclass CInitWatchdog "mpiray::InitWatchdog":
        void start(double timeout_s, string message, string prefix) nogil
        void stop() nogil

cdef CInitWatchdog _watchdog


def start_init_watchdog(double timeout_s, str message, str unlink_prefix):
    """Ends this process (exit status 1) unless stop_init_watchdog() is called within
    timeout_s: message goes to stderr, and the shared-memory files it maps whose path
    starts with unlink_prefix are unlinked first (src/cpp/init_watchdog.h). For a C call
    that blocks holding the GIL (MPI_Init)."""
    _watchdog.start(timeout_s, message.encode(), unlink_prefix.encode())


def stop_init_watchdog():
    with nogil:
        _watchdog.stop()

# distutils: language = c++
# distutils: sources = src/cpp/queue.cpp src/cpp/pingpong.cpp
"""A node's lock-free task queue in POSIX shared memory (src/cpp/queue.h, docs/queue.md).

    producer process                segment /mpiray-...-queue               consumer process
    q.push(b) --try_push (GIL)-->  [ring of fixed slots | consumer records]  --try_pop (GIL)--> bytes
          full? --push (nogil, futex sleep)            empty? --pop (nogil, futex sleep)

Each call tries the non-blocking C++ path first with the GIL held (no allocation beyond
the result) and releases the GIL only to wait. Payloads are any C-contiguous buffer
(bytes, bytearray, memoryview); results are bytes.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, malloc
from libcpp.string cimport string
from libcpp.vector cimport vector

import os

MAX_CONSUMERS = kMaxConsumers          # consumer record slots a queue may have
DEFAULT_CONSUMERS = kDefaultConsumers  # ... and has unless create() says
MAX_RECORD_ITEMS = kRecordItems        # most items one recorded pop_batch takes
SLOT_HEADER = kSlotHeader              # bytes of each slot not available to the payload

# Items one pop_batch call copies out per C++ call (a scratch buffer per Queue).
cdef int _CHUNK_BYTES = 1 << 17


class QueueClosed(Exception):
    """The queue was closed: push refused, or pop found it closed and drained."""


cdef int64_t _timeout_ns(object timeout) except? -2:
    if timeout is None:
        return -1
    cdef double t = timeout
    if not t >= 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
    return <int64_t>(t * 1e9)


cdef class Queue:
    """Handle on one queue segment; see docs/native-api.md for the contract."""

    cdef TaskQueue* _q
    cdef char* _buf          # scratch for pops made with the GIL held
    cdef uint32_t* _lens
    cdef int _chunk          # items _buf holds
    cdef readonly str name
    cdef readonly int capacity
    cdef readonly int max_payload
    cdef readonly int consumers   # recorded consumer slots: 0..consumers-1

    def __cinit__(self):
        self._q = NULL
        self._buf = NULL
        self._lens = NULL

    def __dealloc__(self):
        del self._q
        free(self._buf)
        free(self._lens)

    @staticmethod
    def create(str name, int capacity=1024, int slot_size=512, int consumers=kDefaultConsumers):
        """Create the segment (O_EXCL, mode 0600). FileExistsError if the name is taken.
        consumers: its recorded consumer slots (0..consumers-1), up to MAX_CONSUMERS."""
        if not 1 <= consumers <= kMaxConsumers:
            raise ValueError(f"consumers must be in 1..{kMaxConsumers}, got {consumers}")
        if not 1 <= capacity <= <int>kMaxCapacity:
            raise ValueError(f"capacity must be in 1..{kMaxCapacity}, got {capacity}")
        if not <int>kMinSlotSize <= slot_size <= <int>kMaxSlotSize or slot_size % 64:
            raise ValueError(f"slot_size must be a multiple of 64 in {kMinSlotSize}..{kMaxSlotSize}, got {slot_size}")
        cdef TaskQueue* q = NULL
        cdef int rc = TaskQueue.create(name.encode(), capacity, slot_size, &q, consumers)
        if rc:
            raise OSError(rc, os.strerror(rc), name)
        return Queue._wrap(q, name)

    @staticmethod
    def attach(str name):
        """Map an existing queue. FileNotFoundError if there is none of that name."""
        cdef TaskQueue* q = NULL
        cdef int rc = TaskQueue.attach(name.encode(), &q)
        if rc:
            raise OSError(rc, os.strerror(rc), name)
        return Queue._wrap(q, name)

    @staticmethod
    cdef Queue _wrap(TaskQueue* q, str name):
        cdef Queue self = Queue.__new__(Queue)
        self._q = q
        self.name = name
        self.capacity = q.capacity()
        self.max_payload = q.max_payload()
        self.consumers = q.consumers()
        self._chunk = max(kRecordItems, min(1024, _CHUNK_BYTES // self.max_payload))
        self._buf = <char*>malloc(<size_t>self._chunk * self.max_payload)
        self._lens = <uint32_t*>malloc(self._chunk * sizeof(uint32_t))
        if self._buf == NULL or self._lens == NULL:
            raise MemoryError()
        return self

    def __repr__(self):
        return f"Queue({self.name!r}, capacity={self.capacity}, max_payload={self.max_payload})"

    # -- the one error gate --------------------------------------------------------------

    cdef int _gate(self, QueueStatus st, Py_ssize_t size, int consumer) except -1:
        if st == QueueStatus.closed:
            raise QueueClosed(f"queue {self.name} is closed")
        if st == QueueStatus.too_big:
            raise ValueError(f"payload of {size} bytes does not fit a slot of queue {self.name}: "
                             f"max_payload is {self.max_payload} bytes (put larger data in the object store)")
        if st == QueueStatus.bad_consumer:
            raise ValueError(f"consumer must be in -1..{self.consumers - 1}, got {consumer}")
        return 0

    cdef inline int _check_consumer(self, int consumer, int lowest) except -1:
        if consumer < lowest or consumer >= self.consumers:
            raise ValueError(f"consumer must be in {lowest}..{self.consumers - 1}, got {consumer}")
        return 0

    # -- push ----------------------------------------------------------------------------

    cdef int _push(self, const char* p, Py_ssize_t n, object timeout) except -1:
        """1 if pushed, 0 on timeout."""
        if n > self.max_payload:
            self._gate(QueueStatus.too_big, n, 0)
        cdef QueueStatus st = self._q.try_push(p, <uint32_t>n)
        if st == QueueStatus.ok:
            return 1
        cdef int64_t t_ns
        if st == QueueStatus.would_block:
            t_ns = _timeout_ns(timeout)
            if t_ns == 0:
                return 0
            with nogil:
                st = self._q.push(p, <uint32_t>n, t_ns)
        self._gate(st, n, 0)
        return st == QueueStatus.ok

    def push(self, data, timeout=None):
        """Push one payload (bytes-like); waits while full. False on timeout."""
        cdef Py_buffer view
        if type(data) is bytes:
            return self._push(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), timeout) == 1
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._push(<const char*>view.buf, view.len, timeout) == 1
        finally:
            PyBuffer_Release(&view)

    def try_push(self, data):
        """Push without waiting: False if the queue is full."""
        return self.push(data, 0)

    def push_batch(self, items, timeout=None):
        """Push each payload of items in order, waiting while full (an mpiray addition).
        Returns how many were pushed: len(items) unless the timeout (per item) passed."""
        cdef int pushed = 0
        for data in items:
            if not self.push(data, timeout):
                break
            pushed += 1
        return pushed

    # -- pop -----------------------------------------------------------------------------

    def pop(self, timeout=None, int consumer=-1, double spin=0.0):
        """One payload, waiting while empty; None on timeout. QueueClosed once closed and drained.
        spin (seconds, recorded consumers only): poll this long before sleeping; pushes
        meanwhile pay no futex wake (the item usually follows within microseconds)."""
        cdef uint32_t n = 0
        cdef QueueStatus st = self._q.try_pop(self._buf, &n, consumer)
        if st == QueueStatus.ok:
            return PyBytes_FromStringAndSize(self._buf, n)
        if st != QueueStatus.would_block:
            self._gate(st, 0, consumer)
        cdef int64_t t_ns = _timeout_ns(timeout)
        if t_ns == 0:
            return None
        if spin < 0:
            raise ValueError(f"spin must be >= 0 seconds, got {spin}")
        cdef int64_t spin_ns = <int64_t>(spin * 1e9)
        # Not self._buf: another thread may use this handle while we wait without the GIL.
        cdef char* buf = <char*>malloc(self.max_payload)
        if buf == NULL:
            raise MemoryError()
        try:
            with nogil:
                st = self._q.pop(buf, &n, consumer, t_ns, spin_ns)
            if st == QueueStatus.ok:
                return PyBytes_FromStringAndSize(buf, n)
        finally:
            free(buf)
        self._gate(st, 0, consumer)
        return None

    def try_pop(self, int consumer=-1):
        """One payload without waiting, or None if the queue is empty."""
        return self.pop(0, consumer)

    def pop_batch(self, int max_items, timeout=None, int consumer=-1):
        """Up to max_items payloads: waits (up to timeout) for the first, takes the rest that
        are there. [] on timeout. A recorded batch (consumer >= 0) takes at most
        MAX_RECORD_ITEMS. QueueClosed once closed and drained."""
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self._check_consumer(consumer, -1)
        if consumer >= 0 and max_items > kRecordItems:
            max_items = kRecordItems
        cdef list out = []
        cdef int n = 0, k, want
        cdef QueueStatus st
        cdef int64_t t_ns
        cdef char* buf = NULL
        cdef uint32_t* lens = NULL
        want = min(max_items, self._chunk)
        st = self._q.pop_batch(self._buf, self._lens, want, consumer, 0, &n)
        if st == QueueStatus.timeout:
            t_ns = _timeout_ns(timeout)
            if t_ns == 0:
                return out
            buf = <char*>malloc(<size_t>want * self.max_payload)
            lens = <uint32_t*>malloc(want * sizeof(uint32_t))
            try:
                if buf == NULL or lens == NULL:
                    raise MemoryError()
                with nogil:
                    st = self._q.pop_batch(buf, lens, want, consumer, t_ns, &n)
                for k in range(n):
                    out.append(PyBytes_FromStringAndSize(buf + <size_t>k * self.max_payload, lens[k]))
            finally:
                free(buf)
                free(lens)
        else:
            for k in range(n):
                out.append(PyBytes_FromStringAndSize(self._buf + <size_t>k * self.max_payload, self._lens[k]))
        if st != QueueStatus.ok and st != QueueStatus.timeout:
            self._gate(st, 0, consumer)
        # Unrecorded: keep taking what is there, chunk by chunk (a recorded consumer may
        # not: each call would forget the items its record holds).
        while consumer < 0 and st == QueueStatus.ok and n == want and len(out) < max_items:
            want = min(max_items - len(out), self._chunk)
            st = self._q.pop_batch(self._buf, self._lens, want, consumer, 0, &n)
            if st != QueueStatus.ok:
                break
            for k in range(n):
                out.append(PyBytes_FromStringAndSize(self._buf + <size_t>k * self.max_payload, self._lens[k]))
        return out

    def populate(self):
        """Maps every slot page into this process now (see TaskQueue::populate_slots): for
        the busy node-wide queues, whose first pass round the ring would fault page by page."""
        with nogil:
            self._q.populate_slots()

    def wait_nonempty(self, timeout=None, int consumer=-1, double spin=0.0):
        """Waits until an item is there, without taking it: True, or False on timeout.
        spin: poll this long first as spinner `consumer` (see pop). QueueClosed once
        closed and drained."""
        cdef int64_t t_ns = _timeout_ns(timeout)
        cdef int64_t spin_ns = <int64_t>(spin * 1e9)
        cdef QueueStatus st
        if consumer >= self.consumers:
            self._check_consumer(consumer, -1)
        with nogil:
            st = self._q.wait_nonempty(t_ns, consumer, spin_ns)
        if st == QueueStatus.closed:
            self._gate(st, 0, 0)
        return st == QueueStatus.ok

    def mark_spinning(self, int consumer, bint on):
        """Marks consumer index `consumer` as polling this queue itself (on) or not (off):
        while marked, pushes wake no sleeping consumer. Unmarking wakes one if items
        are left. For short polls only (an mpiray addition)."""
        self._check_consumer(consumer, 0)
        self._q.mark_spinning(consumer, on)

    # -- consumer records ----------------------------------------------------------------

    def done(self, int consumer):
        """Consumer `consumer` finished what it popped last: its record forgets it."""
        self._check_consumer(consumer, 0)
        self._gate(self._q.done(consumer), 0, consumer)

    def recover(self, int consumer):
        """What dead consumer `consumer` popped but never finished ([] if nothing); clears it.
        Call only once that consumer's process is gone (at-least-once: see docs/queue.md)."""
        self._check_consumer(consumer, 0)
        cdef vector[string] items
        self._gate(self._q.recover(consumer, &items), 0, consumer)
        return [bytes(s) for s in items]

    def held_heads(self, int consumers, size_t head=64, int first=0):
        """The first `head` bytes of each item recorded consumers first..consumers-1 hold
        now (popped, not done): what is running, as a racy, read-only look."""
        cdef vector[string] items
        self._q.held_heads(consumers, head, &items, first)
        return [bytes(s) for s in items]

    def queued_heads(self, size_t head=64):
        """The first `head` bytes of each item waiting in the queue, oldest first (a racy,
        read-only look)."""
        cdef vector[string] items
        self._q.queued_heads(head, &items)
        return [bytes(s) for s in items]

    # -- lifecycle -----------------------------------------------------------------------

    def close(self):
        """Every blocked push/pop returns; later pushes raise QueueClosed, pops drain first."""
        self._q.close()

    @property
    def closed(self):
        return self._q.closed()

    def size(self):
        """A best-effort guess of the items in the queue (it races with both ends)."""
        return self._q.size()

    def destroy(self):
        """Unlink the segment (this and other handles stay usable until dropped)."""
        cdef int rc = TaskQueue.unlink(self.name.encode())
        if rc and rc != 2:  # ENOENT: destroyed already
            raise OSError(rc, os.strerror(rc), self.name)


def _set_test_kill_point(int point):
    """Test hook: this process SIGKILLs itself at kill point `point` of push/pop
    (1-5 pop, 11-13 push; see src/cpp/queue.cpp). 0 disables."""
    TaskQueue.set_test_kill_point(point)


def futex_pingpong_rtt_ns(int iters=20000):
    """Mean round trip in ns of a raw cross-process futex ping-pong (fork, no spinning)."""
    cdef double rtt
    with nogil:
        rtt = c_futex_pingpong_rtt_ns(iters)
    if rtt < 0:
        raise OSError("futex ping-pong could not fork")
    return rtt

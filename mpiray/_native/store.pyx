# distutils: language = c++
# distutils: sources = src/cpp/store.cpp src/cpp/store_alloc.cpp src/cpp/store_table.cpp src/cpp/store_segment.cpp src/cpp/store_spill.cpp
# cython: boundscheck=False, wraparound=False
"""The node's shared-memory object store (C++ in src/cpp/store*.{h,cpp}).

Every call that may sleep (a futex wait, a spill or restore, a big copy) releases the GIL.
Calls that never sleep (seal, release, delete, contains, a small put, a wait that finds
enough objects ready) keep it: they take well under a microsecond, and releasing the GIL
for them costs more than the call and hands the GIL to any other thread that wants it
(the node's scheduler thread), so two busy threads would trade it at every call. They may
still wait on the store mutex, which other processes hold only for a table update.

Buffers handed out (create_object, get) pin their object; the pin is released when the
buffer object is garbage-collected, i.e. when the last memoryview / numpy array made from
it is gone (ObjectBuffer.__dealloc__).
"""
import os

cimport cython

from cpython.buffer cimport PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer, PyBUF_ANY_CONTIGUOUS, PyBUF_WRITABLE
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_GET_SIZE
from libc.limits cimport INT_MAX
from cpython.memoryview cimport PyMemoryView_FromObject
from libc.stdint cimport uint8_t, uint64_t, int64_t
from libc.string cimport memcpy
from libcpp cimport bool as cbool
from libcpp.memory cimport unique_ptr
from libcpp.string cimport string
from libcpp.vector cimport vector

from mpiray.exceptions import ObjectStoreFullError

from mpiray._native.store cimport (
    copy_stream, ErrorInfo, LastError, ObjectHandle, SegmentBytes, Status, StoreClient, StoreStats, kObjectIdSize,
)

OBJECT_ID_SIZE = kObjectIdSize  # the one definition lives in src/cpp/store_layout.h

# Puts up to this size go through TryPut with the GIL held: one critical section, the copy
# (a few microseconds at most) inside it, no I/O.
cdef Py_ssize_t SMALL_PUT = 64 * 1024


class ObjectExistsError(RuntimeError):
    """create_object/put of an id that is already in the store."""


# ---------------------------------------------------------------- the one error gate

_EXCEPTIONS = {
    Status.kNotFound: KeyError,
    Status.kExists: ObjectExistsError,
    Status.kBadState: RuntimeError,
    Status.kNotPinned: RuntimeError,
    Status.kFull: ObjectStoreFullError,
    Status.kTooLarge: ValueError,
    Status.kInvalid: ValueError,
    Status.kTimeout: TimeoutError,
    Status.kSegmentExists: FileExistsError,
    Status.kNoSegment: FileNotFoundError,
    Status.kNotCreator: RuntimeError,
}


cdef int check(Status st) except -1:
    """Turns a C++ Status into the documented Python exception, with the C++ message."""
    if st == Status.kOk:
        return 0
    cdef const ErrorInfo* err = &LastError()
    msg = err.message.decode("utf-8", "replace")
    if st == Status.kIoError:
        raise OSError(err.sys_errno, msg)
    raise _EXCEPTIONS.get(st, RuntimeError)(msg)


cdef inline const uint8_t* id_ptr(object oid) except NULL:
    if not PyBytes_Check(oid) or PyBytes_GET_SIZE(oid) != <Py_ssize_t>kObjectIdSize:
        raise ValueError(f"object id must be bytes of length {kObjectIdSize}, got {oid!r:.60}")
    return <const uint8_t*>PyBytes_AS_STRING(oid)


cdef inline int count_ready(const cbool* ready, Py_ssize_t n) noexcept:
    cdef int count = 0
    cdef Py_ssize_t i
    for i in range(n):
        count += ready[i]
    return count


cdef inline int64_t timeout_ns(object timeout) except? -2:
    if timeout is None:
        return -1
    t = float(timeout)
    return 0 if t <= 0 else <int64_t>(t * 1e9)


# ---------------------------------------------------------------- helpers for the runtime

def copy_into(dest, Py_ssize_t offset, src) -> None:
    """Copies the bytes of src (a contiguous buffer) into the writable buffer dest at
    offset, without the GIL. From 2 MiB it uses streaming stores: about twice memcpy's
    speed into shared memory here for sizes memcpy itself does not stream (src/cpp/copy.h)."""
    cdef Py_buffer d
    cdef Py_buffer b
    PyObject_GetBuffer(dest, &d, PyBUF_WRITABLE)
    try:
        PyObject_GetBuffer(src, &b, PyBUF_ANY_CONTIGUOUS)
        try:
            if offset < 0 or offset + b.len > d.len:
                raise ValueError(f"{b.len} bytes at offset {offset} do not fit a buffer of {d.len}")
            with nogil:
                copy_stream(<char*>d.buf + offset, b.buf, <size_t>b.len)
        finally:
            PyBuffer_Release(&b)
    finally:
        PyBuffer_Release(&d)


def make_segment_name(session: str, kind: str) -> str:
    """'/mpiray-<uid>-<session>-<kind>': per user and per session, so jobs never collide."""
    for part in (session, kind):
        if not part or "/" in part or "\0" in part:
            raise ValueError(f"bad segment name part {part!r}")
    return f"/mpiray-{os.getuid()}-{session}-{kind}"


def default_capacity() -> int:
    """30% of physical memory, bounded by what /dev/shm has free (less metadata room)."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    vfs = os.statvfs("/dev/shm")
    shm_free = vfs.f_bavail * vfs.f_frsize
    cap = min(int(ram * 0.3), int(shm_free * 0.9))  # metadata is ~3% of the capacity
    while cap > 4096 and SegmentBytes(cap) > shm_free:
        cap = int(cap * 0.95)
    return cap // 4096 * 4096


def segment_bytes(capacity: int) -> int:
    """Bytes a store of this capacity takes in /dev/shm, metadata included."""
    return SegmentBytes(capacity)


# ---------------------------------------------------------------- buffers

# (no_gc_clear: a buffer freed by the cycle collector, a view of it held by a raised error's
# traceback say, would otherwise have its store cleared before __dealloc__ and stay pinned)
@cython.no_gc_clear
cdef class ObjectBuffer:
    """Exposes one pinned object through the buffer protocol; unpins in __dealloc__."""
    cdef Store store
    cdef ObjectHandle h
    cdef bint readonly

    def __getbuffer__(self, Py_buffer* view, int flags):
        PyBuffer_FillInfo(view, self, <void*>self.h.data, <Py_ssize_t>self.h.size, self.readonly, flags)

    def __dealloc__(self):
        if self.store is not None:
            self.store.release_handle(self.h)


cdef inline object wrap(Store store, ObjectHandle& h, bint readonly):
    cdef ObjectBuffer buf = ObjectBuffer.__new__(ObjectBuffer)
    buf.store = store
    buf.h = h
    buf.readonly = readonly
    store.live += 1
    return PyMemoryView_FromObject(buf)


# ---------------------------------------------------------------- the store

cdef class Store:
    """A client of one store segment (see docs/native-api.md, `mpiray._native.store`)."""
    cdef StoreClient* c
    cdef readonly str name
    cdef readonly uint64_t capacity
    cdef Py_ssize_t live      # buffers alive: the mapping must outlive them
    cdef bint closing

    @staticmethod
    def create(name: str, capacity: int, spill_dir: str, bint prefault=True):
        if capacity < 0:
            raise ValueError(f"negative capacity {capacity}")
        cdef unique_ptr[StoreClient] c
        # (several spill directories: one per line, objects spread over them by id)
        cdef string n = name.encode()
        cdef string d = "\n".join(os.path.abspath(p) for p in spill_dir.split("\n") if p).encode()
        cdef uint64_t cap = capacity
        cdef Status st
        with nogil:
            st = StoreClient.Create(n, cap, d, &c, prefault)
        check(st)
        return Store.wrap_client(c.release(), name)

    @staticmethod
    def attach(name: str):
        cdef unique_ptr[StoreClient] c
        cdef string n = name.encode()
        cdef Status st
        with nogil:
            st = StoreClient.Attach(n, &c)
        check(st)
        return Store.wrap_client(c.release(), name)

    @staticmethod
    cdef Store wrap_client(StoreClient* c, str name):
        cdef Store s = Store.__new__(Store)
        s.c = c
        s.name = name
        s.capacity = c.capacity()
        return s

    def __dealloc__(self):
        if self.c != NULL:
            del self.c
            self.c = NULL

    cdef inline StoreClient* client(self) except NULL:
        if self.closing:
            raise ValueError(f"store {self.name} is closed")
        return self.c

    cdef int release_handle(self, ObjectHandle& h) noexcept:
        # A stale handle (object aborted, client reaped) is not an error here: nothing to undo.
        # Never sleeps: keeps the GIL (see the module docstring).
        cdef StoreClient* c = self.c
        if c != NULL:
            c.Release(h)
        return self.unuse()

    # A call that sleeps without the GIL counts as a use of the mapping, as a live buffer
    # does: close() from another thread meanwhile (shutdown while a thread waits in get)
    # leaves the unmapping to the last use, instead of pulling the memory from under it.
    cdef inline void use(self) noexcept:
        self.live += 1

    cdef int unuse(self) noexcept:
        self.live -= 1
        if self.live == 0 and self.closing and self.c != NULL:
            del self.c
            self.c = NULL
        return 0

    def create_object(self, oid: bytes, size: int, bint user_data=False) -> memoryview:
        """user_data: a put or a return, refused when the object table is nearly full
        (its last entries are kept for errors and messages)."""
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        if size < 0:
            raise ValueError(f"negative object size {size}")
        cdef int64_t n = size
        cdef ObjectHandle h
        cdef Status st
        self.use()
        with nogil:
            st = c.CreateObject(id, n, &h, user_data)
        try:
            check(st)
            return wrap(self, h, False)   # (a use of its own, taken before ours ends)
        finally:
            self.unuse()

    def seal(self, oid: bytes) -> None:
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        check(c.Seal(id))

    def abort(self, oid: bytes) -> None:
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        check(c.Abort(id))

    def put(self, oid: bytes, data, bint user_data=False) -> None:
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        cdef Py_buffer view
        cdef Status st
        PyObject_GetBuffer(data, &view, PyBUF_ANY_CONTIGUOUS)
        try:
            st = Status.kFull
            if view.len <= SMALL_PUT:
                st = c.TryPut(id, view.buf, view.len, user_data)
            if st == Status.kFull:  # big, or room must be made by spilling: may sleep
                self.use()
                with nogil:
                    st = c.Put(id, view.buf, view.len, user_data)
                self.unuse()
        finally:
            PyBuffer_Release(&view)
        check(st)

    def get(self, oid: bytes, timeout=None):
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        cdef int64_t t = timeout_ns(timeout)
        cdef ObjectHandle h
        cdef Status st
        if t == 0:  # no sleep possible: skip the GIL round trip
            st = c.Get(id, 0, &h)
        else:
            self.use()
            with nogil:
                st = c.Get(id, t, &h)
            try:
                if st == Status.kTimeout:
                    return None
                if st == Status.kFull or st == Status.kTooLarge:
                    return self._read_spilled(oid, st)
                check(st)
                return wrap(self, h, True)   # (a use of its own, taken before ours ends)
            finally:
                self.unuse()
        if st == Status.kTimeout:
            return None
        if st == Status.kFull or st == Status.kTooLarge:   # (kTooLarge: adopted, bigger
            return self._read_spilled(oid, st)              # than the store could ever hold)
        check(st)
        return wrap(self, h, True)

    def _get_once(self, oid, Status full):
        cdef ObjectHandle h
        cdef Status st = self.client().Get(id_ptr(oid), 0, &h)
        if st == Status.kTimeout:
            return None
        check(st)
        return wrap(self, h, True)

    def _read_spilled(self, oid, Status full):
        """A spilled object that finds no room to come back (what holds the store is
        pinned: a get of more than it holds at once) is read from its spill file instead,
        mapped read-only and private, as Ray falls back to memory outside its store. The
        mapping outlives the file (the object's deletion, or a restore, unlinks it)."""
        import mmap

        cdef string path
        cdef uint64_t size = 0
        cdef Status st = self.client().SpillFileOf(id_ptr(oid), &path, &size)
        if st != Status.kOk:   # not spilled: full for another reason (its pins), say so
            check(full)
        try:
            fd = os.open(path.decode(), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:   # restored meanwhile: in the store now, or full again
            return self._get_once(oid, full)
        try:
            if size == 0:
                return memoryview(b"")
            mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        return memoryview(mapped)

    def release(self, oid: bytes) -> None:
        """Drops one pin this client holds on oid (normally a buffer's __dealloc__ does it)."""
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        check(c.ReleaseId(id))

    def contains(self, oid: bytes) -> bool:
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        return c.Contains(id)

    def error_seq(self) -> int:
        """How many error objects were sealed in this store so far (wraps at 2**32)."""
        return self.client().ErrorSeq()

    def ids_with_prefix(self, prefix: bytes) -> list:
        """Ids of the sealed (or spilled) objects whose id starts with prefix."""
        cdef StoreClient* c = self.client()
        cdef bytes p = bytes(prefix)
        cdef string found = c.IdsWithPrefix(<const uint8_t*>p, len(p))
        cdef bytes blob = found
        return [blob[i:i + kObjectIdSize] for i in range(0, len(blob), kObjectIdSize)]

    def wait(self, oids, int num_ready, timeout=None) -> list:
        self.client()   # a closed store says so before a bad id does
        cdef list seq = oids if type(oids) is list else list(oids)
        cdef int n = len(seq)
        cdef int i = 0
        cdef vector[uint8_t] packed = vector[uint8_t](max(n, 1) * kObjectIdSize)
        for oid in seq:
            memcpy(&packed[i * kObjectIdSize], id_ptr(oid), kObjectIdSize)
            i += 1
        cdef vector[uint8_t] ready = vector[uint8_t](max(n, 1))
        self.wait_packed(packed.data(), n, num_ready, timeout, <cbool*>ready.data())
        return [ready[i] != 0 for i in range(n)]

    def wait_ids(self, bytes ids, int num_ready, timeout, bytearray ready) -> int:
        """wait() for ids packed end to end (mpiray._native.reflist): sets ready[i] to 1 or 0
        for each id, and returns how many are ready."""
        cdef Py_ssize_t n = len(ids) // kObjectIdSize
        if len(ids) != n * <Py_ssize_t>kObjectIdSize or len(ready) != n:
            raise ValueError(f"{len(ids)} bytes of ids and {len(ready)} flags do not match "
                             f"({kObjectIdSize} bytes an id)")
        cdef cbool dummy
        cdef cbool* flags = <cbool*>PyByteArray_AS_STRING(ready) if n else &dummy
        return self.wait_packed(<const uint8_t*>PyBytes_AS_STRING(ids), n, num_ready, timeout, flags)

    cdef int wait_packed(self, const uint8_t* ids, Py_ssize_t n, int num_ready, timeout,
                         cbool* ready) except -1:
        """The ready count, with ready[i] set per id."""
        cdef StoreClient* c = self.client()
        if n > INT_MAX:
            raise ValueError(f"cannot wait on {n} objects at once")
        cdef int64_t t = timeout_ns(timeout)
        # A first look with the GIL held (never sleeps); sleep without it only if needed.
        cdef Status st = c.Wait(ids, <int>n, num_ready, 0, ready)
        check(st)
        cdef int count = count_ready(ready, n)
        if t == 0 or count >= num_ready:
            return count
        # Without the GIL, another thread may resize the caller's buffers: sleep on copies.
        cdef vector[uint8_t] own_ids
        own_ids.assign(ids, ids + n * kObjectIdSize)
        cdef vector[uint8_t] flags = vector[uint8_t](max(n, 1))
        self.use()
        with nogil:
            st = c.Wait(own_ids.data(), <int>n, num_ready, t, <cbool*>flags.data())
        self.unuse()
        check(st)
        memcpy(ready, flags.data(), n)
        return count_ready(ready, n)

    def delete(self, oid: bytes, bint keep_unread_error=False) -> bool:
        """Removes oid (KeyError if absent). keep_unread_error: a task's error that no get
        has read stays, and False is returned (its owner reports it, then deletes it)."""
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        cdef Status st = c.Delete(id, keep_unread_error)
        if st == Status.kUnreadError:
            return False
        check(st)
        return True

    def is_unread_error(self, oid: bytes) -> bool:
        """True if oid is a task's error no get has read (what delete(keep_unread_error)
        keeps); False if absent."""
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        cdef bint unread
        with nogil:
            unread = c.IsUnreadError(id)
        return unread

    def spill_path(self, oid: bytes) -> str:
        """Where oid's bytes go when it is spilled (see adopt_spilled)."""
        return self.client().SpillPathOf(id_ptr(oid)).decode()

    def adopt_spilled(self, oid: bytes, size: int) -> None:
        """Publishes oid as spilled: its size bytes are in spill_path(oid) already (an
        object that found no room in memory lives on disk; a get restores it or reads it
        from there). FileExistsError if oid exists; ObjectStoreFullError if the table is."""
        check(self.client().AdoptSpilled(id_ptr(oid), size))

    def size_of(self, oid: bytes) -> int:
        cdef const uint8_t* id = id_ptr(oid)
        cdef StoreClient* c = self.client()
        cdef uint64_t size = 0
        check(c.SizeOf(id, &size))
        return size

    def stats(self) -> dict:
        cdef StoreClient* c = self.client()
        cdef StoreStats s
        self.use()
        with nogil:
            s = c.Stats()
        self.unuse()
        return {"capacity": s.capacity, "used": s.used, "pinned": s.pinned,
                "num_objects": s.num_objects, "num_spilled": s.num_spilled,
                "spilled_bytes": s.spilled_bytes, "spill_count": s.spill_count,
                "spilled_total_bytes": s.spilled_total_bytes, "spill_s": s.spill_ns / 1e9,
                "restored_total": s.restored_total,
                "restored_total_bytes": s.restored_total_bytes, "restore_s": s.restore_ns / 1e9}

    def reap_dead_clients(self) -> int:
        cdef StoreClient* c = self.client()
        cdef int n
        self.use()
        with nogil:
            n = c.ReapDeadClients()
        self.unuse()
        return n

    def close(self) -> None:
        """Detach. Buffers still alive keep the mapping (and their pins) until collected."""
        self.closing = True
        if self.live == 0 and self.c != NULL:
            with nogil:
                del self.c
            self.c = NULL

    def destroy(self) -> None:
        """Creator only: unlink the segment, remove the spill files, then close."""
        cdef StoreClient* c = self.client()
        cdef Status st
        with nogil:
            st = c.Destroy()
        check(st)
        self.close()

    def _test_hold_lock_forever(self) -> None:
        """Test hook: take the store mutex and never return (the test SIGKILLs us)."""
        cdef StoreClient* c = self.client()
        with nogil:
            c.TestHoldLockForever()

    def __repr__(self):
        return f"<Store {self.name} capacity={self.capacity}{' closed' if self.closing else ''}>"

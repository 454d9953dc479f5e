# distutils: language = c++
# cython: boundscheck=False, wraparound=False
"""Lists of ObjectRefs handled in C: their ids packed end to end for the store, and a list
split by the store's ready flags (ray.wait).

Lists of thousands of refs are common, and right after the refs' tasks ran, each ref and
each id (a bytes object) is a cache miss. A Python loop takes those misses one after the
other; the loop here prefetches a block of refs, then their ids, so the misses overlap.
It reads a ref's id straight from its `_id` slot (the offset its member descriptor gives),
without a getattr per ref; anything unusual (a subclass of ObjectRef, an id that is not
plain bytes, an item that is no ref) goes through a plain Python-level loop instead, which
raises the usual errors.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy
from libcpp.vector cimport vector

from mpiray._native.store cimport kObjectIdSize


cdef extern from "Python.h":
    ctypedef struct PyObject:
        pass
    ctypedef struct PyTypeObject:
        pass
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyTypeObject PyMemberDescr_Type
    PyTypeObject PyBytes_Type
    PyTypeObject* Py_TYPE_of "Py_TYPE"(PyObject*)
    Py_ssize_t Py_SIZE_of "Py_SIZE"(PyObject*)
    char* bytes_data "PyBytes_AS_STRING"(PyObject*)
    void incref "Py_INCREF"(PyObject*)
    PyObject** PySequence_Fast_ITEMS(object)
    bint PyList_Check(object)
    bint PyTuple_Check(object)
    bint PyByteArray_Check(object)
    char* PyByteArray_AS_STRING(object)
    Py_ssize_t PyByteArray_GET_SIZE(object)
    list PyList_New(Py_ssize_t)
    void list_set "PyList_SET_ITEM"(list, Py_ssize_t, PyObject*)  # steals the reference
    bytes PyBytes_FromStringAndSize(const char*, Py_ssize_t)

cdef extern from "structmember.h":
    int T_OBJECT_EX

cdef extern from *:
    void prefetch "__builtin_prefetch"(const void*) noexcept nogil


# How many refs ahead of the copy the loads are started (see RefLists.pack_fast).
cdef enum:
    AHEAD = 16
    ID_SIZE = 20   # kObjectIdSize, checked at import: a compile-time size makes memcpy inline

if kObjectIdSize != ID_SIZE:
    raise ImportError(f"reflist built for {ID_SIZE}-byte ids, the store uses {kObjectIdSize}")


cdef inline uint64_t hash_id(const uint8_t* p) noexcept nogil:
    # Ids of one process differ only in their last 12 bytes (counter, index): the index is
    # multiplied up so that it cannot cancel the counter out, then one splitmix64 finalizer
    # spreads the bits. (A collision only costs a memcmp.)
    cdef uint64_t a, b
    cdef uint32_t c
    memcpy(&a, p, 8)
    memcpy(&b, p + 8, 8)
    memcpy(&c, p + 16, 4)
    cdef uint64_t x = a ^ b ^ (c * <uint64_t>0x9e3779b97f4a7c15)
    x ^= x >> 30
    x *= <uint64_t>0xbf58476d1ce4e5b9
    x ^= x >> 27
    x *= <uint64_t>0x94d049bb133111eb
    return x ^ (x >> 31)


cdef inline void prefetch_ref(PyObject* r, Py_ssize_t off) noexcept:
    prefetch(r)                  # the header (its type) and the `_id` slot
    prefetch(<char*>r + off)     # may sit on two cache lines


cdef inline bint prefetch_id(PyObject* r, PyTypeObject* ref_type, Py_ssize_t off) noexcept:
    """Whether r is an exact ObjectRef with its id set; if so, starts loading the id."""
    if Py_TYPE_of(r) != ref_type:
        return False
    cdef PyObject* oid = (<PyObject**>(<char*>r + off))[0]
    if oid == NULL:
        return False
    prefetch(oid)
    prefetch(bytes_data(oid) + ID_SIZE - 1)   # the bytes may straddle two lines
    return True


cdef int has_duplicates(const uint8_t* ids, Py_ssize_t n) except -1:
    """Whether two of n packed ids are equal: an open-addressing table of indexes, no Python
    objects (a set of 1,000 bytes objects costs ~10x more, most of it cache misses)."""
    cdef Py_ssize_t cap = 16
    while cap < 2 * n:
        cap <<= 1
    cdef vector[uint32_t] slots = vector[uint32_t](cap)   # index + 1; 0 = empty
    cdef uint64_t mask = cap - 1
    cdef uint64_t h
    cdef Py_ssize_t i
    cdef const uint8_t* p
    for i in range(n):
        p = ids + i * ID_SIZE
        h = hash_id(p) & mask
        while slots[h] != 0:
            if memcmp(ids + (slots[h] - 1) * ID_SIZE, p, ID_SIZE) == 0:
                return 1
            h = (h + 1) & mask
        slots[h] = <uint32_t>(i + 1)
    return 0


cdef class RefLists:
    """Where the ObjectRef class keeps an instance's id, looked up once."""
    cdef type ref_type
    cdef Py_ssize_t id_offset   # of the `_id` slot in an instance; -1: not a plain slot

    def __init__(self, type ref_type):
        self.ref_type = ref_type
        self.id_offset = -1
        descr = ref_type.__dict__.get("_id")
        if descr is not None and Py_TYPE_of(<PyObject*>descr) == &PyMemberDescr_Type:
            if (<PyMemberDescrObject*>descr).d_member.type == T_OBJECT_EX:
                self.id_offset = (<PyMemberDescrObject*>descr).d_member.offset

    def pack(self, refs, str verb, bint unique=False) -> bytes:
        """The ids of refs (a list or tuple), end to end. TypeError if an item is not an
        ObjectRef; then, if unique, ValueError if two refs are equal (same id)."""
        cdef Py_ssize_t n = len(refs)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n * ID_SIZE)
        cdef uint8_t* dst = <uint8_t*>bytes_data(<PyObject*>out)
        if not (PyList_Check(refs) or PyTuple_Check(refs)) or not self.pack_fast(refs, n, dst):
            self.pack_slow(refs, n, dst, verb)
        if unique and has_duplicates(dst, n):
            raise ValueError(f"{verb}() requires a list of unique ObjectRefs")
        return out

    cdef bint pack_fast(self, seq, Py_ssize_t n, uint8_t* dst) noexcept:
        """Copies the ids if every item is an exact ObjectRef holding a plain id, else False.
        Runs no Python code, so the borrowed items stay valid throughout.

        A pipeline: while the id of ref i is copied, the id object of ref i + AHEAD and
        ref i + 2 * AHEAD itself are on their way from memory."""
        cdef Py_ssize_t off = self.id_offset
        if off < 0:
            return False
        cdef PyObject** items = PySequence_Fast_ITEMS(seq)
        cdef PyTypeObject* ref_type = <PyTypeObject*>self.ref_type
        cdef PyObject* r
        cdef PyObject* oid
        cdef Py_ssize_t i, j
        for i in range(min(n, 2 * AHEAD)):
            prefetch_ref(items[i], off)
        for i in range(min(n, AHEAD)):
            if not prefetch_id(items[i], ref_type, off):
                return False
        for i in range(n):
            j = i + 2 * AHEAD
            if j < n:
                prefetch_ref(items[j], off)
            j = i + AHEAD
            if j < n and not prefetch_id(items[j], ref_type, off):
                return False
            oid = (<PyObject**>(<char*>items[i] + off))[0]   # checked by prefetch_id
            if Py_TYPE_of(oid) != &PyBytes_Type or Py_SIZE_of(oid) != ID_SIZE:
                return False
            memcpy(dst + i * ID_SIZE, bytes_data(oid), ID_SIZE)
        return True

    cdef int pack_slow(self, seq, Py_ssize_t n, uint8_t* dst, str verb) except -1:
        """The same in Python terms, with its errors: every item's type before any id."""
        for r in seq:
            if not isinstance(r, self.ref_type):
                raise TypeError(f"{verb}() expects a list of ObjectRefs; it holds a {type(r).__name__}")
        cdef Py_ssize_t i
        for i in range(n):
            oid = seq[i]._id   # indexing, not a saved pointer: a getattr may run Python code
            if not isinstance(oid, bytes) or len(oid) != ID_SIZE:
                raise ValueError(f"object id must be bytes of length {ID_SIZE}, got {oid!r:.60}")
            memcpy(dst + i * ID_SIZE, <const char*>oid, ID_SIZE)
        return 0

    def split(self, refs, bytearray ready, Py_ssize_t num_returns) -> tuple:
        """(ready refs, other refs), each in the order of refs (a list or tuple): ready[i]
        nonzero marks refs[i] ready, and only the first num_returns such refs count."""
        if not (PyList_Check(refs) or PyTuple_Check(refs)):
            refs = list(refs)
        # The list may have changed while wait() slept without the GIL: never read past it.
        cdef Py_ssize_t n = min(len(refs), PyByteArray_GET_SIZE(ready))
        cdef const uint8_t* flags = <const uint8_t*>PyByteArray_AS_STRING(ready)
        cdef Py_ssize_t i, k = 0
        for i in range(n):
            k += flags[i] != 0
        k = min(k, max(num_returns, 0))
        cdef list done = PyList_New(k)
        cdef list pending = PyList_New(n - k)
        cdef PyObject** items = PySequence_Fast_ITEMS(refs)
        cdef Py_ssize_t d = 0, p = 0
        for i in range(n):
            incref(items[i])
            if flags[i] and d < k:
                list_set(done, d, items[i])
                d += 1
            else:
                list_set(pending, p, items[i])
                p += 1
        return done, pending

# Declarations only: the C++ store API of src/cpp/store.h (logic lives in store.pyx).
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libcpp cimport bool
from libcpp.memory cimport unique_ptr
from libcpp.string cimport string


cdef extern from "store.h" namespace "mpiray::store" nogil:
    const size_t kObjectIdSize
    const uint32_t kMaxClients

    cdef enum class Status(int):
        kOk
        kNotFound
        kExists
        kBadState
        kNotPinned
        kFull
        kTooLarge
        kInvalid
        kTimeout
        kSegmentExists
        kNoSegment
        kIoError
        kNotCreator
        kUnreadError

    cdef cppclass ErrorInfo:
        string message
        int sys_errno

    const ErrorInfo& LastError()
    uint64_t SegmentBytes(uint64_t capacity)

    cdef cppclass ObjectHandle:
        uint32_t entry
        uint32_t gen
        uint8_t* data
        uint64_t size

    cdef cppclass StoreStats:
        uint64_t capacity, used, pinned, num_objects, num_spilled, spilled_bytes, spill_count
        uint64_t spilled_total_bytes, spill_ns, restored_total, restored_total_bytes, restore_ns

    cdef cppclass StoreClient:
        @staticmethod
        Status Create(const string& name, uint64_t capacity, const string& spill_dir,
                      unique_ptr[StoreClient]* out, bint prefault)
        @staticmethod
        Status Attach(const string& name, unique_ptr[StoreClient]* out)
        Status CreateObject(const uint8_t* id, int64_t size, ObjectHandle* out, bool user_data)
        Status Seal(const uint8_t* id)
        Status Abort(const uint8_t* id)
        Status Put(const uint8_t* id, const void* data, int64_t size, bool user_data)
        Status TryPut(const uint8_t* id, const void* data, int64_t size, bool user_data)
        Status Get(const uint8_t* id, int64_t timeout_ns, ObjectHandle* out)
        Status Release(const ObjectHandle& h)
        Status ReleaseId(const uint8_t* id)
        bool Contains(const uint8_t* id)
        string IdsWithPrefix(const uint8_t* prefix, size_t n)
        Status Wait(const uint8_t* ids, int n, int num_ready, int64_t timeout_ns, bool* ready)
        Status Delete(const uint8_t* id, bool keep_unread_error)
        bool IsUnreadError(const uint8_t* id)
        Status SizeOf(const uint8_t* id, uint64_t* size)
        StoreStats Stats()
        uint32_t ErrorSeq()
        Status SpillFileOf(const uint8_t* id, string* path, uint64_t* size)
        string SpillPathOf(const uint8_t* id)
        Status AdoptSpilled(const uint8_t* id, int64_t size)
        int ReapDeadClients()
        Status Destroy()
        uint64_t capacity()
        int client_slot()
        void TestHoldLockForever()


cdef extern from "copy.h" namespace "mpiray" nogil:
    void copy_stream(void* dst, const void* src, size_t n)

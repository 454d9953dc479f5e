# Declarations of src/cpp/queue.h and src/cpp/pingpong.h; logic lives in queue.pyx.
from libc.stdint cimport int64_t, uint32_t
from libcpp.string cimport string
from libcpp.vector cimport vector


cdef extern from "queue.h" namespace "mpiray" nogil:
    cdef enum class QueueStatus(int):
        ok
        would_block
        timeout
        closed
        too_big
        bad_consumer

    cdef cppclass TaskQueue:
        @staticmethod
        int create(const string& name, uint32_t capacity, uint32_t slot_size, TaskQueue** out, int consumers)
        @staticmethod
        int attach(const string& name, TaskQueue** out)
        @staticmethod
        int unlink(const string& name)
        @staticmethod
        void set_test_kill_point(int point)

        uint32_t capacity()
        uint32_t slot_size()
        uint32_t max_payload()
        int consumers()
        QueueStatus try_push(const void* data, uint32_t length)
        QueueStatus push(const void* data, uint32_t length, int64_t timeout_ns)
        QueueStatus try_pop(void* out, uint32_t* length, int consumer)
        QueueStatus pop(void* out, uint32_t* length, int consumer, int64_t timeout_ns, int64_t spin_ns)
        QueueStatus pop_batch(void* out, uint32_t* lengths, int max_items, int consumer, int64_t timeout_ns, int* n)
        QueueStatus done(int consumer)
        void mark_spinning(int consumer, bint on)
        QueueStatus wait_nonempty(int64_t timeout_ns, int consumer, int64_t spin_ns)
        QueueStatus recover(int consumer, vector[string]* items)
        void held_heads(int consumers, size_t head, vector[string]* out, int first)
        void queued_heads(size_t head, vector[string]* out)
        void populate_slots()
        void close()
        bint closed()
        size_t size()

    const int kMaxConsumers "mpiray::TaskQueue::kMaxConsumers"
    const int kDefaultConsumers "mpiray::TaskQueue::kDefaultConsumers"
    const int kRecordItems "mpiray::TaskQueue::kRecordItems"
    const int kSlotHeader "mpiray::TaskQueue::kSlotHeader"
    const int kMinSlotSize "mpiray::TaskQueue::kMinSlotSize"
    const int kMaxSlotSize "mpiray::TaskQueue::kMaxSlotSize"
    const int kMaxCapacity "mpiray::TaskQueue::kMaxCapacity"


cdef extern from "pingpong.h" namespace "mpiray" nogil:
    double c_futex_pingpong_rtt_ns "mpiray::futex_pingpong_rtt_ns"(int iters)

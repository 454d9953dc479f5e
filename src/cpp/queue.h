// A bounded multi-producer multi-consumer task queue in a POSIX shared-memory segment.
//
//   producers (any process)                    consumers (any process)
//        | push / try_push                           ^ pop / try_pop / pop_batch
//        v                                           |
//   head ticket --> [slot 0][slot 1] ... [slot cap-1] <-- tail ticket
//                      each slot: word (lap, phase, owner) | len | payload
//   not_empty eventcount: consumers sleep here while the slot at `tail` is not full
//   not_full  eventcount: producers sleep here while the slot at `head` is still taken
//   consumer records [0..kMaxConsumers): what a recorded consumer popped, for recover()
//
// Ticket/turn sequencing as in Vyukov's bounded queue and rigtorp's MPMCQueue: ticket t
// lives in slot t % capacity on lap t / capacity. Each slot's 64-bit word holds
// stage = 4*lap + phase (EMPTY, WRITING, FULL, READING) and an owner. Unlike rigtorp, a
// ticket is claimed by a CAS on the *slot word* (EMPTY->WRITING, FULL->READING) that
// names the owner, and head/tail are then advanced by whoever notices (helping). That is
// what makes the queue survive SIGKILL: a claimed-but-unfinished slot always says who
// holds it, so recover() (recorded consumers) or a liveness check (pid owners: producers
// and unrecorded consumers) can finish or discard it instead of wedging the ring.
// See docs/queue.md for every kill point.
//
// Segment contents are offsets and integers only, never pointers.
// Thread-safety: every method may be called concurrently from any thread or process,
// except recover(i)/done(i), which belong to the runtime (recover only after consumer i died).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "eventcount.h"
#include "futex.h"

namespace mpiray {

enum class QueueStatus : int {
    ok = 0,
    would_block = 1,   // try_*: queue full (push) or empty (pop)
    timeout = 2,       // blocking call: the timeout passed
    closed = 3,        // push on a closed queue; pop on a closed *and drained* queue
    too_big = 4,       // payload larger than max_payload()
    bad_consumer = 5,  // consumer index outside [-1, consumers())
};

class TaskQueue {
public:
    static constexpr int kMaxConsumers = 16384;  // recorded consumer slots a segment may have
    static constexpr int kDefaultConsumers = 256;  // ... and has unless told (records cost
                                                   // kRecordItems slots each, if touched)
    static constexpr int kRecordItems = 16;      // items one recorded pop_batch may hold
    static constexpr uint32_t kSlotHeader = 16;  // word + len + pad, counted in slot_size
    static constexpr uint32_t kMinSlotSize = 64;
    static constexpr uint32_t kMaxSlotSize = 1u << 16;  // bounds the records' (lazily faulted) size
    static constexpr uint32_t kMaxCapacity = 1u << 24;

    // Creates the segment (O_CREAT|O_EXCL, mode 0600). slot_size: a multiple of 64 in
    // [kMinSlotSize, kMaxSlotSize], including the 16-byte slot header. Returns 0 and sets
    // *out, or an errno: EEXIST (name taken), EINVAL (bad sizes), or shm/mmap errors.
    // consumers: how many recorded consumer slots, 1..kMaxConsumers.
    static int create(const std::string& name, uint32_t capacity, uint32_t slot_size, TaskQueue** out,
                      int consumers = kDefaultConsumers);
    // Maps an existing segment. Returns 0, or ENOENT, EPROTO (not a queue / other
    // version), or shm/mmap errors.
    static int attach(const std::string& name, TaskQueue** out);
    // Unlinks the segment name (mappings stay valid until deleted). Returns 0 or errno
    // (ENOENT is reported, callers that destroy twice may ignore it).
    static int unlink(const std::string& name);
    ~TaskQueue();  // unmaps
    TaskQueue(const TaskQueue&) = delete;
    TaskQueue& operator=(const TaskQueue&) = delete;

    uint32_t capacity() const;
    uint32_t slot_size() const;
    uint32_t max_payload() const;  // slot_size - kSlotHeader
    int consumers() const;         // recorded consumer slots: indexes 0..consumers()-1

    // Never block. ok / would_block (full) / closed / too_big.
    QueueStatus try_push(const void* data, uint32_t len);
    // Waits while full (short spin, then futex sleep). timeout_ns < 0: no limit.
    // ok / timeout / closed / too_big.
    QueueStatus push(const void* data, uint32_t len, int64_t timeout_ns);

    // consumer: -1 (unrecorded) or a record index. `out` must hold max_payload() bytes.
    // A recorded pop first forgets what this consumer held (an implicit done()).
    // Never blocks: ok / would_block (empty) / closed (closed and empty) / bad_consumer.
    QueueStatus try_pop(void* out, uint32_t* len, int consumer);
    // Waits while empty. ok / timeout / closed (closed and drained) / bad_consumer.
    // spin_ns > 0 (recorded consumers only): poll that long before sleeping, marked as a
    // spinner, so that pushes meanwhile pay no futex wake.
    QueueStatus pop(void* out, uint32_t* len, int consumer, int64_t timeout_ns, int64_t spin_ns = 0);
    // Waits (up to timeout_ns; 0: not at all) until at least one item is there, then takes
    // up to max_items without waiting. Item k goes to out + k*max_payload(), its length to
    // lens[k]. A recorded batch holds at most kRecordItems. *n = items taken.
    // ok (n >= 1) / timeout / closed / bad_consumer.
    QueueStatus pop_batch(void* out, uint32_t* lens, int max_items, int consumer, int64_t timeout_ns, int* n,
                          int64_t spin_ns = 0);

    // Marks (on) or unmarks consumer index `consumer` as a spinner by hand, for a consumer
    // that polls with try_pop/pop_batch(timeout 0) itself: while marked, pushes wake no
    // sleeper. Unmarking wakes one if items are left. Keep marks short (a sleeper may be
    // the only one that would take an item).
    void mark_spinning(int consumer, bool on);
    // Waits (up to timeout_ns; < 0: no limit) until an item a pop can take is there (not a
    // slot a producer still writes, nor one a dead producer left: repaired as pop does), without taking it;
    // spin_ns > 0: first polls as spinner `consumer` (see pop). ok / timeout / closed
    // (closed and drained).
    QueueStatus wait_nonempty(int64_t timeout_ns, int consumer = -1, int64_t spin_ns = 0);

    // The consumer finished what it popped last: its record forgets it.
    QueueStatus done(int consumer);
    // What dead consumer `consumer` popped but never finished (0..kRecordItems items),
    // including an item it had claimed in the ring but not yet copied out (that slot is
    // released on its behalf). Clears the record. Only for a consumer known to be dead.
    QueueStatus recover(int consumer, std::vector<std::string>* items);
    // The first `head` bytes of each item recorded consumers [0, consumers) hold now
    // (popped, not done): a look at what is running, racy by nature (a consumer may be
    // done with an item meanwhile) and read-only. Touches each such record's header.
    void held_heads(int consumers, size_t head, std::vector<std::string>* out, int first = 0) const;
    // The first `head` bytes of each item waiting in the ring, oldest first: read-only
    // and racy (a copy is kept only if its slot did not change while it was read).
    void queued_heads(size_t head, std::vector<std::string>* out) const;

    // Maps every slot page into this process now (MADV_POPULATE_WRITE; a no-op before
    // Linux 5.14). Each slot's first touch is otherwise a page fault in every process that
    // pushes or pops it, until the ring has wrapped once: a fresh node's first few
    // thousand tasks paid several faults each.
    void populate_slots();

    // Every blocked push/pop returns; later pushes fail with closed; pops drain, then closed.
    void close();
    bool closed() const;
    // A best effort guess: items pushed and not yet popped, racing with both ends.
    size_t size() const;

    // Test hook: when set to k > 0, this process SIGKILLs itself at kill point k inside
    // push/pop (see kKill* in queue.cpp). 0 disables. Process-global.
    static void set_test_kill_point(int point);

    // Segment layout, defined in queue.cpp (public only so static_asserts can see it).
    struct Header;
    struct Slot;
    struct Record;

private:
    bool bad_consumer(int consumer) const;  // outside [-1, consumers())
    TaskQueue(void* base, size_t size);

    Slot* slot_for(uint64_t ticket) const;
    uint64_t lap_of(uint64_t ticket) const;
    Record* record(int consumer) const;
    QueueStatus try_push_one(const void* data, uint32_t len);
    QueueStatus try_pop_one(void* out, uint32_t* len, int consumer, int index_in_record);
    QueueStatus take(void* out, uint32_t* lens, int max_items, int consumer, int* n);
    QueueStatus spin_take(void* out, uint32_t* lens, int max_items, int consumer, int* n, int64_t spin_ns);
    template <class Poll>
    QueueStatus spin_marked(int consumer, int64_t spin_ns, Poll poll);
    QueueStatus took(QueueStatus st);
    bool has_item() const;
    void wake_consumer();
    // Sleeps on not_empty (key from prepare_wait) until woken or the deadline (< 0: none),
    // repairing a slot at tail whose producer died mid-push; false (the wait cancelled)
    // if the deadline has passed already.
    bool sleep_not_empty(uint32_t key, int64_t deadline, bool adaptive);
    void forget(int consumer);
    bool repair_if_owner_dead(Slot* s, uint64_t word);

    void* base_;
    size_t size_;
    AdaptiveSpin pop_spin_{1000 * 1000};  // spin_take's budget, learnt (and capped by each call's spin_ns)
    Header* h_;
    char* slots_;
    char* records_;
};

}  // namespace mpiray

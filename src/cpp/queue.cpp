// The task queue: segment layout, ticket/turn claims, blocking waits, crash recovery.
// Read queue.h first; docs/queue.md walks through every SIGKILL point.
#include "queue.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace mpiray {

namespace {

constexpr uint64_t kMagic = 0x6d70697261795155ull;  // "mpirayQU"
constexpr uint32_t kVersion = 4;  // 2: spinning consumer bits; 3: consumers per segment; 4: 16384 consumers
constexpr size_t kCacheLine = 64;
constexpr size_t kRecordHeader = 256;

// Slot word: stage (= 4 * lap + phase) in the high bits, owner in the low kOwnerBits.
// Owner < kMaxConsumers: a recorded consumer index; owner >= kMaxConsumers: a process id
// plus kMaxConsumers (producers and unrecorded consumers). EMPTY and FULL words carry
// owner 0, so "the slot is free for lap L" and "the item of lap L is ready" are exact
// 64-bit values that a CAS can expect; the lap makes every value unique (no ABA).
constexpr int kOwnerBits = 23;  // pids are < 2^22 (pid_max limit) + kMaxConsumers
constexpr uint64_t kOwnerMask = (uint64_t{1} << kOwnerBits) - 1;
enum Phase : uint64_t { kEmpty = 0, kWriting = 1, kFull = 2, kReading = 3 };

constexpr uint64_t make_word(uint64_t stage, uint64_t owner) { return (stage << kOwnerBits) | owner; }
constexpr uint64_t stage_of(uint64_t w) { return w >> kOwnerBits; }
constexpr uint64_t owner_of(uint64_t w) { return w & kOwnerMask; }
constexpr uint64_t stage(uint64_t lap, Phase p) { return 4 * lap + p; }

static_assert(TaskQueue::kMaxConsumers + (uint64_t{1} << 22) <= kOwnerMask,
              "the owner field must hold every consumer index and every pid");

// Kill points of the test hook (TaskQueue::set_test_kill_point). Numbers are the API.
enum KillPoint : int {
    kKillPopBeforeClaim = 1,   // record names the ticket; slot not claimed yet
    kKillPopAfterClaim = 2,    // slot READING (ours); tail not advanced
    kKillPopMidCopy = 3,       // half the payload copied into the record
    kKillPopAfterRecord = 4,   // record holds the item; slot not released
    kKillPopAfterRelease = 5,  // slot released; pop not returned
    kKillPushAfterClaim = 11,  // slot WRITING (ours); head not advanced
    kKillPushMidWrite = 12,    // half the payload written
    kKillPushAfterPublish = 13,
};

std::atomic<int> g_kill_point{0};

inline void kill_point(int k) {
    // relaxed: a test-only flag set before the operation starts.
    if (__builtin_expect(g_kill_point.load(std::memory_order_relaxed) == k, 0)) raise(SIGKILL);
}

std::atomic<int> g_pid{0};
void forget_pid() { g_pid.store(0, std::memory_order_relaxed); }

// getpid() is a syscall in current glibc; cache it, and forget it in a fork child.
int self_pid() {
    int pid = g_pid.load(std::memory_order_relaxed);
    if (__builtin_expect(pid == 0, 0)) {
        static const bool registered = (pthread_atfork(nullptr, nullptr, forget_pid) == 0);
        (void)registered;
        pid = static_cast<int>(getpid());
        g_pid.store(pid, std::memory_order_relaxed);
    }
    return pid;
}

constexpr size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// A bounded spin before sleeping: catches a reply that is already on its way without
// burning a core (on 2 cores a long spin starves the very process we wait for).
constexpr int kSpinTries = 128;  // ~5 us on the 2-vCPU EPYC VM (pause is slow on Zen)
// While a pid-owned claim blocks us, sleep at most this long between liveness checks.
constexpr int64_t kStuckCheckNs = 20 * 1000 * 1000;

int64_t deadline_after(int64_t timeout_ns) { return timeout_ns < 0 ? -1 : monotonic_ns() + timeout_ns; }
// How long a waiter may still sleep: -1 without a deadline, 0 once it has passed.
int64_t sleep_left(int64_t deadline) { return deadline < 0 ? -1 : std::max<int64_t>(0, deadline - monotonic_ns()); }

}  // namespace

// ---- segment layout -------------------------------------------------------------------

struct TaskQueue::Header {
    // Immutable after create(); magic is stored last (release) so attach() sees the rest.
    std::atomic<uint64_t> magic;
    uint32_t version;
    uint32_t capacity;
    uint32_t slot_size;
    uint32_t max_payload;
    uint32_t record_size;
    uint32_t pow2_shift;  // log2(capacity) when capacity is a power of two, else 0xffffffff
    uint64_t slots_offset;
    uint64_t records_offset;
    uint64_t total_size;
    int32_t creator_pid;
    uint32_t consumers;       // recorded consumer slots (records) in this segment
    uint32_t spinning_words;  // the words of `spinning` in use: ceil(consumers / 64)

    // Next push ticket: a hint advanced after the slot claim, by the claimer or a helper.
    alignas(kCacheLine) std::atomic<uint64_t> head;
    // Next pop ticket: likewise.
    alignas(kCacheLine) std::atomic<uint64_t> tail;
    EventCount not_empty;  // consumers sleep here
    EventCount not_full;   // producers sleep here
    alignas(kCacheLine) std::atomic<uint32_t> closed;
    // Bit c: recorded consumer c is polling for an item (pop with spin_ns > 0). While any
    // bit is set a push wakes no sleeper: the spinner takes the item, and a consumer that
    // leaves items behind wakes the next one (see wake_consumer). A bitmask, not a count,
    // so recover() clears a dead spinner's claim exactly.
    std::atomic<uint64_t> spinning[kMaxConsumers / 64];
};

static_assert(offsetof(TaskQueue::Header, tail) - offsetof(TaskQueue::Header, head) >= kCacheLine,
              "head and tail must be a cache line apart to prevent false sharing");
static_assert(offsetof(TaskQueue::Header, not_empty) - offsetof(TaskQueue::Header, tail) >= kCacheLine,
              "the eventcounts must not share the tail's cache line");
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "slot words are shared between processes: they must be lock-free, not guarded by a process-local lock");

struct TaskQueue::Slot {
    std::atomic<uint64_t> word;  // (stage, owner), see make_word
    uint32_t len;                // payload bytes; written by the WRITING owner, read by READING owners
    uint32_t reserved;
    char* data() { return reinterpret_cast<char*>(this) + kSlotHeader; }
};
static_assert(sizeof(TaskQueue::Slot) == TaskQueue::kSlotHeader, "kSlotHeader is counted in slot_size");

struct TaskQueue::Record {
    std::atomic<uint64_t> pending;  // 1 + the ticket this consumer is claiming; 0: none
    std::atomic<uint32_t> n_held;   // items fully copied into data(), in order
    int32_t reserved;
    uint64_t held_ticket[kRecordItems];
    uint32_t held_len[kRecordItems];
    char* data() { return reinterpret_cast<char*>(this) + kRecordHeader; }
};
static_assert(sizeof(TaskQueue::Record) <= kRecordHeader, "the record header must fit before its data");

TaskQueue::TaskQueue(void* base, size_t size)
    : base_(base),
      size_(size),
      h_(static_cast<Header*>(base)),
      slots_(static_cast<char*>(base) + h_->slots_offset),
      records_(static_cast<char*>(base) + h_->records_offset) {}

TaskQueue::~TaskQueue() { munmap(base_, size_); }

uint32_t TaskQueue::capacity() const { return h_->capacity; }
uint32_t TaskQueue::slot_size() const { return h_->slot_size; }
uint32_t TaskQueue::max_payload() const { return h_->max_payload; }
int TaskQueue::consumers() const { return static_cast<int>(h_->consumers); }

bool TaskQueue::bad_consumer(int consumer) const {
    return consumer < -1 || consumer >= static_cast<int>(h_->consumers);
}

inline uint64_t TaskQueue::lap_of(uint64_t ticket) const {
    return h_->pow2_shift != 0xffffffffu ? ticket >> h_->pow2_shift : ticket / h_->capacity;
}

inline TaskQueue::Slot* TaskQueue::slot_for(uint64_t ticket) const {
    uint64_t idx = h_->pow2_shift != 0xffffffffu ? ticket & (h_->capacity - 1) : ticket % h_->capacity;
    return reinterpret_cast<Slot*>(slots_ + idx * h_->slot_size);
}

inline TaskQueue::Record* TaskQueue::record(int consumer) const {
    return reinterpret_cast<Record*>(records_ + static_cast<size_t>(consumer) * h_->record_size);
}

// ---- lifecycle ------------------------------------------------------------------------

int TaskQueue::create(const std::string& name, uint32_t capacity, uint32_t slot_size, TaskQueue** out,
                      int consumers) {
    if (capacity < 1 || capacity > kMaxCapacity || slot_size < kMinSlotSize || slot_size > kMaxSlotSize ||
        slot_size % kCacheLine != 0 || consumers < 1 || consumers > kMaxConsumers)
        return EINVAL;
    const uint32_t max_payload = slot_size - kSlotHeader;
    const size_t slots_offset = round_up(sizeof(Header), kCacheLine);
    const size_t records_offset = round_up(slots_offset + size_t{capacity} * slot_size, 4096);
    const size_t record_size = round_up(kRecordHeader + size_t{kRecordItems} * max_payload, kCacheLine);
    const size_t total = records_offset + size_t(consumers) * record_size;

    int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return errno;
    // tmpfs allocates lazily: an untouched record or slot costs no memory. Fresh pages
    // read as zero, and zero is EMPTY(lap 0) for a slot and "holds nothing" for a record,
    // so only the header is written here.
    if (ftruncate(fd, static_cast<off_t>(total)) != 0) {
        int e = errno;
        ::close(fd);
        shm_unlink(name.c_str());
        return e;
    }
    void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(name.c_str());
        return e;
    }
    Header* h = new (p) Header();
    h->version = kVersion;
    h->capacity = capacity;
    h->slot_size = slot_size;
    h->max_payload = max_payload;
    h->record_size = static_cast<uint32_t>(record_size);
    h->pow2_shift = (capacity & (capacity - 1)) == 0 ? static_cast<uint32_t>(__builtin_ctz(capacity)) : 0xffffffffu;
    h->slots_offset = slots_offset;
    h->records_offset = records_offset;
    h->total_size = total;
    h->creator_pid = self_pid();
    h->consumers = static_cast<uint32_t>(consumers);
    h->spinning_words = static_cast<uint32_t>((consumers + 63) / 64);
    // release: attach() acquires magic, then reads the fields above.
    h->magic.store(kMagic, std::memory_order_release);
    *out = new TaskQueue(p, total);
    return 0;
}

int TaskQueue::attach(const std::string& name, TaskQueue** out) {
    int fd = shm_open(name.c_str(), O_RDWR, 0);
    if (fd < 0) return errno;
    // A creator may be between shm_open and storing magic: give it a moment (~100 ms).
    for (int attempt = 0;; ++attempt) {
        struct stat st {};
        if (fstat(fd, &st) != 0) {
            int e = errno;
            ::close(fd);
            return e;
        }
        if (static_cast<size_t>(st.st_size) >= sizeof(Header)) {
            size_t size = static_cast<size_t>(st.st_size);
            void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) {
                int e = errno;
                ::close(fd);
                return e;
            }
            Header* h = static_cast<Header*>(p);
            // acquire: pairs with create()'s release store of magic.
            if (h->magic.load(std::memory_order_acquire) == kMagic) {
                ::close(fd);
                // (a header whose sizes disagree would send record() and the spinning
                // bits past the mapping)
                if (h->version != kVersion || h->total_size != size || h->consumers < 1 ||
                    h->consumers > static_cast<uint32_t>(kMaxConsumers) ||
                    h->spinning_words != (h->consumers + 63) / 64 ||
                    h->records_offset + uint64_t{h->consumers} * h->record_size > size) {
                    munmap(p, size);
                    return EPROTO;
                }
                *out = new TaskQueue(p, size);
                return 0;
            }
            munmap(p, size);
        }
        if (attempt >= 1000) {
            ::close(fd);
            return EPROTO;
        }
        usleep(100);
    }
}

int TaskQueue::unlink(const std::string& name) { return shm_unlink(name.c_str()) == 0 ? 0 : errno; }

void TaskQueue::set_test_kill_point(int point) { g_kill_point.store(point, std::memory_order_relaxed); }

// ---- push -----------------------------------------------------------------------------

QueueStatus TaskQueue::try_push_one(const void* data, uint32_t len) {
    // relaxed: close() is not ordered against a push already under way (docs/queue.md).
    if (h_->closed.load(std::memory_order_relaxed)) return QueueStatus::closed;
    const uint64_t owner = kMaxConsumers + static_cast<uint64_t>(self_pid());
    // acquire: a hint only; the slot word decides.
    uint64_t t = h_->head.load(std::memory_order_acquire);
    for (;;) {
        Slot* s = slot_for(t);
        const uint64_t lap = lap_of(t);
        uint64_t w = s->word.load(std::memory_order_acquire);
        if (w == make_word(stage(lap, kEmpty), 0)) {
            // acquire: the previous lap's consumer released the slot after reading it, so
            // our writes below cannot clobber what it was still copying.
            if (s->word.compare_exchange_strong(w, make_word(stage(lap, kWriting), owner), std::memory_order_acquire,
                                                std::memory_order_relaxed)) {
                kill_point(kKillPushAfterClaim);
                // relaxed: head is a hint; failure means a helper already advanced it.
                h_->head.compare_exchange_strong(t, t + 1, std::memory_order_relaxed);
                s->len = len;
                if (__builtin_expect(g_kill_point.load(std::memory_order_relaxed) == kKillPushMidWrite, 0)) {
                    std::memcpy(s->data(), data, len / 2);
                    kill_point(kKillPushMidWrite);
                }
                std::memcpy(s->data(), data, len);
                // release: publishes len and payload to the consumer that acquires FULL.
                s->word.store(make_word(stage(lap, kFull), 0), std::memory_order_release);
                kill_point(kKillPushAfterPublish);
                return QueueStatus::ok;
            }
            t = h_->head.load(std::memory_order_acquire);
            continue;
        }
        if (stage_of(w) > stage(lap, kEmpty)) {
            // Ticket t is claimed already and head lags: help it along (relaxed, a hint).
            // On failure compare_exchange loads the current head into t.
            if (h_->head.compare_exchange_strong(t, t + 1, std::memory_order_relaxed)) ++t;
            continue;
        }
        // The slot still holds the previous lap: full, unless head moved meanwhile.
        const uint64_t again = h_->head.load(std::memory_order_acquire);
        if (again == t) return QueueStatus::would_block;
        t = again;
    }
}

QueueStatus TaskQueue::try_push(const void* data, uint32_t len) {
    if (len > h_->max_payload) return QueueStatus::too_big;
    QueueStatus st = try_push_one(data, len);
    if (st == QueueStatus::ok) wake_consumer();
    return st;
}

QueueStatus TaskQueue::push(const void* data, uint32_t len, int64_t timeout_ns) {
    if (len > h_->max_payload) return QueueStatus::too_big;
    QueueStatus st = try_push_one(data, len);
    for (int i = 0; st == QueueStatus::would_block && timeout_ns != 0 && i < kSpinTries; ++i) {
        cpu_relax();
        st = try_push_one(data, len);
    }
    if (st == QueueStatus::ok) wake_consumer();
    if (st != QueueStatus::would_block) return st;
    if (timeout_ns == 0) return QueueStatus::timeout;
    const int64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        const uint32_t key = h_->not_full.prepare_wait();
        st = try_push_one(data, len);
        if (st != QueueStatus::would_block) {
            h_->not_full.cancel_wait();
            if (st == QueueStatus::ok) wake_consumer();
            return st;
        }
        int64_t sleep_ns = sleep_left(deadline);
        if (sleep_ns == 0) {
            h_->not_full.cancel_wait();
            return QueueStatus::timeout;
        }
        // Full because a pid-owned claim (dead producer or unrecorded consumer?) holds the
        // slot at head: sleep in short steps and check whether its owner still lives.
        Slot* s = slot_for(h_->head.load(std::memory_order_relaxed));
        const uint64_t w0 = s->word.load(std::memory_order_relaxed);
        const bool watch = owner_of(w0) >= kMaxConsumers;
        if (watch) sleep_ns = sleep_ns < 0 ? kStuckCheckNs : std::min(sleep_ns, kStuckCheckNs);
        h_->not_full.wait(key, sleep_ns);
        if (watch && s->word.load(std::memory_order_relaxed) == w0) repair_if_owner_dead(s, w0);
    }
}

// ---- pop ------------------------------------------------------------------------------

QueueStatus TaskQueue::try_pop_one(void* out, uint32_t* len, int consumer, int k) {
    Record* rec = consumer >= 0 ? record(consumer) : nullptr;
    const uint64_t owner = consumer >= 0 ? static_cast<uint64_t>(consumer) : kMaxConsumers + static_cast<uint64_t>(self_pid());
    const uint32_t mp = h_->max_payload;
    bool saw_closed = false;
    // acquire: a hint only; the slot word decides.
    uint64_t t = h_->tail.load(std::memory_order_acquire);
    for (;;) {
        Slot* s = slot_for(t);
        const uint64_t lap = lap_of(t);
        uint64_t w = s->word.load(std::memory_order_acquire);
        if (w == make_word(stage(lap, kFull), 0)) {
            // relaxed: ordered before the claim by the CAS's release half; recover() reads
            // it only after this process died.
            if (rec) rec->pending.store(t + 1, std::memory_order_relaxed);
            kill_point(kKillPopBeforeClaim);
            // acq_rel: acquire sees the producer's payload; release orders `pending` first.
            if (s->word.compare_exchange_strong(w, make_word(stage(lap, kReading), owner), std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
                kill_point(kKillPopAfterClaim);
                const uint64_t ticket = t;
                // relaxed: tail is a hint; failure means a helper already advanced it.
                h_->tail.compare_exchange_strong(t, t + 1, std::memory_order_relaxed);
                const uint32_t n = std::min(s->len, mp);
                if (rec) {
                    char* dst = rec->data() + static_cast<size_t>(k) * mp;
                    if (__builtin_expect(g_kill_point.load(std::memory_order_relaxed) == kKillPopMidCopy, 0)) {
                        std::memcpy(dst, s->data(), n / 2);
                        kill_point(kKillPopMidCopy);
                    }
                    std::memcpy(dst, s->data(), n);
                    rec->held_ticket[k] = ticket;
                    rec->held_len[k] = n;
                    // release: recover() trusts held_* and the data only up to n_held.
                    rec->n_held.store(static_cast<uint32_t>(k + 1), std::memory_order_release);
                    kill_point(kKillPopAfterRecord);
                    std::memcpy(out, dst, n);
                } else {
                    std::memcpy(out, s->data(), n);
                }
                *len = n;
                // release: our reads of the slot happen-before the next lap's producer writes it.
                s->word.store(make_word(stage(lap + 1, kEmpty), 0), std::memory_order_release);
                // relaxed: the slot no longer names us, so a stale `pending` is harmless.
                if (rec) rec->pending.store(0, std::memory_order_relaxed);
                kill_point(kKillPopAfterRelease);
                return QueueStatus::ok;
            }
            t = h_->tail.load(std::memory_order_acquire);
            continue;
        }
        if (stage_of(w) > stage(lap, kFull)) {
            // Ticket t is claimed already and tail lags: help (relaxed, a hint).
            if (h_->tail.compare_exchange_strong(t, t + 1, std::memory_order_relaxed)) ++t;
            continue;
        }
        // Empty at t (EMPTY, or a producer still WRITING): unless tail moved meanwhile.
        const uint64_t again = h_->tail.load(std::memory_order_acquire);
        if (again != t) {
            t = again;
            continue;
        }
        if (saw_closed) return QueueStatus::closed;
        // acquire: pairs with close(); a push that finished before close() is visible on
        // the second look, so a closed queue reports closed only once drained.
        if (!h_->closed.load(std::memory_order_acquire)) return QueueStatus::would_block;
        saw_closed = true;
    }
}

namespace {

}  // namespace

void TaskQueue::forget(int consumer) {
    if (consumer < 0) return;
    Record* rec = record(consumer);
    // release: a later recover() must not see items this consumer already finished.
    rec->n_held.store(0, std::memory_order_release);
    rec->pending.store(0, std::memory_order_relaxed);
}

QueueStatus TaskQueue::take(void* out, uint32_t* lens, int max_items, int consumer, int* n) {
    QueueStatus st = QueueStatus::ok;
    int k = 0;
    while (k < max_items) {
        st = try_pop_one(static_cast<char*>(out) + static_cast<size_t>(k) * h_->max_payload, &lens[k], consumer, k);
        if (st != QueueStatus::ok) break;
        ++k;
    }
    *n = k;
    if (k == 0) return st;
    h_->not_full.notify(k);
    return QueueStatus::ok;
}

QueueStatus TaskQueue::try_pop(void* out, uint32_t* len, int consumer) {
    if (bad_consumer(consumer)) return QueueStatus::bad_consumer;
    forget(consumer);
    int n = 0;
    return take(out, len, 1, consumer, &n);
}

QueueStatus TaskQueue::pop(void* out, uint32_t* len, int consumer, int64_t timeout_ns, int64_t spin_ns) {
    int n = 0;
    return pop_batch(out, len, 1, consumer, timeout_ns, &n, spin_ns);
}

QueueStatus TaskQueue::pop_batch(void* out, uint32_t* lens, int max_items, int consumer, int64_t timeout_ns, int* n,
                                 int64_t spin_ns) {
    *n = 0;
    if (bad_consumer(consumer)) return QueueStatus::bad_consumer;
    if (max_items < 1) return QueueStatus::ok;
    if (consumer >= 0) max_items = std::min(max_items, kRecordItems);
    forget(consumer);
    QueueStatus st = take(out, lens, max_items, consumer, n);
    for (int i = 0; st == QueueStatus::would_block && timeout_ns != 0 && i < kSpinTries; ++i) {
        cpu_relax();
        st = take(out, lens, max_items, consumer, n);
    }
    // A spinning consumer learns from each wait how long to spin the next time.
    const bool adaptive = st == QueueStatus::would_block && timeout_ns != 0 && spin_ns > 0 && consumer >= 0;
    const int64_t t0 = adaptive ? monotonic_ns() : 0;
    if (adaptive) st = spin_take(out, lens, max_items, consumer, n, timeout_ns < 0 ? spin_ns : std::min(spin_ns, timeout_ns));
    if (st != QueueStatus::would_block) {
        if (adaptive) pop_spin_.record(monotonic_ns() - t0);
        return took(st);
    }
    if (timeout_ns == 0) return QueueStatus::timeout;
    const int64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        const uint32_t key = h_->not_empty.prepare_wait();
        st = take(out, lens, max_items, consumer, n);
        if (st != QueueStatus::would_block) {
            h_->not_empty.cancel_wait();
            if (adaptive && st == QueueStatus::ok) pop_spin_.record(monotonic_ns() - t0);
            return took(st);
        }
        if (!sleep_not_empty(key, deadline, adaptive)) return QueueStatus::timeout;
    }
}

bool TaskQueue::sleep_not_empty(uint32_t key, int64_t deadline, bool adaptive) {
    int64_t sleep_ns = sleep_left(deadline);
    if (sleep_ns == 0) {
        h_->not_empty.cancel_wait();
        if (adaptive) pop_spin_.record(-1);  // the wait did not end: spinning would not have paid
        return false;
    }
    // Empty because a pid-owned claim (a producer mid-push) holds the slot at tail? Then
    // sleep in short steps and check whether that producer still lives.
    Slot* s = slot_for(h_->tail.load(std::memory_order_relaxed));
    const uint64_t w0 = s->word.load(std::memory_order_relaxed);
    const bool watch = owner_of(w0) >= kMaxConsumers;
    if (watch) sleep_ns = sleep_ns < 0 ? kStuckCheckNs : std::min(sleep_ns, kStuckCheckNs);
    h_->not_empty.wait(key, sleep_ns);
    if (watch && s->word.load(std::memory_order_relaxed) == w0) repair_if_owner_dead(s, w0);
    return true;
}

template <class Poll>
QueueStatus TaskQueue::spin_marked(int consumer, int64_t spin_ns, Poll poll) {
    // One spinner at a time: a second one would only burn another core for the same item
    // (on a 2-core host, the core the producer needs). It sleeps; took() wakes it when
    // more than one item waits.
    for (uint32_t i = 0; i < h_->spinning_words; ++i)
        if (h_->spinning[i].load(std::memory_order_relaxed) != 0) return QueueStatus::would_block;
    std::atomic<uint64_t>& word = h_->spinning[consumer / 64];
    const uint64_t bit = uint64_t{1} << (consumer % 64);
    // seq_cst: a push that reads our bit as set skips its wake, so the bit must be visible
    // before we poll (pairs with the fence in wake_consumer).
    word.fetch_or(bit, std::memory_order_seq_cst);
    const int64_t deadline = monotonic_ns() + std::min(spin_ns, pop_spin_.budget_ns());
    QueueStatus st;
    for (int i = 0;; ++i) {
        st = poll();
        if (st != QueueStatus::would_block) break;
        spin_pause(i);
        if (i % 64 == 63 && monotonic_ns() >= deadline) break;
    }
    // seq_cst: after this a push wakes sleepers again; what it pushed before it saw the bit
    // clear, our caller's next look (prepare_wait's fence, or took()'s) is sure to see.
    word.fetch_and(~bit, std::memory_order_seq_cst);
    return st;
}

QueueStatus TaskQueue::spin_take(void* out, uint32_t* lens, int max_items, int consumer, int* n, int64_t spin_ns) {
    return spin_marked(consumer, spin_ns, [&] { return take(out, lens, max_items, consumer, n); });
}

void TaskQueue::mark_spinning(int consumer, bool on) {
    if (bad_consumer(consumer) || consumer < 0) return;
    const uint64_t bit = uint64_t{1} << (consumer % 64);
    if (on) {
        // seq_cst: see spin_take.
        h_->spinning[consumer / 64].fetch_or(bit, std::memory_order_seq_cst);
        return;
    }
    h_->spinning[consumer / 64].fetch_and(~bit, std::memory_order_seq_cst);
    took(QueueStatus::ok);  // pushes that skipped their wake for us: pass it on
}

bool TaskQueue::has_item() const {
    // Not size() > 0: head counts slots that producers have claimed, and one still
    // writing (or one that died writing) holds back every pop. Look as try_pop_one does.
    uint64_t t = h_->tail.load(std::memory_order_acquire);
    for (uint32_t i = 0; i < h_->capacity; ++i, ++t) {
        const uint64_t w = slot_for(t)->word.load(std::memory_order_acquire);
        if (w == make_word(stage(lap_of(t), kFull), 0)) return true;
        if (stage_of(w) <= stage(lap_of(t), kFull)) return false;  // EMPTY or WRITING at t
        // claimed by a reader already and tail lags: look at the next ticket
    }
    return false;
}

QueueStatus TaskQueue::wait_nonempty(int64_t timeout_ns, int consumer, int64_t spin_ns) {
    if (has_item()) return QueueStatus::ok;
    const bool adaptive = timeout_ns != 0 && spin_ns > 0 && consumer >= 0 && consumer < consumers();
    const int64_t t0 = adaptive ? monotonic_ns() : 0;
    if (adaptive && spin_marked(consumer, timeout_ns < 0 ? spin_ns : std::min(spin_ns, timeout_ns), [&] {
            return has_item() ? QueueStatus::ok : QueueStatus::would_block;
        }) == QueueStatus::ok) {
        pop_spin_.record(monotonic_ns() - t0);
        return QueueStatus::ok;
    }
    const int64_t deadline = deadline_after(timeout_ns);
    for (;;) {
        const uint32_t key = h_->not_empty.prepare_wait();
        if (has_item()) {
            h_->not_empty.cancel_wait();
            if (adaptive) pop_spin_.record(monotonic_ns() - t0);
            return QueueStatus::ok;
        }
        // acquire: pairs with close(); drained and closed is the end.
        if (h_->closed.load(std::memory_order_acquire)) {
            h_->not_empty.cancel_wait();
            return QueueStatus::closed;
        }
        if (!sleep_not_empty(key, deadline, adaptive)) return QueueStatus::timeout;
    }
}

void TaskQueue::wake_consumer() {
    // seq_cst fence: the pushed item is visible before we read the spinning bits (pairs
    // with the spinner's fetch_and and the fence that follows it).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    for (uint32_t i = 0; i < h_->spinning_words; ++i)
        if (h_->spinning[i].load(std::memory_order_relaxed) != 0) return;  // a spinner takes it
    h_->not_empty.notify(1);
}

QueueStatus TaskQueue::took(QueueStatus st) {
    // Items left behind: their pushes may have skipped a wake for a spinner that took
    // only one, so pass the wake on (a syscall only when someone sleeps).
    if (st == QueueStatus::ok) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (size() > 0) wake_consumer();
    }
    return st;
}

// ---- crash recovery -------------------------------------------------------------------

bool TaskQueue::repair_if_owner_dead(Slot* s, uint64_t w) {
    const uint64_t owner = owner_of(w);
    if (owner < kMaxConsumers) return false;  // a recorded consumer: recover()'s job
    const pid_t pid = static_cast<pid_t>(owner - kMaxConsumers);
    if (kill(pid, 0) == 0 || errno != ESRCH) return false;  // alive (EPERM: exists, not ours)
    // The owner died mid-push (its push never returned) or mid unrecorded pop (documented
    // as lost): discard the slot's content and hand the slot to the next lap.
    const uint64_t lap = stage_of(w) / 4;
    // acq_rel: we take over the claim, then publish the slot as free.
    if (!s->word.compare_exchange_strong(w, make_word(stage(lap + 1, kEmpty), 0), std::memory_order_acq_rel,
                                         std::memory_order_relaxed))
        return false;
    h_->not_full.notify_all();
    h_->not_empty.notify_all();
    return true;
}

QueueStatus TaskQueue::done(int consumer) {
    if (consumer < 0 || consumer >= consumers()) return QueueStatus::bad_consumer;
    forget(consumer);
    return QueueStatus::ok;
}

void TaskQueue::held_heads(int consumers, size_t head, std::vector<std::string>* out, int first) const {
    const uint32_t mp = h_->max_payload;
    consumers = std::min(consumers, this->consumers());
    for (int c = std::max(first, 0); c < consumers; ++c) {
        Record* rec = record(c);
        // acquire: pairs with the release store in try_pop_one (items below n_held are whole)
        const uint32_t n = std::min<uint32_t>(rec->n_held.load(std::memory_order_acquire), kRecordItems);
        for (uint32_t k = 0; k < n; ++k) {
            const size_t len = std::min<size_t>(std::min(rec->held_len[k], mp), head);
            out->emplace_back(rec->data() + static_cast<size_t>(k) * mp, len);
        }
    }
}

void TaskQueue::queued_heads(size_t head, std::vector<std::string>* out) const {
    const uint64_t end = h_->head.load(std::memory_order_acquire);
    uint64_t t = h_->tail.load(std::memory_order_acquire);
    if (end - t > h_->capacity) t = end - h_->capacity;
    const uint32_t mp = h_->max_payload;
    for (; t < end; ++t) {
        Slot* s = slot_for(t);
        const uint64_t full = make_word(stage(lap_of(t), kFull), 0);
        if (s->word.load(std::memory_order_acquire) != full) continue;  // taken, or not yet written
        std::string copy(s->data(), std::min<size_t>(std::min(s->len, mp), head));
        // acquire fence then re-read: a slot reused while we copied is not reported
        std::atomic_thread_fence(std::memory_order_acquire);
        if (s->word.load(std::memory_order_relaxed) == full) out->push_back(std::move(copy));
    }
}

QueueStatus TaskQueue::recover(int consumer, std::vector<std::string>* items) {
    if (consumer < 0 || consumer >= consumers()) return QueueStatus::bad_consumer;
    Record* rec = record(consumer);
    const uint32_t mp = h_->max_payload;
    // acquire: pairs with the release store in try_pop_one; items below n_held are whole.
    const uint32_t n = std::min<uint32_t>(rec->n_held.load(std::memory_order_acquire), kRecordItems);
    for (uint32_t k = 0; k < n; ++k)
        items->emplace_back(rec->data() + static_cast<size_t>(k) * mp, std::min(rec->held_len[k], mp));
    // relaxed: the consumer is dead; its stores are all done.
    const uint64_t pending = rec->pending.load(std::memory_order_relaxed);
    if (pending != 0) {
        const uint64_t t = pending - 1;
        Slot* s = slot_for(t);
        const uint64_t lap = lap_of(t);
        uint64_t w = make_word(stage(lap, kReading), static_cast<uint64_t>(consumer));
        // Only a slot still READING by this very consumer on this very lap is ours: a FULL
        // one was never claimed, anything later was released already.
        // acquire: the producer's payload is visible before we copy it.
        if (s->word.load(std::memory_order_acquire) == w) {
            const bool copied = n > 0 && rec->held_ticket[n - 1] == t;
            if (!copied) items->emplace_back(s->data(), std::min(s->len, mp));
            // acq_rel: our reads precede the next lap's writes (release).
            if (s->word.compare_exchange_strong(w, make_word(stage(lap + 1, kEmpty), 0), std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
                // relaxed: tail is a hint (it may lag if the consumer died before moving it).
                uint64_t expected = t;
                h_->tail.compare_exchange_strong(expected, t + 1, std::memory_order_relaxed);
                h_->not_full.notify_all();
            }
        }
    }
    forget(consumer);
    // A spinner that died mid-spin would silence every push's wake: clear its bit.
    if (h_->spinning[consumer / 64].fetch_and(~(uint64_t{1} << (consumer % 64)), std::memory_order_seq_cst) &
        (uint64_t{1} << (consumer % 64)))
        wake_consumer();
    return QueueStatus::ok;
}

void TaskQueue::populate_slots() {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    // madvise wants a page-aligned start: the slots begin one header into the segment.
    const uintptr_t start = reinterpret_cast<uintptr_t>(slots_) & ~uintptr_t{4095};
    const uintptr_t end = reinterpret_cast<uintptr_t>(slots_) + static_cast<size_t>(h_->capacity) * h_->slot_size;
    madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
}

// ---- close and size -------------------------------------------------------------------

void TaskQueue::close() {
    // seq_cst: ordered before the notifies' fences; every waiter re-checks after waking.
    h_->closed.store(1, std::memory_order_seq_cst);
    h_->not_empty.notify_all();
    h_->not_full.notify_all();
}

bool TaskQueue::closed() const { return h_->closed.load(std::memory_order_acquire) != 0; }

size_t TaskQueue::size() const {
    // relaxed: a best effort guess; tail first so that head >= tail usually holds.
    const uint64_t t = h_->tail.load(std::memory_order_relaxed);
    const uint64_t hd = h_->head.load(std::memory_order_relaxed);
    if (hd <= t) return 0;
    return static_cast<size_t>(std::min<uint64_t>(hd - t, h_->capacity));
}

}  // namespace mpiray

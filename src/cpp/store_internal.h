// Private to the store's .cpp files: the per-process views over the segment, the lock
// guard that repairs after a dead holder, and the error helper.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <pthread.h>
#include <string>
#include <vector>

#include "futex.h"
#include "store.h"
#include "store_alloc.h"
#include "store_evict.h"
#include "store_table.h"

namespace mpiray::store {

// The spill directories of a segment, '\n'-separated in Header::spill_dir (init() may name
// several, on other disks: objects spread over them by id, StoreClient::SpillPathOf).
inline std::vector<std::string> SpillDirs(const std::string& dirs) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find('\n', start);
        if (end == std::string::npos) end = dirs.size();
        if (end > start) out.push_back(dirs.substr(start, end - start));
        start = end + 1;
    }
    return out;
}


struct StoreClient::Views {
    Allocator alloc;
    ObjectTable table;
    LruPolicy lru;
    EvictionPolicy& policy() { return lru; }
};

// Where each region starts, from the capacity alone (creator and SegmentBytes agree).
struct Layout {
    uint64_t clients_off, entries_off, index_off, pins_off, data_off, total;
    uint32_t max_objects, index_size, pins_size;
};
Layout ComputeLayout(uint64_t capacity);

// Records the failure for LastError() and returns `st`, so call sites read
// `return Fail(Status::kX, "...", ...)`.
Status Fail(Status st, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
Status FailErrno(const char* what, const std::string& path);

// Holds the store mutex. EOWNERDEAD means the previous holder died inside a critical
// section: we own the lock, but the structures may be half-updated, so we rebuild what is
// derived (index, allocator, LRU, counters) from what is authoritative (entries, pin
// records), then reap the dead client(s) before going on.
class Locked {
  public:
    static constexpr int kLockSpins = 200;  // ~8 us of pause on the 2-vCPU VM
    explicit Locked(StoreClient* c) : c_(c) {
        // Critical sections last ~100 ns: poll a little before the futex sleep, which
        // (with its wake on unlock) costs both sides a syscall of several us on a VM.
        // A robust mutex cannot be glibc's adaptive kind, so the spin is ours.
        int rc = pthread_mutex_trylock(&c->hdr_->mutex);
        for (int i = 0; rc == EBUSY && i < kLockSpins; ++i) {
            spin_pause(i);
            rc = pthread_mutex_trylock(&c->hdr_->mutex);
        }
        if (rc == EBUSY) rc = pthread_mutex_lock(&c->hdr_->mutex);
        if (rc == EOWNERDEAD) {
            pthread_mutex_consistent(&c->hdr_->mutex);
            c->RepairLocked();
            c->ReapLocked();
        }
    }
    ~Locked() { pthread_mutex_unlock(&c_->hdr_->mutex); }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

  private:
    StoreClient* c_;
};

}  // namespace mpiray::store

// Object lifecycle: create → seal → get → release → delete (and abort), pressure handling,
// client reaping. Segment creation/attach live in store_segment.cpp, spill files in
// store_spill.cpp.
#include "copy.h"
#include "store.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "futex.h"
#include "store_internal.h"

namespace mpiray::store {

namespace {

// A getter spins on the seal counter (up to kSealSpinNs) before it sleeps: most seals a
// getter waits for (a task's result) land within that, and a futex wake costs ~50 us or
// more on a quiet VM. Adaptive below that (AdaptiveSpin), so a loaded machine sleeps.
thread_local ErrorInfo g_error;

bool Resident(const Entry& x) { return x.offset != kNilOff; }
}  // namespace

const ErrorInfo& LastError() { return g_error; }

Status Fail(Status st, const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_error.message = buf;
    g_error.sys_errno = 0;
    return st;
}

Status FailErrno(const char* what, const std::string& path) {
    int err = errno;
    Fail(Status::kIoError, "%s(%s): %s", what, path.c_str(), strerror(err));
    g_error.sys_errno = err;
    return Status::kIoError;
}

static std::string Hex(const uint8_t* id) {
    static const char* d = "0123456789abcdef";
    std::string s(2 * kObjectIdSize, '0');
    for (size_t i = 0; i < kObjectIdSize; ++i) { s[2 * i] = d[id[i] >> 4]; s[2 * i + 1] = d[id[i] & 15]; }
    return s;
}

static Status NotFound(const uint8_t* id) {
    return Fail(Status::kNotFound, "object %s not found", Hex(id).c_str());
}

static Status BadState(const uint8_t* id, const Entry& x, const char* call) {
    return Fail(Status::kBadState, "cannot %s object %s: it is %s", call, Hex(id).c_str(), StateName(x.state));
}

// ---------------------------------------------------------------- pins and freeing

Status StoreClient::PinLocked(uint32_t e, ObjectHandle* out) {
    Entry& x = v_->table[e];
    bool was_unpinned = x.pins == 0;
    if (!v_->table.AddPin(static_cast<uint16_t>(slot_), e))
        return Fail(Status::kFull, "pin table full (%u slots): release some objects", hdr_->pins_mask + 1);
    if (was_unpinned) hdr_->pinned_bytes += x.block;
    out->entry = e;
    out->gen = x.gen;
    out->data = data_ + x.offset;
    out->size = x.size;
    return Status::kOk;
}

uint32_t StoreClient::DropPinLocked(uint32_t e, uint32_t n, uint16_t client) {
    Entry& x = v_->table[e];
    uint32_t k = v_->table.DropPin(client, e, n);
    if (k == 0 || x.pins != 0) return k;
    if (Resident(x)) hdr_->pinned_bytes -= x.block;
    if (x.flags & kDeletePending) FreeObjectLocked(e);
    return k;
}

void StoreClient::FreeObjectLocked(uint32_t e) {
    Entry& x = v_->table[e];
    if (!(x.flags & kDeletePending)) v_->table.Unindex(e);
    if (x.state == ObjState::SEALED && Resident(x)) v_->policy().Removed(e);
    if (Resident(x)) v_->alloc.Free(x.offset);
    if (x.state == ObjState::SPILLED) {
        std::remove(SpillPath(x).c_str());
        --hdr_->num_spilled;
        hdr_->spilled_bytes -= x.size;
    }
    v_->table.Release(e);
}

// ---------------------------------------------------------------- allocation under pressure

uint64_t StoreClient::AllocateLocked(uint64_t size, uint64_t* block, Status* st, bool may_evict) {
    const uint64_t need = Allocator::BlockSize(size);
    if (need > hdr_->data_size) {
        *st = Fail(Status::kTooLarge, "object of %llu bytes is larger than the store (capacity %llu bytes)",
                   (unsigned long long)size, (unsigned long long)hdr_->data_size);
        return kNilOff;
    }
    uint64_t off = v_->alloc.Allocate(size, block);
    if (off != kNilOff) return off;
    if (!may_evict) {
        *st = Fail(Status::kFull, "no room for %llu bytes without spilling", (unsigned long long)size);
        return kNilOff;
    }
    // Dead clients' pins are the cheapest room to win back; then spill, least recent first.
    if (ReapLocked() > 0 && (off = v_->alloc.Allocate(size, block)) != kNilOff) return off;
    if (hdr_->data_size - hdr_->pinned_bytes >= need) {
        for (uint32_t v = v_->policy().Next(kNil); v != kNil;) {
            uint32_t next = v_->policy().Next(v);  // read before spilling unlinks v
            Entry& x = v_->table[v];
            if (x.pins == 0 && x.state == ObjState::SEALED && !(x.flags & kDeletePending)) {
                if ((*st = SpillLocked(v)) != Status::kOk) return kNilOff;
                if ((off = v_->alloc.Allocate(size, block)) != kNilOff) return off;
            }
            v = next;
        }
    }
    *st = Fail(Status::kFull,
               "object store full: requested %llu bytes, free %llu bytes, pinned %llu bytes (capacity %llu)",
               (unsigned long long)size, (unsigned long long)(hdr_->data_size - hdr_->alloc.used),
               (unsigned long long)hdr_->pinned_bytes, (unsigned long long)hdr_->data_size);
    return kNilOff;
}

// ---------------------------------------------------------------- lifecycle

uint32_t StoreClient::NewEntryLocked(const uint8_t* id, int64_t size, bool may_evict, bool user_data,
                                     Status* st) {
    uint32_t e = v_->table.Find(id);
    if (e != kNil) {
        *st = Fail(Status::kExists, "object %s already exists (%s)", Hex(id).c_str(), StateName(v_->table[e].state));
        return kNil;
    }
    const uint32_t reserve = std::max<uint32_t>(64, hdr_->max_objects / 64);
    if (user_data && hdr_->num_objects + reserve >= hdr_->max_objects) {
        *st = Fail(Status::kFull, "object table full (%u objects, of which the last %u are kept for "
                   "errors and messages): drop refs to free objects first", hdr_->max_objects, reserve);
        return kNil;
    }
    *st = Status::kOk;
    uint64_t block = 0;
    uint64_t off = AllocateLocked(static_cast<uint64_t>(size), &block, st, may_evict);
    if (off == kNilOff) return kNil;
    e = v_->table.Insert(id);
    if (e == kNil) {
        v_->alloc.Free(off);
        *st = Fail(Status::kFull, "object table full (%u objects): delete objects first", hdr_->max_objects);
        return kNil;
    }
    Entry& x = v_->table[e];
    x.offset = off;
    x.size = static_cast<uint64_t>(size);
    x.block = block;
    x.creator = static_cast<int16_t>(slot_);
    return e;
}

Status StoreClient::CreateObject(const uint8_t* id, int64_t size, ObjectHandle* out, bool user_data) {
    if (size < 0) return Fail(Status::kInvalid, "negative object size %lld", (long long)size);
    Locked lock(this);
    Status st;
    uint32_t e = NewEntryLocked(id, size, true, user_data, &st);
    if (e == kNil) return st;
    v_->table[e].state = ObjState::CREATED;  // published last (see NewEntryLocked)
    if ((st = PinLocked(e, out)) != Status::kOk) FreeObjectLocked(e);
    return st;
}

Header::SealWord& StoreClient::SealWordOf(const uint8_t* id) const {
    uint64_t a, b;
    uint32_t c;
    std::memcpy(&a, id, 8);
    std::memcpy(&b, id + 8, 8);
    std::memcpy(&c, id + 16, 4);
    // Ids of one process differ in the counter (bytes 8..15) and the return index: mix all.
    const uint64_t x = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ (uint64_t{c} * 0xC2B2AE3D27D4EB4Full)) * 0xFF51AFD7ED558CCDull;
    return hdr_->seal_words[(x >> 40) % kSealBuckets];
}

void StoreClient::WakeGetters(const uint8_t* id) {
    // seq_cst on all: pairs with AwaitSeal's waiters++ then word read (see Header).
    Header::SealWord& w = SealWordOf(id);
    w.seq.fetch_add(1, std::memory_order_seq_cst);
    hdr_->seal_seq.fetch_add(1, std::memory_order_seq_cst);
    if (w.waiters.load(std::memory_order_seq_cst) != 0) futex_wake(&w.seq);
    if (hdr_->waiters.load(std::memory_order_seq_cst) != 0) futex_wake(&hdr_->seal_seq);
}

static bool IsSerializedError(const void* payload, uint64_t size) {
    if (size < 8) return false;
    uint32_t word[2];
    std::memcpy(word, payload, sizeof(word));
    return word[0] == kSerializedMagic && (word[1] & kSerializedErrorFlag);
}

void StoreClient::CountIfError(const void* payload, uint64_t size) {
    if (IsSerializedError(payload, size)) hdr_->error_seq.fetch_add(1, std::memory_order_release);
}

Status StoreClient::Seal(const uint8_t* id) {
    {
        Locked lock(this);
        uint32_t e = v_->table.Find(id);
        if (e == kNil) return NotFound(id);
        Entry& x = v_->table[e];
        if (x.state != ObjState::CREATED) return BadState(id, x, "seal");
        x.state = ObjState::SEALED;
        v_->policy().Added(e);
        CountIfError(data_ + x.offset, x.size);
    }
    WakeGetters(id);  // outside the lock: woken getters should not find it held
    return Status::kOk;
}

Status StoreClient::Abort(const uint8_t* id) {
    Locked lock(this);
    uint32_t e = v_->table.Find(id);
    if (e == kNil) return NotFound(id);
    Entry& x = v_->table[e];
    if (x.state != ObjState::CREATED) return BadState(id, x, "abort");
    v_->table.Unindex(e);
    x.flags |= kDeletePending;
    DropPinLocked(e, UINT32_MAX, static_cast<uint16_t>(slot_));
    if (x.state != ObjState::FREE && x.pins == 0) FreeObjectLocked(e);
    return Status::kOk;
}

Status StoreClient::Put(const uint8_t* id, const void* data, int64_t size, bool user_data) {
    ObjectHandle h;
    Status st = CreateObject(id, size, &h, user_data);
    if (st != Status::kOk) return st;
    copy_parallel(h.data, data, h.size);
    {
        Locked lock(this);  // seal and unpin in one critical section
        Entry& x = v_->table[h.entry];
        if (x.gen != h.gen || x.state != ObjState::CREATED)
            return Fail(Status::kBadState, "object %s was aborted or deleted during put", Hex(id).c_str());
        x.state = ObjState::SEALED;
        v_->policy().Added(h.entry);
        DropPinLocked(h.entry, 1, static_cast<uint16_t>(slot_));
    }
    CountIfError(data, static_cast<uint64_t>(size));  // (after the seal: a getter that sees the count finds it)
    WakeGetters(id);
    return Status::kOk;
}

Status StoreClient::TryPut(const uint8_t* id, const void* data, int64_t size, bool user_data) {
    if (size < 0) return Fail(Status::kInvalid, "negative object size %lld", (long long)size);
    {
        Locked lock(this);
        Status st;
        uint32_t e = NewEntryLocked(id, size, false, user_data, &st);
        if (e == kNil) return st;
        Entry& x = v_->table[e];
        std::memcpy(data_ + x.offset, data, static_cast<size_t>(size));
        x.state = ObjState::SEALED;  // payload first, state last (see NewEntryLocked)
        v_->policy().Added(e);
        CountIfError(data, static_cast<uint64_t>(size));
    }
    WakeGetters(id);
    return Status::kOk;
}

Status StoreClient::Get(const uint8_t* id, int64_t timeout_ns, ObjectHandle* out) {
    const int64_t deadline = timeout_ns < 0 ? -1 : monotonic_ns() + timeout_ns;
    int64_t waiting_since = -1;  // for the spin's learning: how long *this object* took
    Header::SealWord& w = SealWordOf(id);
    Status st;
    for (;;) {
        uint32_t seq = w.seq.load(std::memory_order_seq_cst);  // before the check
        {
            Locked lock(this);
            uint32_t e = v_->table.Find(id);
            if (e != kNil) {
                Entry& x = v_->table[e];
                st = Status::kOk;
                if (x.state == ObjState::SPILLED) st = RestoreLocked(e);
                if (st == Status::kOk && x.state == ObjState::SEALED) {
                    v_->policy().Touched(e);
                    st = PinLocked(e, out);
                    x.flags |= kRead;
                }
                if (x.state == ObjState::SEALED || st != Status::kOk) break;
            }
        }
        const int64_t now = monotonic_ns();
        int64_t left = deadline < 0 ? -1 : deadline - now;
        if (deadline >= 0 && left <= 0) {
            st = Fail(Status::kTimeout, "timed out");
            if (waiting_since >= 0) seal_spin_.record(-1);
            return st;
        }
        if (waiting_since < 0) waiting_since = now;
        AwaitSeal(&w.seq, &w.waiters, seq, left);
    }
    if (waiting_since >= 0) seal_spin_.record(monotonic_ns() - waiting_since);
    return st;
}

void StoreClient::AwaitSeal(std::atomic<uint32_t>* word, std::atomic<uint32_t>* waiters, uint32_t seq,
                            int64_t left_ns) {
    // Spin first: most seals a getter waits for (a task's result) land within the spin.
    // A spinning getter is not counted in `waiters`, so the sealer pays no futex wake for
    // it. One spinner per node at a time (a claim that expires by itself, so a spinner
    // that dies holds nothing): getters blocked on many tasks at once (nested tasks)
    // would otherwise spin on every core the tasks they wait for need.
    const int64_t budget = seal_spin_.budget_ns();
    const int64_t now = monotonic_ns();
    int64_t claim = hdr_->spin_claim_until_ns.load(std::memory_order_relaxed);
    // relaxed: a claim only rations spinning; correctness rests on seal_seq/waiters.
    if (claim < now && hdr_->spin_claim_until_ns.compare_exchange_strong(claim, now + budget, std::memory_order_relaxed)) {
        const bool sealed = spin_until_changed_for(word, seq, budget);
        claim = now + budget;
        hdr_->spin_claim_until_ns.compare_exchange_strong(claim, 0, std::memory_order_relaxed);
        if (sealed) return;
    }
    // seq_cst on both: pairs with WakeGetters' word++ then waiters read (see Header).
    waiters->fetch_add(1, std::memory_order_seq_cst);
    if (word->load(std::memory_order_seq_cst) == seq) futex_wait(word, seq, left_ns);
    waiters->fetch_sub(1, std::memory_order_seq_cst);
}

Status StoreClient::Release(const ObjectHandle& h) {
    Locked lock(this);
    if (h.entry >= hdr_->max_objects || v_->table[h.entry].gen != h.gen)
        return Fail(Status::kNotPinned, "release of an object that no longer exists (aborted or reclaimed)");
    uint8_t id[kObjectIdSize];  // for the message only: the drop may free the entry
    std::memcpy(id, v_->table[h.entry].id, kObjectIdSize);
    if (DropPinLocked(h.entry, 1, static_cast<uint16_t>(slot_)) == 0)
        return Fail(Status::kNotPinned, "release of object %s, which this client has not pinned", Hex(id).c_str());
    return Status::kOk;
}

Status StoreClient::ReleaseId(const uint8_t* id) {
    ObjectHandle h;
    {
        Locked lock(this);
        uint32_t e = v_->table.Find(id);
        if (e == kNil) return NotFound(id);
        h.entry = e;
        h.gen = v_->table[e].gen;
    }
    return Release(h);
}

bool StoreClient::Contains(const uint8_t* id) {
    Locked lock(this);
    uint32_t e = v_->table.Find(id);
    return e != kNil && (v_->table[e].state == ObjState::SEALED || v_->table[e].state == ObjState::SPILLED);
}

std::string StoreClient::IdsWithPrefix(const uint8_t* prefix, size_t n) {
    std::string out;
    if (n > kObjectIdSize) return out;
    Locked lock(this);
    for (uint32_t e = 0; e < hdr_->entries_used; ++e) {
        const Entry& x = v_->table[e];
        if ((x.state != ObjState::SEALED && x.state != ObjState::SPILLED) || (x.flags & kDeletePending)) continue;
        if (std::memcmp(x.id, prefix, n) == 0) out.append(reinterpret_cast<const char*>(x.id), kObjectIdSize);
    }
    return out;
}

namespace {
// Sets ready[i] per id and returns how many are. A cold table costs two dependent cache
// misses per id (index slot, then entry), so the lookups run as a pipeline: while id i is
// looked up, the entry of id i + kAhead and the slot of id i + 2 * kAhead are on their way,
// and the misses of many ids overlap instead of queueing one after the other.
int LookUpReadyLocked(const ObjectTable& table, const uint8_t* ids, const uint32_t* homes, int n,
                      bool* ready) {
    constexpr int kAhead = 16;
    int count = 0;
    for (int i = 0; i < std::min(n, 2 * kAhead); ++i) table.PrefetchSlot(homes[i]);
    for (int i = 0; i < std::min(n, kAhead); ++i) table.PrefetchEntry(homes[i]);
    for (int i = 0; i < n; ++i) {
        if (i + 2 * kAhead < n) table.PrefetchSlot(homes[i + 2 * kAhead]);
        if (i + kAhead < n) table.PrefetchEntry(homes[i + kAhead]);
        uint32_t e = table.FindFrom(homes[i], ids + i * kObjectIdSize);
        ready[i] = e != kNil && (table[e].state == ObjState::SEALED || table[e].state == ObjState::SPILLED);
        count += ready[i];
    }
    return count;
}
}  // namespace

Status StoreClient::Wait(const uint8_t* ids, int n, int num_ready, int64_t timeout_ns, bool* ready) {
    if (num_ready > n || num_ready < 0 || n < 0)
        return Fail(Status::kInvalid, "num_ready=%d must be within 0..%d (the number of ids)", num_ready, n);
    const int64_t deadline = timeout_ns < 0 ? -1 : monotonic_ns() + timeout_ns;
    // Hashed once, before the mutex: the critical section is only the lookups.
    std::vector<uint32_t> homes(n);
    for (int i = 0; i < n; ++i) homes[i] = v_->table.Home(ids + i * kObjectIdSize);
    int64_t waiting_since = -1;
    for (;;) {
        uint32_t seq = hdr_->seal_seq.load(std::memory_order_seq_cst);
        int count;
        {
            Locked lock(this);
            count = LookUpReadyLocked(v_->table, ids, homes.data(), n, ready);
        }
        const int64_t now = monotonic_ns();
        int64_t left = deadline < 0 ? -1 : deadline - now;
        if (count >= num_ready) {
            if (waiting_since >= 0) seal_spin_.record(now - waiting_since);
            break;
        }
        if (deadline >= 0 && left <= 0) {
            if (waiting_since >= 0) seal_spin_.record(-1);
            break;
        }
        if (waiting_since < 0) waiting_since = now;
        AwaitSeal(&hdr_->seal_seq, &hdr_->waiters, seq, left);
    }
    return Status::kOk;
}

bool StoreClient::UnreadErrorLocked(const Entry& x) const {
    return !(x.flags & kRead) && x.state == ObjState::SEALED && Resident(x) &&
           IsSerializedError(data_ + x.offset, x.size);
}

bool StoreClient::IsUnreadError(const uint8_t* id) {
    Locked lock(this);
    uint32_t e = v_->table.Find(id);
    return e != kNil && UnreadErrorLocked(v_->table[e]);
}

Status StoreClient::Delete(const uint8_t* id, bool keep_unread_error) {
    Locked lock(this);
    uint32_t e = v_->table.Find(id);
    if (e == kNil) return NotFound(id);
    Entry& x = v_->table[e];
    if (keep_unread_error && UnreadErrorLocked(x)) return Status::kUnreadError;
    if (x.pins > 0) {  // deferred: invisible from now on, freed by the last release
        v_->table.Unindex(e);
        x.flags |= kDeletePending;
    } else {
        FreeObjectLocked(e);
    }
    return Status::kOk;
}

Status StoreClient::SizeOf(const uint8_t* id, uint64_t* size) {
    Locked lock(this);
    uint32_t e = v_->table.Find(id);
    if (e == kNil) return NotFound(id);
    *size = v_->table[e].size;
    return Status::kOk;
}

Status StoreClient::SpillFileOf(const uint8_t* id, std::string* path, uint64_t* size) {
    Locked lock(this);
    uint32_t e = v_->table.Find(id);
    if (e == kNil || v_->table[e].state != ObjState::SPILLED) return NotFound(id);
    *path = SpillPath(v_->table[e]);
    *size = v_->table[e].size;
    return Status::kOk;
}

StoreStats StoreClient::Stats() {
    Locked lock(this);
    return StoreStats{hdr_->data_size, hdr_->alloc.used, hdr_->pinned_bytes, hdr_->num_objects,
                      hdr_->num_spilled, hdr_->spilled_bytes, hdr_->spill_seq,
                      hdr_->spilled_total_bytes, hdr_->spill_ns, hdr_->restored_total,
                      hdr_->restored_total_bytes, hdr_->restore_ns};
}

// ---------------------------------------------------------------- dead clients

void StoreClient::ReclaimClientLocked(uint16_t slot) {
    v_->table.TakePinsOf(slot, [&](uint32_t e, uint32_t count) {
        Entry& x = v_->table[e];
        x.pins -= count;
        if (x.pins == 0 && Resident(x)) hdr_->pinned_bytes -= x.block;
    });
    // Its half-made objects, and deleted objects whose last pins were its own.
    for (uint32_t e = 0; e < hdr_->entries_used; ++e) {
        Entry& x = v_->table[e];
        if (x.state == ObjState::FREE || x.pins != 0) continue;
        if ((x.state == ObjState::CREATED && x.creator == slot) || (x.flags & kDeletePending)) FreeObjectLocked(e);
    }
}

int StoreClient::ReapLocked() {
    int reaped = 0;
    for (uint32_t s = 0; s < kMaxClients; ++s) {
        ClientSlot& c = reinterpret_cast<ClientSlot*>(base_ + hdr_->clients_off)[s];
        int32_t pid = c.pid.load(std::memory_order_relaxed);  // the mutex orders slot updates
        if (pid == 0 || !(kill(pid, 0) == -1 && errno == ESRCH)) continue;
        ReclaimClientLocked(static_cast<uint16_t>(s));
        c.pid.store(0, std::memory_order_relaxed);
        ++reaped;
    }
    return reaped;
}

int StoreClient::ReapDeadClients() {
    Locked lock(this);
    return ReapLocked();
}

void StoreClient::RepairLocked() {
    v_->table.Repair();
    std::vector<std::pair<uint64_t, uint64_t>> live;
    v_->policy().Clear();
    hdr_->pinned_bytes = hdr_->num_spilled = hdr_->spilled_bytes = 0;
    for (uint32_t e = 0; e < hdr_->entries_used; ++e) {
        Entry& x = v_->table[e];
        if (x.state == ObjState::FREE) continue;
        if (x.state == ObjState::SPILLED) { ++hdr_->num_spilled; hdr_->spilled_bytes += x.size; continue; }
        live.emplace_back(x.offset, x.block);
        if (x.pins) hdr_->pinned_bytes += x.block;
        if (x.state == ObjState::SEALED) v_->policy().Added(e);
    }
    v_->alloc.Rebuild(std::move(live));
}

void StoreClient::TestHoldLockForever() {
    pthread_mutex_lock(&hdr_->mutex);
    for (;;) pause();
}

}  // namespace mpiray::store

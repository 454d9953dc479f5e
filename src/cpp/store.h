// The node's shared-memory object store: one POSIX shm segment per node, attached by every
// process of the node (the creator too) through a StoreClient.
//
//   producer process                      segment (/dev/shm/mpiray-<uid>-<session>-store)
//   ────────────────                      ──────────────────────────────────────────────
//   CreateObject(id, n) ──lock──► table: Insert id → CREATED, pinned by producer
//                                 alloc: n bytes at offset o (64-aligned)
//   write payload at base+o  ◄── (no lock: the bytes are the producer's alone)
//   Seal(id) ───────────lock──► CREATED → SEALED, LRU head; seal words++ ─► futex wake
//                                                                         │
//   consumer process                                                      ▼
//   Get(id, timeout) ───lock──► SEALED? pin (client, id) → base+o ; else sleep on id's seal word
//   read payload (zero copy)      SPILLED? allocate, read spill file back, SEALED
//   Release(handle) ────lock──► unpin; last pin of a deleted object frees it
//
//   under pressure: Allocate fails → reap dead clients → spill LRU unpinned SEALED objects
//   to <spill_dir>/<segment>/<hex id> until it fits → else kFull.
//
// Locking: one robust, process-shared pthread mutex guards the table, the allocator and
// the LRU list. Critical sections are a hash probe and a few stores (bulk copies and
// futex sleeps happen outside it), so one lock costs less than the syscalls sharding would
// need. A holder killed by SIGKILL leaves EOWNERDEAD to the next locker, which marks the
// mutex consistent, rebuilds the derived structures (Repair) and reaps the dead clients.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "futex.h"
#include "store_layout.h"

namespace mpiray::store {

constexpr int64_t kSealSpinNs = 150 * 1000;  // the longest a getter spins before it sleeps

enum class Status : int {
    kOk = 0,
    kNotFound,      // no live object with that id
    kExists,        // an object with that id already exists
    kBadState,      // the object is in a state that forbids the call (message names it)
    kNotPinned,     // release by a client that holds no pin on the object
    kFull,          // pinned objects leave no room (message: requested, free, pinned)
    kTooLarge,      // the object can never fit, even in an empty store
    kInvalid,       // bad argument (negative size, too little /dev/shm, bad name, ...)
    kTimeout,       // the wait ran out
    kSegmentExists, // a live segment of that name already exists
    kNoSegment,     // no segment of that name
    kIoError,       // a system call failed (errno in ErrorInfo)
    kNotCreator,    // Destroy() by a process that did not create the segment
    kUnreadError,   // Delete(keep_unread_error): a serialized error no Get has read; kept
};

// Details of the calling thread's last failed call (thread-local: no locking needed).
struct ErrorInfo {
    std::string message;
    int sys_errno = 0;
};
const ErrorInfo& LastError();

// A pinned object as handed to a caller. `gen` lets Release detect a handle that outlived
// its object (aborted or reclaimed): such a release is a no-op returning kNotPinned.
struct ObjectHandle {
    uint32_t entry = kNil;
    uint32_t gen = 0;
    uint8_t* data = nullptr;
    uint64_t size = 0;
};

struct StoreStats {
    uint64_t capacity, used, pinned, num_objects, num_spilled, spilled_bytes, spill_count;
    // totals since the store was made: spills (spill_count of them) and restores
    uint64_t spilled_total_bytes, spill_ns, restored_total, restored_total_bytes, restore_ns;
};

// Bytes a segment of `capacity` data bytes takes in /dev/shm (metadata included).
uint64_t SegmentBytes(uint64_t capacity);

class StoreClient {
  public:
    // Creates the segment `name` ("/..." as for shm_open) with mode 0600, faults every page
    // in, and registers the caller as its first client.
    //   kInvalid: bad name, capacity < 4096, or /dev/shm has less room than SegmentBytes(capacity)
    //             (message names both numbers) — pick a smaller capacity.
    //   kSegmentExists: a segment of that name exists and its creator is alive — pick
    //             another name (a dead creator's segment is unlinked and creation retried).
    //   kIoError: shm_open/ftruncate/mmap/mkdir failed (errno) — nothing is left behind.
    // prefault=false skips the faulting (pages arrive on first touch): a runtime whose store
    // is large and mostly idle starts in milliseconds instead of ~0.7 s per GiB.
    static Status Create(const std::string& name, uint64_t capacity, const std::string& spill_dir,
                         std::unique_ptr<StoreClient>* out, bool prefault = true);
    // Maps an existing segment and registers a client slot.
    //   kNoSegment: no such segment (or it never finished initialising within 5 s).
    //   kIoError: mapping failed. kFull: all kMaxClients slots are taken by live clients.
    static Status Attach(const std::string& name, std::unique_ptr<StoreClient>* out);
    // Drops this client's remaining pins, frees its slot, unmaps.
    ~StoreClient();

    // Allocates `size` bytes for `id` (state CREATED) pinned by this client; *out points at
    // writable memory. Spills unpinned objects when needed.
    //   kExists: id is already present — it may be SEALED already (nothing to do) or still
    //            being created by someone else (Get it instead).
    //   kTooLarge: size > capacity — never retry. kInvalid: size < 0.
    //   kFull: pinned bytes leave no room (or the object table is full) — release or delete
    //          objects, then retry.
    //   kIoError: a spill failed (disk full?) — the store is unchanged.
    // user_data: a put or a task's return. The last max(64, 1/64) of the object table
    // is kept for the rest (errors, cancel marks, replies, queue messages), so that a
    // table full of user objects still lets a call fail with its error instead of
    // leaving its caller waiting; user data gets kFull there.
    Status CreateObject(const uint8_t* id, int64_t size, ObjectHandle* out, bool user_data = false);
    // CREATED → SEALED, then wakes getters in every process. The creator keeps its pin.
    //   kNotFound; kBadState (already SEALED or SPILLED) — a bug in the caller.
    Status Seal(const uint8_t* id);
    // Drops an unsealed object and the caller's pins on it; freed at once if no other pin.
    //   kNotFound; kBadState (not CREATED) — use Delete for sealed objects.
    Status Abort(const uint8_t* id);
    // CreateObject + copy (2 threads above 64 MiB) + Seal + Release, the common case.
    //   Errors as CreateObject; on a failure no object is left behind.
    Status Put(const uint8_t* id, const void* data, int64_t size, bool user_data = false);
    // Put in one critical section (the copy too, under the lock), without reaping dead
    // clients or spilling: it never sleeps on I/O, so a caller may keep its own lock (the
    // Python GIL) across it. For small objects only: the copy holds the store mutex.
    //   kFull: no room without evicting — call Put, which may spill. Else errors as Put.
    Status TryPut(const uint8_t* id, const void* data, int64_t size, bool user_data = false);
    // Waits until `id` is SEALED (timeout_ns < 0: forever), restores it if SPILLED, pins it.
    //   kTimeout: not sealed in time (including "never created") — retry or give up.
    //   kFull / kIoError: restoring a spilled object found no room / failed to read.
    Status Get(const uint8_t* id, int64_t timeout_ns, ObjectHandle* out);
    // Drops one pin taken by CreateObject/Get.
    //   kNotPinned: this client holds no pin there (double release, or a stale handle).
    Status Release(const ObjectHandle& h);
    // Drops one pin of this client on the live object `id`. kNotFound, kNotPinned.
    Status ReleaseId(const uint8_t* id);
    // True when `id` is SEALED or SPILLED.
    bool Contains(const uint8_t* id);
    // The ids (kObjectIdSize bytes each, one after another) of the SEALED and SPILLED
    // objects whose id starts with the n bytes at prefix: what one process made, since ids
    // begin with its node and nonce (mpiray/_ids.py). A scan of the table, for the rare
    // clean-up after a process died.
    std::string IdsWithPrefix(const uint8_t* prefix, size_t n);
    // Blocks until at least num_ready of the n ids are sealed or the timeout passes; fills
    // ready[i]. Returns kOk either way (ready says what happened); kInvalid if num_ready > n.
    Status Wait(const uint8_t* ids, int n, int num_ready, int64_t timeout_ns, bool* ready);
    // Removes `id` (any state): freed at once when unpinned, else by its last release; its
    // spill file is removed. The id can be created again at once. kNotFound.
    // keep_unread_error: a sealed serialized error (kSerializedErrorFlag) in memory that
    // no Get has read is kept, and kUnreadError returned (its owner reports it, as Ray's
    // "Unhandled error", then deletes it).
    Status Delete(const uint8_t* id, bool keep_unread_error = false);
    // True if `id` is what Delete(keep_unread_error) would keep: a sealed serialized error
    // in memory that no Get has read (an interactive driver reports such errors while they
    // are still referenced, as Ray's does).
    bool IsUnreadError(const uint8_t* id);
    // kNotFound.
    Status SizeOf(const uint8_t* id, uint64_t* size);
    // The file a spilled object's bytes are in, and their size; kNotFound if the object is
    // not spilled (a get that finds no room to restore it may read it from there).
    Status SpillFileOf(const uint8_t* id, std::string* path, uint64_t* size);
    // Where a spilled `id`'s bytes go (the store's spill directory / its hex id).
    std::string SpillPathOf(const uint8_t* id) const;
    // Publishes `id` as SPILLED, its `size` bytes already written by the caller to
    // SpillPathOf(id): an object that found no room in memory (an arriving copy, the
    // store pinned full) lives on disk, and a get restores it or reads it from there.
    //   kExists; kFull: the object table is full; kInvalid: size < 0.
    Status AdoptSpilled(const uint8_t* id, int64_t size);
    StoreStats Stats();
    // How many error objects were sealed so far (see kSerializedErrorFlag): a getter that
    // sees it move looks again at the objects it still waits for.
    uint32_t ErrorSeq() const { return hdr_->error_seq.load(std::memory_order_acquire); }
    // Reclaims pins and CREATED objects of clients whose process is gone (kill(pid, 0) ==
    // ESRCH). Returns how many clients were reaped. Also runs by itself when an allocation
    // does not fit and when the mutex is found EOWNERDEAD.
    int ReapDeadClients();
    // Creator only: unlinks the segment and removes the spill directory. Mappings in other
    // processes stay valid until they detach. kNotCreator.
    Status Destroy();

    const std::string& name() const { return name_; }
    uint64_t capacity() const { return hdr_->data_size; }
    int client_slot() const { return slot_; }
    // Test hook: takes the mutex and never returns (a test SIGKILLs the process).
    [[noreturn]] void TestHoldLockForever();

  private:
    friend class Locked;
    StoreClient() = default;
    void Bind(uint8_t* base, uint64_t size);
    Status RegisterClient();
    // --- called with the mutex held ---
    void RepairLocked();
    int ReapLocked();
    void ReclaimClientLocked(uint16_t slot);
    void FreeObjectLocked(uint32_t e);        // unindex (if needed), free memory/file, entry
    bool UnreadErrorLocked(const Entry& x) const;   // see IsUnreadError
    uint32_t DropPinLocked(uint32_t e, uint32_t n, uint16_t client);  // pins dropped
    // may_evict=false: fail with kFull rather than reap or spill (no I/O, bounded time).
    uint64_t AllocateLocked(uint64_t size, uint64_t* block, Status* st, bool may_evict = true);
    // A table entry with memory for a new id, every field set but its state (still FREE,
    // which Repair() treats as unused if we die before the caller publishes it); kNil
    // with *st set when the id exists or nothing fits.
    uint32_t NewEntryLocked(const uint8_t* id, int64_t size, bool may_evict, bool user_data, Status* st);
    Status SpillLocked(uint32_t e);
    Status RestoreLocked(uint32_t e);
    Status PinLocked(uint32_t e, ObjectHandle* out);
    // After the seal of id: bumps its bucket's word and seal_seq, wakes their sleepers.
    void WakeGetters(const uint8_t* id);
    // After a seal: bumps error_seq if the payload is a serialized error.
    void CountIfError(const void* payload, uint64_t size);
    Header::SealWord& SealWordOf(const uint8_t* id) const;
    // Waits (spin, then futex sleep up to left_ns; < 0: no limit) until *word moves from
    // seq; `waiters` counts the sleepers of word.
    void AwaitSeal(std::atomic<uint32_t>* word, std::atomic<uint32_t>* waiters, uint32_t seq, int64_t left_ns);
    std::string SpillPath(const Entry& x) const;

    std::string name_;
    uint8_t* base_ = nullptr;  // segment start in this process
    uint64_t map_size_ = 0;
    Header* hdr_ = nullptr;
    uint8_t* data_ = nullptr;
    int slot_ = -1;
    bool creator_ = false;
    AdaptiveSpin seal_spin_{kSealSpinNs};  // how long AwaitSeal spins, learnt
    struct Views;  // allocator / table / policy views over the segment (store.cpp)
    std::unique_ptr<Views> v_;
};

}  // namespace mpiray::store

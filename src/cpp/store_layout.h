// The store segment's layout: every struct here lives in POSIX shared memory, mapped at a
// different address in every process. So nothing here holds a pointer: links are entry
// indices (uint32_t) or byte offsets from the start of the data region (uint64_t).
//
//   segment: [Header][ClientSlot x kMaxClients][Entry x max_objects]
//            [index: uint32 x index_size][PinRecord x pins_size][data region: capacity bytes]
//
// Every field below the "lock-protected" line of Header, and every Entry, PinRecord and
// allocator block header, is read and written only while holding Header::mutex. The only
// lock-free words are the futex pairs (seal_seq/waiters, seal_words), the spin claim,
// error_seq and the magic/pid used to attach.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <pthread.h>

namespace mpiray::store {

// The one definition of the id size; Python reads it from here (store.pxd), never copies it.
inline constexpr size_t kObjectIdSize = 20;
inline constexpr uint64_t kAlign = 64;  // cache line: payloads never share a line with metadata
inline constexpr uint32_t kMaxClients = 4096;  // processes attached to one store (workers, actors, the driver)
inline constexpr uint32_t kNil = 0xFFFFFFFFu;
inline constexpr uint64_t kNilOff = ~uint64_t{0};
inline constexpr uint64_t kMagic = 0x5453594152495050ull;  // "PPIRAYST": header initialised
inline constexpr uint32_t kVersion = 7;  // 3: per-id seal words, spin claim; 4: error_seq; 5: 4096 clients;
                                         // 6: Entry::flags (read mark); 7: spill/restore totals
inline constexpr uint32_t kSealBuckets = 64;  // per-id seal words (Header::seal_words)

// The first 8 bytes of an object mpiray serialized (mpiray/serialization.py: magic, then
// flags); flags bit 0 marks a task's error. The store counts the seals of such objects
// (Header::error_seq), so that a get of many objects can fail as soon as any of them is
// an error, as Ray's does, without looking at the others while it waits.
inline constexpr uint32_t kSerializedMagic = 0x3159524D;  // "MRY1"
inline constexpr uint32_t kSerializedErrorFlag = 1;

enum class ObjState : uint8_t { FREE = 0, CREATED = 1, SEALED = 2, SPILLED = 3 };

inline const char* StateName(ObjState s) {
    switch (s) {
        case ObjState::FREE: return "FREE";
        case ObjState::CREATED: return "CREATED";
        case ObjState::SEALED: return "SEALED";
        case ObjState::SPILLED: return "SPILLED";
    }
    return "?";
}

// Entry::flags. kDeletePending: deleted while pinned, freed by the last release and
// invisible to lookups. kRead: a Get has pinned it (so a task error nobody read is told
// apart when it is deleted: Ray's "Unhandled error" report).
inline constexpr uint8_t kDeletePending = 1;
inline constexpr uint8_t kRead = 2;

// One object. `gen` grows every time the entry is freed, so a stale handle (a buffer
// outliving an abort or a reap) can never release a pin on the entry's next tenant.
struct alignas(64) Entry {
    uint8_t id[kObjectIdSize];
    ObjState state;
    uint8_t flags;           // kDeletePending | kRead
    int16_t creator;         // client slot that created it (reclaimed if that client dies mid-create)
    uint32_t pins;           // sum of this entry's PinRecord counts (rebuilt from them on repair)
    uint32_t gen;
    uint32_t lru_prev, lru_next;  // eviction list links; lru_next doubles as the free-list link
    uint64_t offset;              // payload offset in the data region (kNilOff when not in memory)
    uint64_t size;                // bytes the user asked for
    uint64_t block;               // bytes the allocator handed out (header + payload, 64-aligned)
};
static_assert(sizeof(Entry) == 64, "an Entry is one cache line so table scans stay cheap");

// Who pins what: one record per (client, entry) with a count, so reclaiming a dead client's
// pins is exact. Open addressing; count == 0 marks an empty slot.
struct PinRecord {
    uint32_t entry;
    uint16_t client;
    uint16_t pad;
    uint32_t count;
    uint32_t gen;
};

struct ClientSlot {
    std::atomic<int32_t> pid;  // 0: free. Written under the mutex; read lock-free only for display
    uint32_t pad;
};

// Free-block bins for the allocator: bin b holds free blocks of size in [2^b, 2^(b+1)).
struct AllocState {
    uint64_t bins[64];
    uint64_t nonempty;  // bit b set <=> bins[b] != kNilOff
    uint64_t used;      // bytes in allocated blocks
};

struct LruList {
    uint32_t head, tail;  // head = most recently used; eviction walks from tail
};

struct alignas(64) Header {
    std::atomic<uint64_t> magic;  // stored last at creation (release); attach waits for it (acquire)
    uint32_t version;
    std::atomic<int32_t> creator_pid;  // dead creator + leftover segment = stale, removable
    uint64_t total_size;
    uint64_t clients_off, entries_off, index_off, pins_off, data_off;  // from segment start
    uint64_t data_size;
    uint32_t max_objects, index_mask, pins_mask, pad0;
    char spill_dir[512];  // this segment's own spill directory (full path)

    alignas(64) pthread_mutex_t mutex;  // robust + process-shared; guards everything below

    // Futex pair for "something was sealed". A sealer bumps seal_seq and wakes only when
    // waiters != 0. A getter spins on seal_seq first (uncounted: spinners cost the sealer
    // no syscall); before it sleeps it bumps waiters, then re-reads seal_seq.
    // Both sides use seq_cst so at least one sees the other (Dekker): no lost wake-up.
    alignas(64) std::atomic<uint32_t> seal_seq;
    std::atomic<uint32_t> waiters;
    // Monotonic ns until which one getter may spin (0: nobody): getters take turns
    // spinning, and a dead spinner's claim simply expires.
    std::atomic<int64_t> spin_claim_until_ns;
    // The same protocol per bucket of ids (bucket = hash of the id): Get(id) spins and
    // sleeps on its id's bucket only, so a seal ends the spin of, and wakes, only the
    // getters whose ids share its bucket, not every getter of the node. Wait() (any of
    // many ids) uses seal_seq/waiters. A sealer bumps its bucket's word and seal_seq,
    // then wakes whichever has sleepers.
    struct alignas(64) SealWord {
        std::atomic<uint32_t> seq;
        std::atomic<uint32_t> waiters;
    };
    SealWord seal_words[kSealBuckets];
    // Bumped by every seal of an error object (kSerializedErrorFlag); read by getters.
    alignas(64) std::atomic<uint32_t> error_seq;

    // ---- lock-protected ----
    alignas(64) AllocState alloc;
    LruList lru;
    uint32_t entry_free_head;
    uint32_t entries_used;  // entries [entries_used, max_objects) were never used: all zero
    uint32_t num_objects;  // entries not FREE (any state)
    uint32_t num_spilled;
    uint64_t spilled_bytes;
    uint64_t pinned_bytes;  // blocks of entries with pins > 0
    uint64_t spill_seq;     // bumps once per spill, for stats and tests
    // Since the segment was made (memory_summary's "Spilled ... avg write throughput"):
    uint64_t spilled_total_bytes, spill_ns;              // what spills wrote, and their time
    uint64_t restored_total, restored_total_bytes, restore_ns;   // what restores read back
};

}  // namespace mpiray::store

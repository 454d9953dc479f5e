// The object table: Entry slots (stable indices, a free list), a hash index from object id to
// entry, and the per-client pin records. Both hash tables use linear probing with
// backward-shift deletion, so they never fill up with tombstones.
//
// Not thread-safe: the caller holds the store mutex.
#pragma once

#include <cstdint>
#include <cstring>

#include "store_layout.h"

namespace mpiray::store {

inline uint64_t Mix(uint64_t x) {  // splitmix64 finaliser: sequential ids still spread out
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

class ObjectTable {
  public:
    ObjectTable(Header* h, Entry* entries, uint32_t* index, PinRecord* pins)
        : h_(h), e_(entries), idx_(index), pins_(pins) {}

    void Init();
    Entry& operator[](uint32_t e) const { return e_[e]; }
    uint32_t capacity() const { return h_->max_objects; }

    // Entry of a live (not delete-pending) object with this id, or kNil.
    uint32_t Find(const uint8_t* id) const { return FindFrom(Home(id), id); }
    // The id's home slot in the index. Needs only index_mask, which is fixed when the
    // segment is made: callers may hash a batch of ids before they take the mutex.
    // (Inline, like FindFrom: a batch lookup calls both once per id.)
    // Ids one process makes one after another (node and nonce, then a counter, then a
    // return index: see mpiray/_ids.py) get neighbouring slots from a base that is random
    // per process: a process then first-touches an index page (a page fault in that
    // process, several us on a VM) once per ~256 new ids instead of once per id, which
    // made fresh workers several times slower for their first thousands of tasks. Other
    // ids (content hashes) still spread at random. Return indexes past 3 (a generator
    // task's thousands of items, its end at 0xFFFFFFEF) spread at random too: with only
    // the low bits, one task's items shared four homes and every lookup walked them all.
    uint32_t Home(const uint8_t* id) const {
        uint64_t a, b; uint32_t c;
        std::memcpy(&a, id, 8); std::memcpy(&b, id + 8, 8); std::memcpy(&c, id + 16, 4);
        return static_cast<uint32_t>(Mix(a) + (b << 2) + (c & 3) + Mix(c >> 2)) & h_->index_mask;
    }
    // Find, given Home(id).
    uint32_t FindFrom(uint32_t home, const uint8_t* id) const {
        for (uint32_t s = home;; s = (s + 1) & h_->index_mask) {
            uint32_t v = idx_[s];
            if (v == 0) return kNil;
            if (std::memcmp(e_[v - 1].id, id, kObjectIdSize) == 0) return v - 1;
        }
    }
    // Hints for a batch of Finds (each one is a cache miss in the index, then one in the
    // entries, when the table is cold): start loading an id's index slot (by its home), or
    // (once that slot is in cache) the entry it points to. No effect on the contents.
    void PrefetchSlot(uint32_t home) const { __builtin_prefetch(&idx_[home]); }
    void PrefetchEntry(uint32_t home) const {
        uint32_t v = idx_[home];
        if (v != 0) __builtin_prefetch(&e_[v - 1]);
    }
    // A fresh CREATED-less entry (state FREE, id set) already in the index, or kNil when the
    // table is full. The caller sets state and the rest.
    uint32_t Insert(const uint8_t* id);
    // Removes the id from the index (the entry lives on, e.g. until its last pin goes).
    void Unindex(uint32_t e);
    // Returns the entry to the free list and bumps its generation. Must be unindexed.
    void Release(uint32_t e);

    // Pins: one record per (client, entry). AddPin returns false when the pin table is full.
    bool AddPin(uint16_t client, uint32_t e);
    // Drops up to `n` pins of `client` on `e`; returns how many it dropped (0: none held).
    uint32_t DropPin(uint16_t client, uint32_t e, uint32_t n);
    // Calls f(entry, count) for every pin record of `client` and erases them.
    template <class F> void TakePinsOf(uint16_t client, F f);

    // After a crash inside the lock: rebuild the index, free list and every entry's pin count
    // from the entries' states and the pin records.
    void Repair();

  private:
    static uint64_t PinHash(uint16_t client, uint32_t e);
    uint32_t PinSlot(uint16_t client, uint32_t e) const;  // slot holding the record or kNil
    void ErasePin(uint32_t slot);

    Header* h_;
    Entry* e_;
    uint32_t* idx_;  // entry + 1; 0 = empty
    PinRecord* pins_;
};

template <class F> void ObjectTable::TakePinsOf(uint16_t client, F f) {
    for (uint32_t s = 0; s <= h_->pins_mask;) {
        PinRecord& r = pins_[s];
        if (r.count != 0 && r.client == client) {
            f(r.entry, r.count);
            ErasePin(s);  // may shift a later record into s: look at s again
            continue;
        }
        ++s;
    }
}

}  // namespace mpiray::store

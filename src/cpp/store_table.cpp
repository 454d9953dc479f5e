#include "store_table.h"

#include <cstring>
#include <unordered_set>
#include <vector>

namespace mpiray::store {

namespace {
// True when slot j's occupant (home k) may move back into the hole at i.
inline bool CanShift(uint32_t i, uint32_t j, uint32_t k) {
    return (j > i) ? (k <= i || k > j) : (k <= i && k > j);
}
}  // namespace

void ObjectTable::Init() {
    // Only ever called on a new segment, whose pages are zero (ftruncate): the index, pin
    // records and entries are already empty, and touching them here would fault in (and
    // charge to this process) tens of MB of table that a store may never use. Entries are
    // handed out from the free list, else from the never-used tail (entries_used).
    h_->entry_free_head = kNil;
    h_->entries_used = 0;
    h_->num_objects = 0;
}

uint32_t ObjectTable::Insert(const uint8_t* id) {
    uint32_t e = h_->entry_free_head;
    if (e != kNil) {
        h_->entry_free_head = e_[e].lru_next;
    } else if (h_->entries_used < h_->max_objects) {
        e = h_->entries_used++;  // a crash before the state is set leaves it FREE: Repair() lists it
    } else {
        return kNil;
    }
    Entry& x = e_[e];
    uint32_t gen = x.gen;
    std::memset(&x, 0, sizeof(Entry));
    std::memcpy(x.id, id, kObjectIdSize);
    x.gen = gen;
    x.creator = -1;
    x.lru_prev = x.lru_next = kNil;
    x.offset = kNilOff;
    uint32_t s = Home(id);
    while (idx_[s] != 0) s = (s + 1) & h_->index_mask;  // index has 2x slots: never full
    idx_[s] = e + 1;
    ++h_->num_objects;
    return e;
}

void ObjectTable::Unindex(uint32_t e) {
    uint32_t i = Home(e_[e].id);
    while (idx_[i] != e + 1) {
        if (idx_[i] == 0) return;  // not indexed (already delete-pending)
        i = (i + 1) & h_->index_mask;
    }
    for (uint32_t j = i;;) {
        j = (j + 1) & h_->index_mask;
        if (idx_[j] == 0) break;
        if (CanShift(i, j, Home(e_[idx_[j] - 1].id))) { idx_[i] = idx_[j]; i = j; }
    }
    idx_[i] = 0;
}

void ObjectTable::Release(uint32_t e) {
    Entry& x = e_[e];
    x.state = ObjState::FREE;
    x.flags = 0;
    x.pins = 0;
    x.offset = kNilOff;
    ++x.gen;
    x.lru_prev = kNil;
    x.lru_next = h_->entry_free_head;
    h_->entry_free_head = e;
    --h_->num_objects;
}

uint64_t ObjectTable::PinHash(uint16_t client, uint32_t e) {
    // Next to the entry's index (two slots per entry; a third pinner probes on): entries
    // are reused most-recently-freed first, so pins stay on pages this process has
    // touched (see Home).
    return (uint64_t{e} << 1) + (client & 1u);
}

uint32_t ObjectTable::PinSlot(uint16_t client, uint32_t e) const {
    for (uint32_t s = PinHash(client, e) & h_->pins_mask;; s = (s + 1) & h_->pins_mask) {
        const PinRecord& r = pins_[s];
        if (r.count == 0) return kNil;
        if (r.client == client && r.entry == e) return s;
    }
}

bool ObjectTable::AddPin(uint16_t client, uint32_t e) {
    uint32_t s = PinHash(client, e) & h_->pins_mask;
    for (uint32_t probes = 0;; s = (s + 1) & h_->pins_mask, ++probes) {
        PinRecord& r = pins_[s];
        if (r.count == 0) {
            // Keep the table at most 3/4 full so probes stay short and never loop forever.
            if (probes > h_->pins_mask / 4 * 3) return false;
            r.entry = e; r.client = client; r.count = 1;
            break;
        }
        if (r.client == client && r.entry == e) { ++r.count; break; }
    }
    ++e_[e].pins;
    return true;
}

uint32_t ObjectTable::DropPin(uint16_t client, uint32_t e, uint32_t n) {
    uint32_t s = PinSlot(client, e);
    if (s == kNil) return 0;
    uint32_t k = pins_[s].count < n ? pins_[s].count : n;
    pins_[s].count -= k;
    if (pins_[s].count == 0) ErasePin(s);
    e_[e].pins -= k;
    return k;
}

void ObjectTable::ErasePin(uint32_t i) {
    for (uint32_t j = i;;) {
        j = (j + 1) & h_->pins_mask;
        if (pins_[j].count == 0) break;
        if (CanShift(i, j, PinHash(pins_[j].client, pins_[j].entry) & h_->pins_mask)) {
            pins_[i] = pins_[j];
            i = j;
        }
    }
    pins_[i].count = 0;
}

void ObjectTable::Repair() {
    // Pin records: collect the valid ones (a record cut off mid-shift may appear twice: keep
    // one per key), then reinsert them into a cleared table.
    std::vector<PinRecord> keep;
    std::unordered_set<uint64_t> seen;
    for (uint32_t s = 0; s <= h_->pins_mask; ++s) {
        const PinRecord& r = pins_[s];
        if (r.count == 0 || r.entry >= h_->max_objects || e_[r.entry].state == ObjState::FREE) continue;
        if (seen.insert((uint64_t{r.client} << 32) | r.entry).second) keep.push_back(r);
    }
    std::memset(pins_, 0, sizeof(PinRecord) * (uint64_t{h_->pins_mask} + 1));
    for (const PinRecord& r : keep) {
        uint32_t t = PinHash(r.client, r.entry) & h_->pins_mask;
        while (pins_[t].count != 0) t = (t + 1) & h_->pins_mask;
        pins_[t] = r;
    }
    std::memset(idx_, 0, sizeof(uint32_t) * (uint64_t{h_->index_mask} + 1));
    h_->entry_free_head = kNil;
    h_->num_objects = 0;
    for (uint32_t e = h_->entries_used; e-- > 0;) {
        Entry& x = e_[e];
        x.pins = 0;
        if (x.state == ObjState::FREE) {
            x.lru_next = h_->entry_free_head;
            h_->entry_free_head = e;
            continue;
        }
        ++h_->num_objects;
        if (x.flags & kDeletePending) continue;
        uint32_t s = Home(x.id);
        while (idx_[s] != 0) s = (s + 1) & h_->index_mask;
        idx_[s] = e + 1;
    }
    for (uint32_t s = 0; s <= h_->pins_mask; ++s)
        if (pins_[s].count != 0) e_[pins_[s].entry].pins += pins_[s].count;
}

}  // namespace mpiray::store

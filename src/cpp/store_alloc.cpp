#include "store_alloc.h"

#include <algorithm>
#include <bit>

namespace mpiray::store {

namespace {
constexpr uint64_t kMinBlock = 2 * kAlign;  // header + one line: smaller remainders are not split off
constexpr int kExactScan = 16;             // bounded first-fit scan of the exact-size bin

int BinOf(uint64_t size) { return 63 - std::countl_zero(size); }
}  // namespace

uint64_t Allocator::BlockSize(uint64_t payload) {
    uint64_t body = (payload + kAlign - 1) & ~(kAlign - 1);
    return std::max<uint64_t>(kAlign + body, kMinBlock);
}

void Allocator::Init() {
    for (auto& b : s_->bins) b = kNilOff;
    s_->nonempty = 0;
    s_->used = 0;
    MakeFree(0, size_, 0);
}

void Allocator::Push(uint64_t off) {
    BlockHeader* h = H(off);
    int b = BinOf(h->size);
    h->prev_free = kNilOff;
    h->next_free = s_->bins[b];
    if (h->next_free != kNilOff) H(h->next_free)->prev_free = off;
    s_->bins[b] = off;
    s_->nonempty |= uint64_t{1} << b;
}

void Allocator::Unlink(uint64_t off) {
    BlockHeader* h = H(off);
    int b = BinOf(h->size);
    if (h->prev_free != kNilOff) H(h->prev_free)->next_free = h->next_free;
    else s_->bins[b] = h->next_free;
    if (h->next_free != kNilOff) H(h->next_free)->prev_free = h->prev_free;
    if (s_->bins[b] == kNilOff) s_->nonempty &= ~(uint64_t{1} << b);
}

void Allocator::MakeFree(uint64_t off, uint64_t size, uint64_t prev_size) {
    BlockHeader* h = H(off);
    h->size = size;
    h->prev_size = prev_size;
    h->is_free = 1;
    if (off + size < size_) H(off + size)->prev_size = size;
    Push(off);
}

uint64_t Allocator::Allocate(uint64_t payload, uint64_t* block) {
    const uint64_t need = BlockSize(payload);
    if (need > size_) return kNilOff;
    uint64_t found = kNilOff;
    int b = BinOf(need);
    int scanned = 0;
    for (uint64_t o = s_->bins[b]; o != kNilOff && scanned < kExactScan; o = H(o)->next_free, ++scanned) {
        if (H(o)->size >= need) { found = o; break; }
    }
    if (found == kNilOff) {
        uint64_t larger = b + 1 < 64 ? s_->nonempty & (~uint64_t{0} << (b + 1)) : 0;
        if (larger == 0) return kNilOff;
        found = s_->bins[std::countr_zero(larger)];  // any block there is >= 2^(b+1) > need
    }
    Unlink(found);
    BlockHeader* h = H(found);
    const uint64_t have = h->size;
    if (have - need >= kMinBlock) {
        h->size = need;
        MakeFree(found + need, have - need, need);
    }
    h->is_free = 0;
    s_->used += h->size;
    *block = h->size;
    return found + kAlign;
}

void Allocator::Free(uint64_t payload_off) {
    uint64_t off = payload_off - kAlign;
    BlockHeader* h = H(off);
    uint64_t size = h->size;
    s_->used -= size;
    uint64_t next = off + size;
    if (next < size_ && H(next)->is_free) {
        Unlink(next);
        size += H(next)->size;
    }
    uint64_t prev_size = h->prev_size;
    if (off != 0 && H(off - prev_size)->is_free) {
        off -= prev_size;
        Unlink(off);
        size += H(off)->size;
        prev_size = H(off)->prev_size;
    }
    MakeFree(off, size, prev_size);
}

void Allocator::Rebuild(std::vector<std::pair<uint64_t, uint64_t>> live) {
    std::sort(live.begin(), live.end());
    for (auto& b : s_->bins) b = kNilOff;
    s_->nonempty = 0;
    s_->used = 0;
    uint64_t cursor = 0, prev_size = 0;
    for (auto [payload, bsize] : live) {
        uint64_t off = payload - kAlign;
        if (off > cursor) {  // a gap: one free block
            MakeFree(cursor, off - cursor, prev_size);
            prev_size = off - cursor;
        }
        BlockHeader* h = H(off);
        h->size = bsize;
        h->prev_size = prev_size;
        h->is_free = 0;
        s_->used += bsize;
        prev_size = bsize;
        cursor = off + bsize;
    }
    if (cursor < size_) MakeFree(cursor, size_ - cursor, prev_size);
}

uint64_t Allocator::LargestFree() const {
    uint64_t best = 0;
    for (int b = 63; b >= 0; --b) {
        for (uint64_t o = s_->bins[b]; o != kNilOff; o = H(o)->next_free) best = std::max(best, H(o)->size);
        if (best) break;
    }
    return best > kAlign ? best - kAlign : 0;
}

}  // namespace mpiray::store

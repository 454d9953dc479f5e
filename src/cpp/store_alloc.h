// Offset-based allocator over the store's data region (boundary tags + power-of-two bins).
//
// Each block starts with a 64-byte BlockHeader, so payloads stay 64-byte aligned. Free
// blocks sit in bin floor(log2(size)); a search first scans the exact bin, then takes the
// head of any larger non-empty bin (found with one bit scan). Freeing coalesces with both
// physical neighbours in O(1) through `size` / `prev_size`. Everything is an offset from
// the region's start, so the same bytes are valid in every process that maps them.
//
// Not thread-safe: the caller holds the store mutex.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "store_layout.h"

namespace mpiray::store {

struct BlockHeader {
    uint64_t size;       // whole block, header included; multiple of kAlign
    uint64_t prev_size;  // size of the physically previous block (0 for the first)
    uint64_t next_free, prev_free;  // bin links while free
    uint32_t is_free;
    uint32_t pad[7];
};
static_assert(sizeof(BlockHeader) == kAlign, "the header must keep payloads 64-byte aligned");

class Allocator {
  public:
    Allocator(AllocState* state, uint8_t* base, uint64_t size) : s_(state), base_(base), size_(size) {}

    // Makes the whole region one free block.
    void Init();
    // Block bytes needed for a payload of `payload` bytes.
    static uint64_t BlockSize(uint64_t payload);
    // Returns the payload offset, or kNilOff when no free block is large enough.
    // `*block` receives the block's size (may exceed BlockSize(payload) by < 128 bytes).
    uint64_t Allocate(uint64_t payload, uint64_t* block);
    // Frees the block whose payload starts at `payload_off`.
    void Free(uint64_t payload_off);
    // Rebuilds every header and bin from the list of live blocks (payload offset, block
    // size), e.g. after a client died mid-update holding the lock. Gaps become free blocks.
    void Rebuild(std::vector<std::pair<uint64_t, uint64_t>> live);
    uint64_t used() const { return s_->used; }
    // Largest free block (O(free blocks)); for error messages and tests.
    uint64_t LargestFree() const;

  private:
    BlockHeader* H(uint64_t off) const { return reinterpret_cast<BlockHeader*>(base_ + off); }
    void Push(uint64_t off);
    void Unlink(uint64_t off);
    void MakeFree(uint64_t off, uint64_t size, uint64_t prev_size);

    AllocState* s_;
    uint8_t* base_;
    uint64_t size_;
};

}  // namespace mpiray::store

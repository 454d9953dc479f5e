// The eviction seam (after Plasma's eviction_policy.h): the store tells a policy what
// happened to each sealed, in-memory object, and asks it which object to spill next.
// To add a policy, implement EvictionPolicy; the store never looks at the order itself.
//
// The policy's state must live in the segment (all processes evict from the same set), so a
// policy is a per-process *view* over shared data, built on each attach. Callers hold the
// store mutex for every call.
#pragma once

#include <cstdint>

#include "store_layout.h"

namespace mpiray::store {

class EvictionPolicy {
  public:
    virtual ~EvictionPolicy() = default;
    // `e` became SEALED and resident (sealed, or restored from spill).
    virtual void Added(uint32_t e) = 0;
    // `e` was read (get): it becomes the most recent.
    virtual void Touched(uint32_t e) = 0;
    // `e` left memory (spilled, deleted).
    virtual void Removed(uint32_t e) = 0;
    // Candidates in eviction order: the first when `after` is kNil, else the one after
    // `after`; kNil at the end. The store skips pinned candidates itself.
    virtual uint32_t Next(uint32_t after) const = 0;
    // Forget everything (before a repair re-adds every resident object).
    virtual void Clear() = 0;
};

// Least recently used first: a doubly linked list threaded through Entry::lru_prev/next,
// head = most recent, eviction walks from the tail. All operations O(1).
class LruPolicy final : public EvictionPolicy {
  public:
    LruPolicy(LruList* list, Entry* entries) : l_(list), e_(entries) {}
    void Added(uint32_t e) override { PushHead(e); }
    void Touched(uint32_t e) override {
        if (l_->head == e) return;
        Unlink(e);
        PushHead(e);
    }
    void Removed(uint32_t e) override { Unlink(e); }
    uint32_t Next(uint32_t after) const override { return after == kNil ? l_->tail : e_[after].lru_prev; }
    void Clear() override { l_->head = l_->tail = kNil; }

  private:
    void PushHead(uint32_t e) {
        e_[e].lru_prev = kNil;
        e_[e].lru_next = l_->head;
        if (l_->head != kNil) e_[l_->head].lru_prev = e;
        else l_->tail = e;
        l_->head = e;
    }
    void Unlink(uint32_t e) {
        Entry& x = e_[e];
        if (x.lru_prev != kNil) e_[x.lru_prev].lru_next = x.lru_next;
        else l_->head = x.lru_next;
        if (x.lru_next != kNil) e_[x.lru_next].lru_prev = x.lru_prev;
        else l_->tail = x.lru_prev;
        x.lru_prev = x.lru_next = kNil;
    }
    LruList* l_;
    Entry* e_;
};

}  // namespace mpiray::store

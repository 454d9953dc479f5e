// An eventcount on a process-shared futex: lets a process sleep until "something
// changed" without the notifier paying a syscall when nobody sleeps.
//
//   waiter                               notifier
//   ------                               --------
//   key = ec.prepare_wait()              publish the state change (release store)
//   if (condition holds) cancel_wait()   ec.notify(n)
//   else ec.wait(key, timeout)             fence; if waiters == 0: return  (the fast path)
//   (then re-check: wake-ups may be        epoch += 1; FUTEX_WAKE(epoch, n)
//    spurious)
//
// Correctness is the classic store-buffer (Dekker) pattern: the waiter increments
// `waiters` then fences then checks the condition; the notifier publishes then fences
// then reads `waiters`. Both fences are seq_cst, so at least one side sees the other:
// either the waiter's re-check sees the published change, or the notifier sees the
// waiter and bumps the epoch, which makes the waiter's FUTEX_WAIT(epoch, key) return
// at once if it had not fallen asleep yet.
//
// Lives in shared memory: plain 32-bit atomics, no pointers, no process-private state.
#pragma once

#include <atomic>
#include <cstdint>

#include "futex.h"

namespace mpiray {

struct alignas(64) EventCount {
    // The futex word. Bumped by every notify that found a waiter; a waiter sleeps
    // only while it still holds the value it read in prepare_wait().
    std::atomic<uint32_t> epoch{0};
    // How many processes are between prepare_wait() and the end of wait()/cancel_wait().
    // Lets notify() skip the syscall entirely in the common no-waiter case.
    std::atomic<uint32_t> waiters{0};

    uint32_t prepare_wait() {
        // relaxed RMW + seq_cst fence: the fence keeps the caller's condition re-check
        // (which follows) from being ordered before this increment; pairs with the
        // fence in notify().
        waiters.fetch_add(1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        // acquire: if we read a bumped epoch, the change that caused it is visible.
        return epoch.load(std::memory_order_acquire);
    }

    void cancel_wait() {
        // relaxed: only a counter; a stale high value costs a notifier one syscall.
        waiters.fetch_sub(1, std::memory_order_relaxed);
    }

    // Sleeps until the epoch moves past key, timeout_ns passes (negative: no limit) or a
    // spurious wake. Returns futex_wait's code (0, ETIMEDOUT, EINTR).
    int wait(uint32_t key, int64_t timeout_ns) {
        int rc = futex_wait(&epoch, key, timeout_ns);
        // relaxed: see cancel_wait().
        waiters.fetch_sub(1, std::memory_order_relaxed);
        return rc;
    }

    // Call after publishing a change. Wakes up to n sleepers, and only pays the futex
    // syscall when someone is (about to be) asleep.
    void notify(int n) {
        // seq_cst fence: the caller's publication must be globally visible before we
        // read `waiters` (pairs with the fence in prepare_wait()).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        // relaxed: ordered by the fence above.
        if (waiters.load(std::memory_order_relaxed) == 0) return;
        // release: a waiter that reads the new epoch also sees the publication.
        epoch.fetch_add(1, std::memory_order_release);
        futex_wake(&epoch, n);
    }

    void notify_all() { notify(INT32_MAX); }
};

static_assert(sizeof(EventCount) == 64, "an eventcount fills exactly one cache line so it never shares one with a hot index");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "futex words must be lock-free 32-bit atomics");

}  // namespace mpiray

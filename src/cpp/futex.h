// Process-shared futex wait/wake on a 32-bit word that lives in shared memory.
//
// Why raw syscalls: C++20 std::atomic::wait/notify use *private* futexes in libstdc++,
// which never wake a waiter in another process (measured: ../shared/ENVIRONMENT.md).
// These calls omit FUTEX_PRIVATE_FLAG, so the kernel keys the wait queue on the
// physical page and a wake from any process mapping the segment reaches the sleeper.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mpiray {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "a futex word must be a plain 32-bit integer in shared memory");

// Sleeps while *word == expected, for at most timeout_ns (negative: no limit).
// Returns 0 when woken (or the value had already changed), ETIMEDOUT on timeout,
// EINTR when a signal interrupted the sleep. Spurious wake-ups are possible:
// callers re-check their condition in a loop.
inline int futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns = -1) {
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout_ns >= 0) {
        ts.tv_sec = static_cast<time_t>(timeout_ns / 1000000000);
        ts.tv_nsec = static_cast<long>(timeout_ns % 1000000000);
        tsp = &ts;
    }
    long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr, 0);
    if (rc == 0) return 0;
    if (errno == EAGAIN) return 0;  // value changed before we slept: not a timeout
    return errno;
}

// Wakes up to n sleepers on word (INT32_MAX: all). Returns how many were woken.
inline int futex_wake(std::atomic<uint32_t>* word, int n = INT32_MAX) {
    return static_cast<int>(syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, n, nullptr, nullptr, 0));
}

// One pause of a spin loop (tells the core we are spinning; ~40 cycles on Zen).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Pause number i of a long spin. Every kYieldEvery pauses it also yields the core: when
// the machine is oversubscribed (more runnable threads than cores), the thread we wait
// for may be queued behind us on this very core, and a pure spin would hold it off for
// the whole spin (a 10x slowdown measured on 2 cores with one busy process beside us).
// On an idle core sched_yield returns at once (~0.3 us).
constexpr int kYieldEvery = 64;
inline void spin_pause(int i) {
    cpu_relax();
    if (i % kYieldEvery == kYieldEvery - 1) sched_yield();
}

// How long a waiter spins before it sleeps, learnt from how long its waits have been.
// A spin pays when the event lands within it (a task's result, the next task): a futex
// sleep + wake (~50 us on a quiet VM) is saved. It does not when the waits are long: an
// idle waiter, or an oversubscribed machine where the thread we wait for needs the very
// core we would spin on. So a wait that ended within max_ns (spinning or asleep) sets the
// budget to cover twice that wait; a longer one (or a timeout) halves it, down to a
// short probe, which is also where it starts. Process-local (one per client object); relaxed atomics, since a lost
// update only nudges a heuristic.
class AdaptiveSpin {
  public:
    static constexpr int64_t kProbeNs = 2000;
    explicit AdaptiveSpin(int64_t max_ns) : max_ns_(max_ns), budget_ns_(kProbeNs) {}
    int64_t budget_ns() const { return budget_ns_.load(std::memory_order_relaxed); }
    // waited_ns: how long the awaited event took to come; < 0: it did not come.
    void record(int64_t waited_ns) {
        const int64_t b = budget_ns();
        budget_ns_.store(waited_ns >= 0 && waited_ns <= max_ns_
                             ? std::min(max_ns_, std::max(b, 2 * waited_ns + kProbeNs))
                             : std::max(kProbeNs, b / 2),
                         std::memory_order_relaxed);
    }

  private:
    int64_t max_ns_;
    std::atomic<int64_t> budget_ns_;
};

// Spins up to `spins` pauses while *word == expected; true if it changed meanwhile.
// Why: on this kind of VM a futex sleep + wake costs ~50 us when the machine is quiet,
// longer than a whole task round trip, while the change we wait for often lands within
// a few microseconds. The spin is bounded so that an idle waiter still sleeps.
inline bool spin_until_changed(const std::atomic<uint32_t>* word, uint32_t expected, int spins) {
    for (int i = 0; i < spins; ++i) {
        if (word->load(std::memory_order_acquire) != expected) return true;
        spin_pause(i);
    }
    return word->load(std::memory_order_acquire) != expected;
}

// Monotonic clock in nanoseconds, for deadlines that survive spurious wake-ups.
inline int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Spins while *word == expected for up to budget_ns; true if it changed meanwhile.
inline bool spin_until_changed_for(const std::atomic<uint32_t>* word, uint32_t expected, int64_t budget_ns) {
    const int64_t deadline = monotonic_ns() + budget_ns;
    for (int i = 0;; ++i) {
        if (word->load(std::memory_order_acquire) != expected) return true;
        spin_pause(i);
        if (i % 64 == 63 && monotonic_ns() >= deadline) return word->load(std::memory_order_acquire) != expected;
    }
}

}  // namespace mpiray

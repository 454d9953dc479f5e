// The raw futex ping-pong that benchmarks/queue.py compares the queue's round trip with.
#include "pingpong.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "futex.h"

namespace mpiray {

double futex_pingpong_rtt_ns(int iters) {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || iters < 1) return -1.0;
    auto* ping = new (p) std::atomic<uint32_t>(0);
    auto* pong = new (static_cast<char*>(p) + 64) std::atomic<uint32_t>(0);
    pid_t child = fork();
    if (child < 0) {
        munmap(p, 4096);
        return -1.0;
    }
    if (child == 0) {
        for (uint32_t i = 1; i <= static_cast<uint32_t>(iters); ++i) {
            // acquire/release: the two words carry the whole conversation.
            while (ping->load(std::memory_order_acquire) != i) futex_wait(ping, i - 1);
            pong->store(i, std::memory_order_release);
            futex_wake(pong, 1);
        }
        _exit(0);
    }
    const int64_t t0 = monotonic_ns();
    for (uint32_t i = 1; i <= static_cast<uint32_t>(iters); ++i) {
        ping->store(i, std::memory_order_release);
        futex_wake(ping, 1);
        while (pong->load(std::memory_order_acquire) != i) futex_wait(pong, i - 1);
    }
    const int64_t t1 = monotonic_ns();
    int status = 0;
    waitpid(child, &status, 0);
    munmap(p, 4096);
    return static_cast<double>(t1 - t0) / iters;
}

}  // namespace mpiray

// The wait of a node's MPI thread: until a message from another rank is pending, or a
// thread of this process has something to send (poke), or a timeout; without the GIL.
//
//   other ranks ──MPI──► MPI_Iprobe ─┐
//                                    ├─► wait() returns ──► the Python loop handles it
//   local threads ──poke()──► word ──┘
//
// Why: MPICH's blocking receive burns a core, so incoming messages can only be polled.
// Polled from Python, each nap costs a GIL hand-off and the naps overshoot by the timer
// slack (50 us by default); short naps then starve the process's other threads, and long
// ones add their length to every cross-node hop. Here a nap is a futex sleep on the poke
// word (a local send ends it at once) and a probe costs ~0.5 us with no GIL.
//
// MPI is not linked in: the caller passes MPI_Iprobe's address (from the libmpi that
// mpi4py loaded) and the communicator's handle, so the single-host build needs no MPI.
#pragma once

#include <sys/prctl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "futex.h"

namespace mpiray {

// int MPI_Iprobe(int source, int tag, MPI_Comm comm, int* flag, MPI_Status* status).
// The handle travels as intptr_t: it is an int in MPICH's ABI and a pointer in the
// standard ABI and Open MPI; both pass in the same integer register.
using IprobeFn = int (*)(int, int, intptr_t, int*, void*);

class MpiPoller {
public:
    enum Result { kTimeout = 0, kMessage = 1, kPoked = 2 };

    MpiPoller(uintptr_t iprobe, intptr_t comm, int source, int tag)
        : iprobe_(reinterpret_cast<IprobeFn>(iprobe)), comm_(comm), source_(source), tag_(tag) {}

    // kMessage, kPoked or kTimeout; a negative MPI error code if the probe failed.
    // Probes every nap_ns until timeout_ns has passed.
    int wait(int64_t timeout_ns, int64_t nap_ns) {
        const int64_t deadline = monotonic_ns() + timeout_ns;
        for (;;) {
            if (poked_.exchange(0, std::memory_order_acq_rel) != 0) return kPoked;
            int flag = 0;
            alignas(16) unsigned char status[64];   // >= every ABI's MPI_Status
            int rc = iprobe_(source_, tag_, comm_, &flag, status);
            if (rc != 0) return -rc;
            if (flag) return kMessage;
            const int64_t left = deadline - monotonic_ns();
            if (left <= 0) return kTimeout;
            sleeping_.store(1, std::memory_order_seq_cst);
            if (poked_.load(std::memory_order_seq_cst) == 0)
                futex_wait(&poked_, 0, std::min(left, nap_ns));
            sleeping_.store(0, std::memory_order_relaxed);
        }
    }

    // Ends the current or next wait(); a syscall only when the waiter sleeps.
    void poke() {
        if (poked_.exchange(1, std::memory_order_seq_cst) == 0 &&
            sleeping_.load(std::memory_order_seq_cst) != 0)
            futex_wake(&poked_, 1);
    }

private:
    IprobeFn iprobe_;
    intptr_t comm_;
    int source_, tag_;
    std::atomic<uint32_t> poked_{0};
    std::atomic<uint32_t> sleeping_{0};
};

// Naps of the calling thread end within ns of their time (the kernel's default slack of
// 50 us would otherwise be added to every nap).
inline int set_timer_slack_ns(unsigned long ns) { return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0); }

}  // namespace mpiray

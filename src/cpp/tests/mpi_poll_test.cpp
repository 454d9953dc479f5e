// Unit tests of MpiPoller (mpi_poll.h) with a stand-in for MPI_Iprobe: no MPI needed.
// Plain asserts that survive NDEBUG; threads for the poke and the message cases.
// Exit status = failures.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "mpi_poll.h"
#include "tests/check.h"

using mpiray::MpiPoller;


// The stand-in probe: a message is "pending" once g_pending is set; counts its calls and
// checks that the poller passes its arguments through.
static std::atomic<int> g_pending{0};
static std::atomic<int> g_probes{0};
static std::atomic<int> g_bad_args{0};
static std::atomic<int> g_error{0};
static int fake_iprobe(int source, int tag, intptr_t comm, int* flag, void* status) {
    g_probes.fetch_add(1);
    if (source != -2 || tag != 11 || comm != 0x44000001 || status == nullptr) g_bad_args.fetch_add(1);
    *flag = g_pending.load();
    return g_error.load();
}

static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

static MpiPoller make() {
    return MpiPoller(reinterpret_cast<uintptr_t>(&fake_iprobe), 0x44000001, -2, 11);
}

static void test_timeout_sleeps_between_probes() {
    MpiPoller p = make();
    g_probes = 0;
    auto t = std::chrono::steady_clock::now();
    CHECK(p.wait(50'000'000, 10'000'000) == MpiPoller::kTimeout);   // 50 ms, a probe per 10 ms
    double took = seconds_since(t);
    CHECK(took >= 0.049 && took < 0.5);
    CHECK(g_probes.load() >= 4 && g_probes.load() <= 8);             // napped, did not spin
    CHECK(g_bad_args.load() == 0);
}

static void test_poke_from_another_thread_ends_a_long_wait_at_once() {
    MpiPoller p = make();
    std::chrono::steady_clock::time_point poked_at;
    std::thread poker([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        poked_at = std::chrono::steady_clock::now();
        p.poke();
    });
    CHECK(p.wait(10'000'000'000, 1'000'000'000) == MpiPoller::kPoked);  // 10 s, 1 s naps
    CHECK(seconds_since(poked_at) < 0.05);
    poker.join();
    // a poke with nobody waiting ends the next wait, once
    p.poke();
    CHECK(p.wait(1'000'000'000, 1'000'000) == MpiPoller::kPoked);
    CHECK(p.wait(5'000'000, 1'000'000) == MpiPoller::kTimeout);
}

static void test_a_message_is_seen_within_a_probe_interval() {
    MpiPoller p = make();
    g_pending = 0;
    std::chrono::steady_clock::time_point sent_at;
    std::thread sender([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        sent_at = std::chrono::steady_clock::now();
        g_pending = 1;
    });
    CHECK(p.wait(10'000'000'000, 2'000'000) == MpiPoller::kMessage);   // probe every 2 ms
    CHECK(seconds_since(sent_at) < 0.05);
    sender.join();
    CHECK(p.wait(1'000'000, 1'000'000) == MpiPoller::kMessage);        // still pending
    g_pending = 0;
}

static void test_a_failed_probe_is_reported() {
    MpiPoller p = make();
    g_error = 17;
    CHECK(p.wait(1'000'000'000, 1'000'000) == -17);
    g_error = 0;
}

int main() {
    test_timeout_sleeps_between_probes();
    test_poke_from_another_thread_ends_a_long_wait_at_once();
    test_a_message_is_seen_within_a_probe_interval();
    test_a_failed_probe_is_reported();
    if (g_failures == 0) std::printf("mpi_poll_test: all passed\n");
    return g_failures;
}

// Unit tests of the task queue: plain asserts that survive NDEBUG, real fork()ed
// processes for the SIGKILL cases, threads for the stress test. Exit status = failures.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "futex.h"
#include "queue.h"
#include "tests/check.h"

using mpiray::QueueStatus;
using mpiray::TaskQueue;


static std::string unique_name(const char* what) {
    static int n = 0;
    return "/mpiray-qtest-" + std::to_string(getpid()) + "-" + what + "-" + std::to_string(n++);
}

struct Q {  // owns a fresh segment for one test
    std::string name;
    TaskQueue* q = nullptr;
    Q(const char* what, uint32_t cap, uint32_t slot = 512) : name(unique_name(what)) {
        int rc = TaskQueue::create(name, cap, slot, &q);
        if (rc != 0) {
            std::fprintf(stderr, "create %s failed: %s\n", name.c_str(), std::strerror(rc));
            std::exit(2);
        }
    }
    ~Q() {
        delete q;
        TaskQueue::unlink(name);
    }
};

static bool push_str(TaskQueue* q, const std::string& s) { return q->try_push(s.data(), s.size()) == QueueStatus::ok; }

static std::string pop_str(TaskQueue* q, int consumer = -1, int64_t timeout_ns = 0, QueueStatus* st_out = nullptr) {
    std::vector<char> buf(q->max_payload());
    uint32_t len = 0;
    QueueStatus st = q->pop(buf.data(), &len, consumer, timeout_ns);
    if (st_out) *st_out = st;
    return st == QueueStatus::ok ? std::string(buf.data(), len) : std::string("<none>");
}

static void test_create_attach() {
    Q a("ca", 8, 128);
    CHECK(a.q->capacity() == 8 && a.q->max_payload() == 128 - TaskQueue::kSlotHeader);
    TaskQueue* dup = nullptr;
    CHECK(TaskQueue::create(a.name, 8, 128, &dup) == EEXIST);
    CHECK(TaskQueue::create(a.name + "x", 8, 100, &dup) == EINVAL);  // not a multiple of 64
    CHECK(TaskQueue::create(a.name + "x", 0, 128, &dup) == EINVAL);
    TaskQueue* b = nullptr;
    CHECK(TaskQueue::attach(a.name, &b) == 0);
    CHECK(b->capacity() == 8);
    CHECK(push_str(a.q, "hello"));
    CHECK(pop_str(b) == "hello");
    delete b;
    CHECK(TaskQueue::attach("/mpiray-qtest-no-such", &b) == ENOENT);
}

static void test_fifo_full_empty_wrap() {
    for (uint32_t cap : {1u, 3u, 8u}) {  // 3: the non-power-of-two index path
        Q a("fifo", cap, 64);
        std::vector<char> big(a.q->max_payload() + 1, 'x');
        CHECK(a.q->try_push(big.data(), big.size()) == QueueStatus::too_big);
        int next_in = 0, next_out = 0;
        for (int round = 0; round < 50; ++round) {  // many laps
            while (push_str(a.q, std::to_string(next_in))) ++next_in;
            CHECK(next_in - next_out == static_cast<int>(cap));
            CHECK(a.q->size() == cap);
            CHECK(a.q->push("z", 1, 1000) == QueueStatus::timeout);
            for (int i = 0; i < static_cast<int>(cap); ++i) CHECK(pop_str(a.q) == std::to_string(next_out++));
            uint32_t len = 0;
            char buf[64];
            CHECK(a.q->try_pop(buf, &len, -1) == QueueStatus::would_block);
        }
        CHECK(a.q->size() == 0);
    }
}

static void test_timeout() {
    Q a("to", 4);
    QueueStatus st;
    int64_t t0 = mpiray::monotonic_ns();
    pop_str(a.q, -1, 50 * 1000 * 1000, &st);
    int64_t dt = mpiray::monotonic_ns() - t0;
    CHECK(st == QueueStatus::timeout);
    CHECK(dt >= 45 * 1000 * 1000 && dt < 500 * 1000 * 1000);
}

static void test_close() {
    Q a("close", 4);
    CHECK(push_str(a.q, "a") && push_str(a.q, "b"));
    std::atomic<int> woke{0};
    Q e("close-empty", 4);
    std::thread waiter([&] {
        QueueStatus st;
        pop_str(e.q, -1, -1, &st);
        if (st == QueueStatus::closed) woke = 1;
    });
    usleep(20000);
    e.q->close();
    waiter.join();
    CHECK(woke == 1);
    a.q->close();
    CHECK(a.q->closed());
    CHECK(a.q->try_push("c", 1) == QueueStatus::closed);
    QueueStatus st;
    CHECK(pop_str(a.q, -1, -1, &st) == "a");
    CHECK(pop_str(a.q, -1, -1, &st) == "b");
    pop_str(a.q, -1, -1, &st);
    CHECK(st == QueueStatus::closed);
    // A producer blocked on a full queue is released too.
    Q f("close-full", 1);
    CHECK(push_str(f.q, "x"));
    std::thread producer([&] { woke = f.q->push("y", 1, -1) == QueueStatus::closed ? 2 : 0; });
    usleep(20000);
    f.q->close();
    producer.join();
    CHECK(woke == 2);
}

static void test_records() {
    Q a("rec", 8);
    CHECK(push_str(a.q, "one") && push_str(a.q, "two") && push_str(a.q, "three"));
    CHECK(pop_str(a.q, 5) == "one");
    std::vector<std::string> got;
    CHECK(a.q->recover(5, &got) == QueueStatus::ok && got.size() == 1 && got[0] == "one");
    got.clear();
    CHECK(a.q->recover(5, &got) == QueueStatus::ok && got.empty());  // recover clears
    CHECK(pop_str(a.q, 5) == "two");
    CHECK(a.q->done(5) == QueueStatus::ok);
    CHECK(a.q->recover(5, &got) == QueueStatus::ok && got.empty());
    CHECK(pop_str(a.q, 5) == "three");
    CHECK(push_str(a.q, "four"));
    CHECK(pop_str(a.q, 5) == "four");  // the next pop forgets "three"
    CHECK(a.q->recover(5, &got) == QueueStatus::ok && got.size() == 1 && got[0] == "four");
    uint32_t len = 0;
    char buf[512];
    CHECK(a.q->try_pop(buf, &len, TaskQueue::kMaxConsumers) == QueueStatus::bad_consumer);
    CHECK(a.q->try_pop(buf, &len, -2) == QueueStatus::bad_consumer);
    CHECK(a.q->done(-1) == QueueStatus::bad_consumer);
    // A recorded batch keeps at most kRecordItems.
    for (int i = 0; i < 40; ++i) CHECK(push_str(a.q, "b" + std::to_string(i)) || i >= 8);
    std::vector<char> out(a.q->max_payload() * 64);
    uint32_t lens[64];
    int n = 0;
    CHECK(a.q->pop_batch(out.data(), lens, 64, 7, 0, &n) == QueueStatus::ok && n == 8);
    got.clear();
    CHECK(a.q->recover(7, &got) == QueueStatus::ok && got.size() == 8 && got[7] == "b7");
}

// held_heads: what recorded consumers hold, cut to `head` bytes, read-only.
static void test_held_heads() {
    Q a("heads", 8);
    CHECK(push_str(a.q, "first-item") && push_str(a.q, "second") && push_str(a.q, "free"));
    CHECK(pop_str(a.q, 1) == "first-item");
    CHECK(pop_str(a.q, 3) == "second");
    CHECK(pop_str(a.q, -1) == "free");  // unrecorded: not held
    std::vector<std::string> heads;
    a.q->held_heads(8, 5, &heads);
    CHECK(heads.size() == 2 && heads[0] == "first" && heads[1] == "secon");
    heads.clear();
    a.q->held_heads(2, 64, &heads);  // only consumers 0 and 1 looked at
    CHECK(heads.size() == 1 && heads[0] == "first-item");
    heads.clear();
    a.q->held_heads(4, 64, &heads, 3);  // only consumer 3: what one worker runs
    CHECK(heads.size() == 1 && heads[0] == "second");
    CHECK(a.q->done(1) == QueueStatus::ok);
    heads.clear();
    a.q->held_heads(8, 64, &heads);
    CHECK(heads.size() == 1 && heads[0] == "second");
    std::vector<std::string> got;
    CHECK(a.q->recover(3, &got) == QueueStatus::ok && got.size() == 1);  // left as it was
    // queued_heads: what waits in the ring, oldest first, left there
    Q b("queued", 4);
    CHECK(push_str(b.q, "alpha") && push_str(b.q, "beta") && push_str(b.q, "gamma"));
    CHECK(pop_str(b.q) == "alpha");
    heads.clear();
    b.q->queued_heads(3, &heads);
    CHECK(heads.size() == 2 && heads[0] == "bet" && heads[1] == "gam");
    CHECK(push_str(b.q, "delta") && push_str(b.q, "eps"));  // wraps the ring
    heads.clear();
    b.q->queued_heads(64, &heads);
    CHECK(heads.size() == 4 && heads[0] == "beta" && heads[3] == "eps");
    CHECK(pop_str(b.q) == "beta");
}

// Forks a child that sets kill point `point` and runs `op`; returns after it is dead.
template <class F>
static void in_child_killed_at(int point, F op) {
    pid_t pid = fork();
    if (pid == 0) {
        TaskQueue::set_test_kill_point(point);
        op();
        _exit(0);  // the kill point was not reached
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_consumer_kill_points() {
    // point -> is the item recovered (true) or still in the ring (false)?
    const struct { int point; bool recovered; } cases[] = {{1, false}, {2, true}, {3, true}, {4, true}, {5, true}};
    for (auto c : cases) {
        Q a("ckill", 2, 128);
        CHECK(push_str(a.q, "A") && push_str(a.q, "B"));
        in_child_killed_at(c.point, [&] { pop_str(a.q, 3); });
        std::vector<std::string> got;
        CHECK(a.q->recover(3, &got) == QueueStatus::ok);
        CHECK(got.size() == (c.recovered ? 1u : 0u));
        if (c.recovered && !got.empty()) CHECK(got[0] == "A");
        // The ring is not wedged: what is left comes out in order, then it takes new laps.
        if (!c.recovered) CHECK(pop_str(a.q) == "A");
        CHECK(pop_str(a.q) == "B");
        for (int i = 0; i < 10; ++i) {
            CHECK(push_str(a.q, "x" + std::to_string(i)));
            CHECK(pop_str(a.q, -1, 1000000000) == "x" + std::to_string(i));
        }
    }
}

static void test_producer_and_unrecorded_kill_points() {
    for (int point : {11, 12}) {  // a producer dies holding a claimed slot
        Q a("pkill", 4, 128);
        in_child_killed_at(point, [&] { push_str(a.q, "lost"); });
        CHECK(push_str(a.q, "after"));
        QueueStatus st;
        // The blocked consumer notices the dead owner within a liveness check period.
        CHECK(pop_str(a.q, -1, 2000000000, &st) == "after");
        for (int i = 0; i < 10; ++i) CHECK(push_str(a.q, "y") && pop_str(a.q) == "y");
    }
    {
        Q a("pkill13", 4, 128);
        in_child_killed_at(13, [&] { push_str(a.q, "published"); });
        CHECK(pop_str(a.q) == "published");
    }
    {  // an unrecorded consumer dies mid-pop: its item is lost (documented) but the ring lives
        Q a("ukill", 1, 128);
        CHECK(push_str(a.q, "A"));
        in_child_killed_at(2, [&] { pop_str(a.q, -1); });
        CHECK(a.q->push("B", 1, 2000000000) == QueueStatus::ok);  // repairs the slot
        CHECK(pop_str(a.q, -1, 1000000000) == "B");
    }
}

// wait_nonempty reports an item only when a pop can take it: a producer that died
// mid-push leaves a claimed slot (head counts it) that blocks every pop until repaired.
// The inbox thread loops wait_nonempty + pop_batch(timeout 0): were a dead producer's
// slot reported as an item, it would spin forever and never repair it.
static void test_wait_nonempty_dead_producer() {
    for (int point : {11, 12}) {
        Q a("wne-dead", 4, 128);
        in_child_killed_at(point, [&] { push_str(a.q, "lost"); });
        CHECK(push_str(a.q, "after"));
        CHECK(a.q->wait_nonempty(2000000000LL, 1, 100000) == QueueStatus::ok);
        uint32_t len = 0;
        char buf[512];
        CHECK(a.q->try_pop(buf, &len, -1) == QueueStatus::ok && std::string(buf, len) == "after");
        CHECK(a.q->wait_nonempty(0) == QueueStatus::timeout);
    }
}

// Many producers and consumers on threads, a small ring so it laps and fills constantly.
static void test_stress() {
    constexpr int kProducers = 4, kConsumers = 4, kPerProducer = 100000;
    Q a("stress", 16, 64);
    std::vector<std::vector<int>> last(kConsumers, std::vector<int>(kProducers, -1));
    std::vector<std::atomic<uint8_t>> seen(kProducers * kPerProducer);
    std::atomic<int> order_errors{0}, dup{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < kProducers; ++p)
        threads.emplace_back([&, p] {
            for (int i = 0; i < kPerProducer; ++i) {
                int msg[2] = {p, i};
                if (a.q->push(msg, sizeof msg, -1) != QueueStatus::ok) std::abort();
            }
        });
    for (int c = 0; c < kConsumers; ++c)
        threads.emplace_back([&, c] {
            std::vector<char> out(a.q->max_payload() * 8);
            uint32_t lens[8];
            for (;;) {
                int n = 0;
                QueueStatus st = a.q->pop_batch(out.data(), lens, 8, c % 2 ? c : -1, -1, &n);
                if (st == QueueStatus::closed) return;
                for (int k = 0; k < n; ++k) {
                    int msg[2];
                    std::memcpy(msg, out.data() + k * a.q->max_payload(), sizeof msg);
                    if (msg[1] <= last[c][msg[0]]) ++order_errors;
                    last[c][msg[0]] = msg[1];
                    if (seen[msg[0] * kPerProducer + msg[1]].fetch_add(1) != 0) ++dup;
                }
            }
        });
    for (int p = 0; p < kProducers; ++p) threads[p].join();
    while (a.q->size() != 0) usleep(1000);
    a.q->close();
    for (size_t t = kProducers; t < threads.size(); ++t) threads[t].join();
    int missing = 0;
    for (auto& s : seen) missing += s.load() == 0;
    CHECK(missing == 0);
    CHECK(dup == 0);
    CHECK(order_errors == 0);
}


static std::string spin_pop_str(TaskQueue* q, int consumer, int64_t timeout_ns, int64_t spin_ns) {
    std::vector<char> buf(q->max_payload());
    uint32_t len = 0;
    QueueStatus st = q->pop(buf.data(), &len, consumer, timeout_ns, spin_ns);
    return st == QueueStatus::ok ? std::string(buf.data(), len) : std::string("<none>");
}

// A spinning consumer silences pushes' wakes; the protocol must still lose no item:
// the spinner takes what comes during its spin, a consumer leaving items behind wakes a
// sleeper, and recover() clears the mark of a spinner that died.
static void test_spinners() {
    constexpr int64_t kSec = 1000 * 1000 * 1000;
    {
        Q a("spin-take", 8);
        std::string got;
        std::thread spinner([&] { got = spin_pop_str(a.q, 1, kSec, kSec); });
        usleep(20000);  // well inside the spin
        CHECK(push_str(a.q, "x"));
        spinner.join();
        CHECK(got == "x");
    }
    {
        // One spinner, one sleeper, two items pushed while the spinner spins: the pushes
        // skip their wakes, so the spinner must pass one on (took()).
        Q a("spin-chain", 8);
        std::string slept, spun;
        std::thread sleeper([&] { slept = pop_str(a.q, 2, 3 * kSec); });
        usleep(20000);
        std::thread spinner([&] { spun = spin_pop_str(a.q, 1, 3 * kSec, 2 * kSec); });
        usleep(20000);
        int64_t t0 = mpiray::monotonic_ns();
        CHECK(push_str(a.q, "p") && push_str(a.q, "q"));
        spinner.join();
        sleeper.join();
        CHECK(mpiray::monotonic_ns() - t0 < kSec);  // the sleeper did not sleep to its timeout
        CHECK((spun == "p" && slept == "q") || (spun == "q" && slept == "p"));
    }
    {
        // A spinner SIGKILLed mid-spin: after recover() a push wakes the sleeper at once.
        Q a("spin-dead", 8);
        pid_t pid = fork();
        if (pid == 0) {
            TaskQueue* q = nullptr;
            if (TaskQueue::attach(a.name, &q) != 0) _exit(3);
            spin_pop_str(q, 5, 60 * kSec, 60 * kSec);
            _exit(0);
        }
        usleep(50000);
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        std::vector<std::string> items;
        CHECK(a.q->recover(5, &items) == QueueStatus::ok && items.empty());
        std::string slept;
        int64_t t0 = 0;
        std::thread sleeper([&] { slept = pop_str(a.q, 2, 5 * kSec); });
        usleep(20000);
        t0 = mpiray::monotonic_ns();
        CHECK(push_str(a.q, "after"));
        sleeper.join();
        CHECK(slept == "after");
        CHECK(mpiray::monotonic_ns() - t0 < kSec / 2);
    }
}

// The spin budget halves while waits are long (or time out) and covers twice a short
// wait as soon as one comes, up to its cap.
static void test_adaptive_spin() {
    mpiray::AdaptiveSpin spin(200 * 1000);
    CHECK(spin.budget_ns() == mpiray::AdaptiveSpin::kProbeNs);  // cautious until a wait shows it pays
    spin.record(150 * 1000);
    CHECK(spin.budget_ns() == 200 * 1000);
    for (int i = 0; i < 30; ++i) spin.record(i % 2 ? -1 : 5 * 1000 * 1000);
    CHECK(spin.budget_ns() == mpiray::AdaptiveSpin::kProbeNs);
    spin.record(30 * 1000);  // a 30 us wait: spinning 62 us would have caught it
    CHECK(spin.budget_ns() == 2 * 30 * 1000 + mpiray::AdaptiveSpin::kProbeNs);
    spin.record(10 * 1000);  // a shorter one does not shrink it
    CHECK(spin.budget_ns() == 2 * 30 * 1000 + mpiray::AdaptiveSpin::kProbeNs);
    spin.record(150 * 1000);
    CHECK(spin.budget_ns() == 200 * 1000);
}

int main() {
    test_create_attach();
    test_fifo_full_empty_wrap();
    test_timeout();
    test_close();
    test_records();
    test_held_heads();
    test_consumer_kill_points();
    test_producer_and_unrecorded_kill_points();
    test_wait_nonempty_dead_producer();
    test_stress();
    test_spinners();
    test_adaptive_spin();
    std::printf("queue_test: %s (%d failures)\n", g_failures ? "FAILED" : "ok", g_failures);
    return g_failures ? 1 : 0;
}

// Unit tests of the store's C++ API: plain asserts, exit code non-zero on failure.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "store.h"
#include "store_alloc.h"

using namespace mpiray::store;

static int g_failures = 0;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n",      \
                         __FILE__, __LINE__, #cond, LastError().message.c_str());   \
            ++g_failures;                                                           \
        }                                                                           \
    } while (0)

static std::string Name(const char* what) { return "/mpiray-cpptest-" + std::to_string(getpid()) + "-" + what; }

static std::vector<uint8_t> Id(int i) {
    std::vector<uint8_t> id(kObjectIdSize, 0);
    std::memcpy(id.data(), &i, sizeof i);
    return id;
}

static void TestAllocator() {
    std::vector<uint8_t> mem(1 << 20);
    AllocState st{};
    Allocator a(&st, mem.data(), mem.size());
    a.Init();
    std::mt19937 rng(1);
    std::vector<uint64_t> live;
    for (int i = 0; i < 20000; ++i) {
        if (live.empty() || rng() % 2) {
            uint64_t b, off = a.Allocate(rng() % 5000, &b);
            if (off != kNilOff) { CHECK(off % 64 == 0); live.push_back(off); }
        } else {
            size_t k = rng() % live.size();
            a.Free(live[k]);
            live[k] = live.back();
            live.pop_back();
        }
    }
    for (uint64_t off : live) a.Free(off);
    CHECK(a.used() == 0);
    uint64_t b;
    CHECK(a.Allocate(mem.size() - 64, &b) == 64);  // everything coalesced back into one block
}

static void TestLifecycle() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("life"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    auto id = Id(1);
    ObjectHandle h;
    CHECK(s->CreateObject(id.data(), 100, &h) == Status::kOk);
    std::memset(h.data, 7, 100);
    CHECK(s->CreateObject(id.data(), 100, &h) == Status::kExists);
    CHECK(s->Get(id.data(), 0, &h) == Status::kTimeout);  // not sealed yet
    CHECK(s->Seal(id.data()) == Status::kOk);
    CHECK(s->Seal(id.data()) == Status::kBadState);
    CHECK(s->Abort(id.data()) == Status::kBadState);
    ObjectHandle g;
    CHECK(s->Get(id.data(), 0, &g) == Status::kOk && g.size == 100 && g.data[99] == 7);
    CHECK(s->Release(g) == Status::kOk);
    CHECK(s->Release(h) == Status::kOk);                 // the creator's pin
    CHECK(s->Release(h) == Status::kNotPinned);
    CHECK(s->Stats().pinned == 0);
    CHECK(s->Get(id.data(), 0, &g) == Status::kOk);
    CHECK(s->Delete(id.data()) == Status::kOk);          // pinned: deferred
    CHECK(!s->Contains(id.data()));
    CHECK(s->Stats().num_objects == 1);
    CHECK(s->Release(g) == Status::kOk);
    CHECK(s->Stats().num_objects == 0 && s->Stats().used == 0);
    CHECK(s->Delete(id.data()) == Status::kNotFound);
    CHECK(s->CreateObject(id.data(), -1, &h) == Status::kInvalid);
    CHECK(s->CreateObject(id.data(), 2 << 20, &h) == Status::kTooLarge);
    // abort
    CHECK(s->CreateObject(id.data(), 10, &h) == Status::kOk);
    CHECK(s->Abort(id.data()) == Status::kOk);
    CHECK(s->Release(h) == Status::kNotPinned);  // stale handle: a no-op
    CHECK(s->Stats().used == 0);
    CHECK(s->Destroy() == Status::kOk);
}

// TryPut: a sealed put in one critical section that never spills (the caller falls back
// to Put when it reports kFull); entries come from the table's never-used tail.
static void TestTryPut() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("tryput"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    std::vector<uint8_t> buf(200000, 9);
    CHECK(s->TryPut(Id(1).data(), buf.data(), 100) == Status::kOk);
    CHECK(s->TryPut(Id(1).data(), buf.data(), 100) == Status::kExists);
    CHECK(s->TryPut(Id(2).data(), buf.data(), -1) == Status::kInvalid);
    ObjectHandle g;
    CHECK(s->Get(Id(1).data(), 0, &g) == Status::kOk && g.size == 100 && g.data[99] == 9);
    CHECK(s->Release(g) == Status::kOk);
    int i = 10;
    Status st;
    while ((st = s->TryPut(Id(i).data(), buf.data(), buf.size())) == Status::kOk) ++i;  // fill it
    CHECK(st == Status::kFull);
    CHECK(s->Stats().num_spilled == 0);                                            // never spills
    CHECK(s->Put(Id(i).data(), buf.data(), buf.size()) == Status::kOk);           // Put does
    CHECK(s->Stats().num_spilled > 0);
    CHECK(s->Delete(Id(1).data()) == Status::kOk);  // its entry is reused, not the tail's
    CHECK(s->TryPut(Id(1).data(), buf.data(), 10) == Status::kOk);
    CHECK(s->Destroy() == Status::kOk);
}

static void TestSpillAndFull() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("spill"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    std::vector<uint8_t> buf(200000);
    for (int i = 0; i < 20; ++i) {  // 4 MB through a 1 MiB store
        std::memset(buf.data(), i, buf.size());
        CHECK(s->Put(Id(i).data(), buf.data(), buf.size()) == Status::kOk);
    }
    CHECK(s->Stats().num_spilled >= 15);
    for (int i = 0; i < 20; ++i) {
        ObjectHandle g;
        CHECK(s->Get(Id(i).data(), 0, &g) == Status::kOk && g.size == buf.size());
        CHECK(g.data[0] == i && g.data[buf.size() - 1] == i);
        CHECK(s->Release(g) == Status::kOk);
    }
    // Pin four objects: the fifth of the same size can still be made; then full.
    std::vector<ObjectHandle> pins(5);
    for (int i = 0; i < 5; ++i) CHECK(s->Get(Id(i).data(), 0, &pins[i]) == Status::kOk);
    ObjectHandle h;
    CHECK(s->CreateObject(Id(100).data(), 400000, &h) == Status::kFull);
    CHECK(LastError().message.find("pinned") != std::string::npos);
    for (auto& p : pins) CHECK(s->Release(p) == Status::kOk);
    CHECK(s->CreateObject(Id(100).data(), 400000, &h) == Status::kOk);
    CHECK(s->Delete(Id(3).data()) == Status::kOk);
    CHECK(s->Destroy() == Status::kOk);
    CHECK(access("/tmp/mpiray-cpptest-spill", F_OK) == 0);
}

static void TestDeadClientAndStale() {
    std::string name = Name("dead");
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(name, 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    CHECK(s->Put(Id(1).data(), "abc", 3) == Status::kOk);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t child = fork();
    if (child == 0) {  // pin one object, half-make another, die holding the lock
        std::unique_ptr<StoreClient> c;
        if (StoreClient::Attach(name, &c) != Status::kOk) _exit(2);
        ObjectHandle g, h;
        if (c->Get(Id(1).data(), 0, &g) != Status::kOk) _exit(3);
        if (c->CreateObject(Id(2).data(), 5000, &h) != Status::kOk) _exit(4);
        if (write(fds[1], "r", 1) != 1) _exit(5);
        c->TestHoldLockForever();
    }
    char r = 0;
    CHECK(read(fds[0], &r, 1) == 1 && r == 'r');
    usleep(100000);  // let the child take the lock
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    StoreStats st = s->Stats();  // EOWNERDEAD: repair + reap
    CHECK(st.pinned == 0);
    CHECK(st.num_objects == 1);
    CHECK(s->Contains(Id(1).data()) && !s->Contains(Id(2).data()));
    CHECK(s->Put(Id(2).data(), "x", 1) == Status::kOk);
    // A live segment of the same name is refused; a dead creator's one is replaced.
    std::unique_ptr<StoreClient> t;
    CHECK(StoreClient::Create(name, 1 << 20, "/tmp/mpiray-cpptest-spill", &t) == Status::kSegmentExists);
    CHECK(s->Destroy() == Status::kOk);
    child = fork();
    if (child == 0) {
        std::unique_ptr<StoreClient> c;
        _exit(StoreClient::Create(name, 1 << 20, "/tmp/mpiray-cpptest-spill", &c) == Status::kOk ? 0 : 1);  // leaks it
    }
    int wst = 0;
    waitpid(child, &wst, 0);
    CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    CHECK(StoreClient::Create(name, 1 << 20, "/tmp/mpiray-cpptest-spill", &t) == Status::kOk);
    CHECK(t->Destroy() == Status::kOk);
}

// Getters in another process sleep on their id's seal word: seals of other ids (many,
// so some share its bucket) must not end the wait, the seal of its own id must, and
// Wait() over several ids must see a seal of any of them. Spin-skipping kicks in after
// a few long waits, so the getter runs several rounds.
static void TestSealWakes() {
    const std::string name = Name("wakes");  // (the child's pid differs)
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(name, 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    constexpr int kRounds = 8;
    pid_t child = fork();
    if (child == 0) {
        std::unique_ptr<StoreClient> c;
        if (StoreClient::Attach(name, &c) != Status::kOk) _exit(2);
        for (int r = 0; r < kRounds; ++r) {
            ObjectHandle h;
            if (c->Get(Id(1000 + r).data(), 5'000'000'000, &h) != Status::kOk) _exit(3);
            if (h.size != 8 || h.data[0] != r) _exit(4);
            c->Release(h);
        }
        std::vector<uint8_t> ids;
        for (int i = 0; i < 3; ++i) { auto id = Id(2000 + i); ids.insert(ids.end(), id.begin(), id.end()); }
        bool ready[3];
        if (c->Wait(ids.data(), 3, 1, 5'000'000'000, ready) != Status::kOk || !ready[2]) _exit(5);
        _exit(0);
    }
    uint8_t val[8] = {};
    for (int r = 0; r < kRounds; ++r) {
        usleep(2000);
        for (int i = 0; i < 200; ++i) {  // other ids: the getter must keep waiting
            auto id = Id(10000 + r * 1000 + i);
            CHECK(s->TryPut(id.data(), val, 8) == Status::kOk);
            CHECK(s->Delete(id.data()) == Status::kOk);
        }
        val[0] = static_cast<uint8_t>(r);
        CHECK(s->TryPut(Id(1000 + r).data(), val, 8) == Status::kOk);
    }
    usleep(2000);
    CHECK(s->TryPut(Id(2002).data(), val, 8) == Status::kOk);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::fprintf(stderr, "getter status %d\n", status);
    CHECK(s->Destroy() == Status::kOk);
}

// What a process made, found by the prefix of its ids: sealed and spilled objects only.
static void TestIdsWithPrefix() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("prefix"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    auto mine = [](int i) { auto id = Id(i); id[4] = 0xAB; id[5] = 0xCD; return id; };
    CHECK(s->Put(mine(1).data(), "a", 1) == Status::kOk);
    CHECK(s->Put(mine(2).data(), "b", 1) == Status::kOk);
    CHECK(s->Put(Id(3).data(), "c", 1) == Status::kOk);             // another prefix
    ObjectHandle h;
    CHECK(s->CreateObject(mine(4).data(), 8, &h) == Status::kOk);  // not sealed: not listed
    CHECK(s->Delete(mine(2).data()) == Status::kOk);
    const uint8_t prefix[2] = {0xAB, 0xCD};
    std::string ids = s->IdsWithPrefix(mine(1).data(), 6);
    CHECK(ids.size() == kObjectIdSize && std::memcmp(ids.data(), mine(1).data(), kObjectIdSize) == 0);
    CHECK(s->IdsWithPrefix(prefix, 2).empty());                     // a prefix matches from byte 0
    CHECK(s->IdsWithPrefix(prefix, 0).size() == 2 * kObjectIdSize);  // every sealed object
    CHECK(s->IdsWithPrefix(prefix, kObjectIdSize + 1).empty());
    CHECK(s->Abort(mine(4).data()) == Status::kOk);
    CHECK(s->Destroy() == Status::kOk);
}

// Seals of serialized errors are counted, by every way of sealing; other objects are not.
static void TestErrorSeq() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("errseq"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    const uint32_t error[4] = {kSerializedMagic, kSerializedErrorFlag, 0, 0};
    const uint32_t value[4] = {kSerializedMagic, 0, 0, 0};
    CHECK(s->ErrorSeq() == 0);
    CHECK(s->Put(Id(1).data(), value, sizeof value) == Status::kOk);
    CHECK(s->Put(Id(2).data(), "short", 5) == Status::kOk);
    CHECK(s->ErrorSeq() == 0);
    CHECK(s->Put(Id(3).data(), error, sizeof error) == Status::kOk);
    CHECK(s->TryPut(Id(4).data(), error, sizeof error) == Status::kOk);
    ObjectHandle h;
    CHECK(s->CreateObject(Id(5).data(), sizeof error, &h) == Status::kOk);
    std::memcpy(h.data, error, sizeof error);
    CHECK(s->ErrorSeq() == 2);   // not sealed yet
    CHECK(s->Seal(Id(5).data()) == Status::kOk);
    CHECK(s->Release(h) == Status::kOk);
    CHECK(s->ErrorSeq() == 3);
    CHECK(s->Destroy() == Status::kOk);
}

// Delete(keep_unread_error) keeps a serialized error no Get has read, and only that.
static void TestUnreadError() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("unread"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    const uint32_t error[4] = {kSerializedMagic, kSerializedErrorFlag, 0, 0};
    const uint32_t value[4] = {kSerializedMagic, 0, 0, 0};
    CHECK(s->Put(Id(1).data(), error, sizeof error) == Status::kOk);
    CHECK(s->Put(Id(2).data(), error, sizeof error) == Status::kOk);
    CHECK(s->Put(Id(3).data(), value, sizeof value) == Status::kOk);
    CHECK(s->IsUnreadError(Id(1).data()) && !s->IsUnreadError(Id(3).data()));
    CHECK(!s->IsUnreadError(Id(9).data()));                  // absent
    CHECK(s->Delete(Id(1).data(), true) == Status::kUnreadError);
    CHECK(s->Contains(Id(1).data()));                        // kept
    CHECK(s->Delete(Id(1).data()) == Status::kOk);           // a plain delete removes it
    ObjectHandle h;
    CHECK(s->Get(Id(2).data(), 0, &h) == Status::kOk);
    CHECK(s->Release(h) == Status::kOk);
    CHECK(!s->IsUnreadError(Id(2).data()));                  // read
    CHECK(s->Delete(Id(2).data(), true) == Status::kOk);     // read: deleted
    CHECK(s->Delete(Id(3).data(), true) == Status::kOk);     // not an error: deleted
    CHECK(!s->Contains(Id(2).data()) && !s->Contains(Id(3).data()));
    CHECK(s->Put(Id(2).data(), error, sizeof error) == Status::kOk);   // a new tenant is unread
    CHECK(s->Delete(Id(2).data(), true) == Status::kUnreadError);
    CHECK(s->Destroy() == Status::kOk);
}

// A table full of user objects keeps its last entries for errors and messages.
// An object written to its spill file by the caller (no room in memory) and adopted:
// listed, read back by Get (restored when it fits; kTooLarge when it never can, for the
// caller to read the file), and its file removed with it.
static void TestAdoptSpilled() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("adopt"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    for (int size : {300000, 3000000}) {
        std::vector<uint8_t> id = Id(size);
        std::string path = s->SpillPathOf(id.data());
        FILE* f = std::fopen(path.c_str(), "wb");
        CHECK(f != nullptr);
        std::vector<uint8_t> bytes(size, 7);
        CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
        std::fclose(f);
        CHECK(s->AdoptSpilled(id.data(), size) == Status::kOk);
        CHECK(s->AdoptSpilled(id.data(), size) == Status::kExists);
        CHECK(s->Contains(id.data()));
        ObjectHandle g;
        Status st = s->Get(id.data(), 0, &g);
        if (size < (1 << 20)) {
            CHECK(st == Status::kOk && g.size == static_cast<uint64_t>(size) && g.data[size - 1] == 7);
            CHECK(s->Release(g) == Status::kOk);
            CHECK(access(path.c_str(), F_OK) != 0);   // restored: the file is gone
        } else {
            CHECK(st == Status::kTooLarge);
            std::string where;
            uint64_t n = 0;
            CHECK(s->SpillFileOf(id.data(), &where, &n) == Status::kOk && where == path && n == 3000000u);
        }
        CHECK(s->Delete(id.data()) == Status::kOk);
        CHECK(access(path.c_str(), F_OK) != 0);
    }
    CHECK(s->Destroy() == Status::kOk);
}

static void TestTableReserve() {
    std::unique_ptr<StoreClient> s;
    CHECK(StoreClient::Create(Name("reserve"), 1 << 20, "/tmp/mpiray-cpptest-spill", &s) == Status::kOk);
    int made = 0;
    while (s->Put(Id(100000 + made).data(), "u", 1, /*user_data=*/true) == Status::kOk) ++made;
    CHECK(made > 250000 && made < (1 << 18));                   // refused before the end
    CHECK(s->Put(Id(100000 + made).data(), "u", 1, true) == Status::kFull);
    CHECK(s->Put(Id(99999).data(), "e", 1) == Status::kOk);     // an error still fits
    CHECK(s->Destroy() == Status::kOk);
}

int main() {
    TestUnreadError();
    TestAllocator();
    TestLifecycle();
    TestTryPut();
    TestSpillAndFull();
    TestDeadClientAndStale();
    TestSealWakes();
    TestIdsWithPrefix();
    TestErrorSeq();
    TestTableReserve();
    TestAdoptSpilled();
    rmdir("/tmp/mpiray-cpptest-spill");
    std::printf("store_test: %s (%d failures)\n", g_failures ? "FAILED" : "ok", g_failures);
    return g_failures ? 1 : 0;
}

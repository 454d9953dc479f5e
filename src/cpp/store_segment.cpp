// The segment's life: create (with stale-segment removal and page pre-faulting), attach,
// client registration, detach, destroy.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "store_internal.h"

namespace mpiray::store {

namespace {

uint64_t RoundUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }
uint32_t NextPow2(uint64_t x) { uint32_t p = 1; while (p < x) p <<= 1; return p; }

bool ProcessGone(int32_t pid) { return pid > 0 && kill(pid, 0) == -1 && errno == ESRCH; }

bool ValidName(const std::string& n) {
    return n.size() >= 2 && n.size() < 200 && n[0] == '/' && n.find('/', 1) == std::string::npos;
}

Status MakeDirs(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i) {
        if (i < path.size() && path[i] != '/') continue;
        std::string p = path.substr(0, i);
        if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) return FailErrno("mkdir", p);
    }
    return Status::kOk;
}

// Removes the (flat) spill directory and everything in it.
void RemoveSpillDir(const std::string& dir) {
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* ent = readdir(d)) {
            if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
            unlink((dir + "/" + ent->d_name).c_str());
        }
        closedir(d);
    }
    rmdir(dir.c_str());
}

// Removes each of a segment's spill directories (SpillDirs) and everything in them.
void RemoveSpillDirs(const std::string& dirs) {
    for (const std::string& d : SpillDirs(dirs)) RemoveSpillDir(d);
}

// A segment left by a crashed run: its creator pid is recorded and that process is gone.
// Returns true when it was removed (the caller retries the create).
bool RemoveIfStale(const std::string& name) {
    int fd = shm_open(name.c_str(), O_RDWR, 0);
    if (fd < 0) return errno == ENOENT;  // vanished meanwhile: retry
    struct stat st{};
    bool stale = false;
    if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(Header)) {
        void* p = mmap(nullptr, sizeof(Header), PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            auto* h = static_cast<Header*>(p);
            stale = ProcessGone(h->creator_pid.load(std::memory_order_acquire));
            if (stale && h->magic.load(std::memory_order_acquire) == kMagic)
                RemoveSpillDirs(std::string(h->spill_dir, strnlen(h->spill_dir, sizeof h->spill_dir)));
            munmap(p, sizeof(Header));
        }
    }
    close(fd);
    if (stale) shm_unlink(name.c_str());
    return stale;
}

}  // namespace

Layout ComputeLayout(uint64_t capacity) {
    Layout l{};
    // One entry per 1 KiB of capacity, within [256 Ki, 2 Mi] (104 bytes each with their
    // index and pin slots): a job holds hundreds of thousands of small objects (task
    // returns) even in a small store, as Ray keeps them in its owners' memory. Pages of
    // the table are only touched as it fills (unless the store is prefaulted).
    l.max_objects = static_cast<uint32_t>(std::clamp<uint64_t>(capacity / 1024, 1u << 18, 1u << 21));
    l.index_size = NextPow2(2ull * l.max_objects);  // load <= 1/2: short probes
    l.pins_size = NextPow2(2ull * l.max_objects);
    l.clients_off = RoundUp(sizeof(Header), kAlign);
    l.entries_off = RoundUp(l.clients_off + sizeof(ClientSlot) * kMaxClients, kAlign);
    l.index_off = RoundUp(l.entries_off + sizeof(Entry) * l.max_objects, kAlign);
    l.pins_off = RoundUp(l.index_off + sizeof(uint32_t) * l.index_size, kAlign);
    l.data_off = RoundUp(l.pins_off + sizeof(PinRecord) * l.pins_size, 4096);
    l.total = l.data_off + RoundUp(capacity, kAlign);
    return l;
}

uint64_t SegmentBytes(uint64_t capacity) { return ComputeLayout(capacity).total; }

void StoreClient::Bind(uint8_t* base, uint64_t size) {
    base_ = base;
    map_size_ = size;
    hdr_ = reinterpret_cast<Header*>(base);
    data_ = base + hdr_->data_off;
    v_.reset(new Views{
        Allocator(&hdr_->alloc, data_, hdr_->data_size),
        ObjectTable(hdr_, reinterpret_cast<Entry*>(base + hdr_->entries_off),
                    reinterpret_cast<uint32_t*>(base + hdr_->index_off),
                    reinterpret_cast<PinRecord*>(base + hdr_->pins_off)),
        LruPolicy(&hdr_->lru, reinterpret_cast<Entry*>(base + hdr_->entries_off))});
}

Status StoreClient::RegisterClient() {
    Locked lock(this);
    auto* slots = reinterpret_cast<ClientSlot*>(base_ + hdr_->clients_off);
    for (int pass = 0; pass < 2; ++pass) {
        for (uint32_t s = 0; s < kMaxClients; ++s) {
            if (slots[s].pid.load(std::memory_order_relaxed) != 0) continue;
            slots[s].pid.store(getpid(), std::memory_order_relaxed);
            slot_ = static_cast<int>(s);
            return Status::kOk;
        }
        ReapLocked();
    }
    return Fail(Status::kFull, "all %u client slots are taken by live processes", kMaxClients);
}

Status StoreClient::Create(const std::string& name, uint64_t capacity, const std::string& spill_dir,
                           std::unique_ptr<StoreClient>* out, bool prefault) {
    if (!ValidName(name)) return Fail(Status::kInvalid, "bad segment name '%s' (want '/name')", name.c_str());
    if (capacity < 4096) return Fail(Status::kInvalid, "capacity %llu is below 4096 bytes", (unsigned long long)capacity);
    std::string dir;   // each spill directory + name (it starts with '/'), '\n'-separated
    for (const std::string& d : SpillDirs(spill_dir)) dir += (dir.empty() ? "" : "\n") + d + name;
    if (dir.empty()) return Fail(Status::kInvalid, "no spill directory given");
    if (dir.size() >= sizeof(Header::spill_dir)) return Fail(Status::kInvalid, "spill_dir too long");
    const Layout l = ComputeLayout(capacity);
    struct statvfs vfs{};
    if (statvfs("/dev/shm", &vfs) == 0) {
        uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
        if (avail < l.total)
            return Fail(Status::kInvalid,
                        "the store needs %llu bytes of /dev/shm (capacity %llu + metadata) but only %llu bytes are free",
                        (unsigned long long)l.total, (unsigned long long)capacity, (unsigned long long)avail);
    }
    int fd = -1;
    for (int attempt = 0; attempt < 3 && fd < 0; ++attempt) {
        fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) return FailErrno("shm_open", name);
        if (fd < 0 && !RemoveIfStale(name))
            return Fail(Status::kSegmentExists, "segment %s exists and its creator is alive", name.c_str());
    }
    if (fd < 0) return Fail(Status::kSegmentExists, "segment %s keeps reappearing", name.c_str());
    auto undo = [&](Status st) { close(fd); shm_unlink(name.c_str()); return st; };
    if (ftruncate(fd, static_cast<off_t>(l.total)) != 0) return undo(FailErrno("ftruncate", name));
    // Fault every page in at creation, so puts copy at memory bandwidth instead of the
    // ~1.4 GB/s of first-touch faults: fallocate allocates the tmpfs pages (and fails now,
    // not at a later SIGBUS, if /dev/shm runs out), MAP_POPULATE maps them. Measured on
    // 512 MiB: 0.69 s and 8.9 GB/s copies after, vs 3.7 s and 2.2 GB/s for touching every
    // page from two threads (tmpfs faults serialise).
    if (prefault && fallocate(fd, 0, 0, static_cast<off_t>(l.total)) != 0) return undo(FailErrno("fallocate", name));
    void* p = mmap(nullptr, l.total, PROT_READ | PROT_WRITE, MAP_SHARED | (prefault ? MAP_POPULATE : 0), fd, 0);
    if (p == MAP_FAILED) return undo(FailErrno("mmap", name));
    close(fd);
    auto* h = static_cast<Header*>(p);
    h->creator_pid.store(getpid(), std::memory_order_release);  // first: makes a crash below "stale"
    for (const std::string& d : SpillDirs(dir))
        if (Status st = MakeDirs(d); st != Status::kOk) { munmap(p, l.total); shm_unlink(name.c_str()); return st; }

    h->version = kVersion;
    h->total_size = l.total;
    h->clients_off = l.clients_off; h->entries_off = l.entries_off; h->index_off = l.index_off;
    h->pins_off = l.pins_off; h->data_off = l.data_off;
    h->data_size = l.total - l.data_off;
    h->max_objects = l.max_objects;
    h->index_mask = l.index_size - 1;
    h->pins_mask = l.pins_size - 1;
    std::snprintf(h->spill_dir, sizeof h->spill_dir, "%s", dir.c_str());
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&h->mutex, &a);
    pthread_mutexattr_destroy(&a);
    h->seal_seq.store(0, std::memory_order_relaxed);
    h->waiters.store(0, std::memory_order_relaxed);
    h->error_seq.store(0, std::memory_order_relaxed);
    h->spin_claim_until_ns.store(0, std::memory_order_relaxed);
    for (auto& w : h->seal_words) {
        w.seq.store(0, std::memory_order_relaxed);
        w.waiters.store(0, std::memory_order_relaxed);
    }

    std::unique_ptr<StoreClient> c(new StoreClient());
    c->name_ = name;
    c->creator_ = true;
    c->Bind(static_cast<uint8_t*>(p), l.total);
    c->v_->table.Init();
    c->v_->alloc.Init();
    c->v_->policy().Clear();
    h->num_spilled = 0; h->spilled_bytes = h->pinned_bytes = h->spill_seq = 0;
    h->spilled_total_bytes = h->spill_ns = 0;
    h->restored_total = h->restored_total_bytes = h->restore_ns = 0;
    // Publish: attachers wait for the magic (acquire), so they see every field above.
    h->magic.store(kMagic, std::memory_order_release);
    if (Status st = c->RegisterClient(); st != Status::kOk) return st;
    *out = std::move(c);
    return Status::kOk;
}

Status StoreClient::Attach(const std::string& name, std::unique_ptr<StoreClient>* out) {
    if (!ValidName(name)) return Fail(Status::kInvalid, "bad segment name '%s' (want '/name')", name.c_str());
    int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT) return Fail(Status::kNoSegment, "no store segment named %s", name.c_str());
        return FailErrno("shm_open", name);
    }
    struct stat st{};
    void* p = MAP_FAILED;
    uint64_t size = 0;
    // The creator may still be initialising: wait (up to 5 s) for the size and the magic.
    for (int i = 0; i < 5000; ++i) {
        if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(Header)) {
            size = static_cast<uint64_t>(st.st_size);
            // No MAP_POPULATE: every worker attaches, and building page tables for the whole
            // segment up front would cost each of them ~0.1 s per GiB; touched pages map lazily.
            if (p == MAP_FAILED) p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) { close(fd); return FailErrno("mmap", name); }
            if (static_cast<Header*>(p)->magic.load(std::memory_order_acquire) == kMagic) break;
        }
        usleep(1000);
    }
    close(fd);
    if (p == MAP_FAILED || static_cast<Header*>(p)->magic.load(std::memory_order_acquire) != kMagic) {
        if (p != MAP_FAILED) munmap(p, size);
        return Fail(Status::kNoSegment, "segment %s never finished initialising", name.c_str());
    }
    if (uint32_t v = static_cast<Header*>(p)->version; v != kVersion) {  // another build's layout
        munmap(p, size);
        return Fail(Status::kInvalid, "segment %s has layout version %u, this build reads %u", name.c_str(), v,
                    kVersion);
    }
    std::unique_ptr<StoreClient> c(new StoreClient());
    c->name_ = name;
    c->Bind(static_cast<uint8_t*>(p), size);
    if (Status s = c->RegisterClient(); s != Status::kOk) return s;
    *out = std::move(c);
    return Status::kOk;
}

StoreClient::~StoreClient() {
    if (!base_) return;
    if (slot_ >= 0) {
        Locked lock(this);
        ReclaimClientLocked(static_cast<uint16_t>(slot_));
        reinterpret_cast<ClientSlot*>(base_ + hdr_->clients_off)[slot_].pid.store(0, std::memory_order_relaxed);
    }
    munmap(base_, map_size_);
}

Status StoreClient::Destroy() {
    if (!creator_) return Fail(Status::kNotCreator, "only the creating process may destroy %s", name_.c_str());
    {
        Locked lock(this);
        RemoveSpillDirs(hdr_->spill_dir);
    }
    if (shm_unlink(name_.c_str()) != 0 && errno != ENOENT) return FailErrno("shm_unlink", name_);
    return Status::kOk;
}

}  // namespace mpiray::store

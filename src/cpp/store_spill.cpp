// Spilling: an unpinned SEALED object's bytes go to <spill_dir>/<hex id> and its memory is
// freed; a get reads them back. Files are written with the store mutex held, so the
// object cannot change underneath; this stalls other clients for the duration of the I/O,
// which is acceptable because spilling only happens when the store is already full.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"

namespace mpiray::store {

std::string StoreClient::SpillPath(const Entry& x) const { return SpillPathOf(x.id); }

std::string StoreClient::SpillPathOf(const uint8_t* id) const {
    static const char* d = "0123456789abcdef";
    // several directories: each object's in one of them, by its id (FNV-1a), so a spill
    // and its restore agree without keeping where it went
    std::vector<std::string> dirs = SpillDirs(hdr_->spill_dir);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < kObjectIdSize; ++i) h = (h ^ id[i]) * 16777619u;
    std::string s = dirs.empty() ? std::string() : dirs[h % dirs.size()];
    s += '/';
    for (size_t i = 0; i < kObjectIdSize; ++i) { s += d[id[i] >> 4]; s += d[id[i] & 15]; }
    return s;
}

Status StoreClient::AdoptSpilled(const uint8_t* id, int64_t size) {
    if (size < 0) return Fail(Status::kInvalid, "negative object size %lld", (long long)size);
    {
        Locked lock(this);
        if (v_->table.Find(id) != kNil)
            return Fail(Status::kExists, "the object adopted from %s already exists",
                        SpillPathOf(id).c_str());
        uint32_t e = v_->table.Insert(id);
        if (e == kNil)
            return Fail(Status::kFull, "object table full (%u objects): delete objects first",
                        hdr_->max_objects);
        Entry& x = v_->table[e];
        x.size = static_cast<uint64_t>(size);
        x.creator = static_cast<int16_t>(slot_);
        x.state = ObjState::SPILLED;  // published last: its bytes are in the file already
        ++hdr_->num_spilled;
        hdr_->spilled_bytes += x.size;
    }
    WakeGetters(id);
    return Status::kOk;
}

static bool WriteAll(int fd, const uint8_t* p, uint64_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w; n -= static_cast<uint64_t>(w);
    }
    return true;
}

static bool ReadAll(int fd, uint8_t* p, uint64_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r; n -= static_cast<uint64_t>(r);
    }
    return true;
}

static uint64_t NowNs() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

Status StoreClient::SpillLocked(uint32_t e) {
    Entry& x = v_->table[e];
    const uint64_t began = NowNs();
    std::string path = SpillPath(x);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return FailErrno("open", path);
    bool ok = WriteAll(fd, data_ + x.offset, x.size);
    Status st = ok ? Status::kOk : FailErrno("write", path);
    close(fd);
    if (!ok) { std::remove(path.c_str()); return st; }
    v_->policy().Removed(e);
    v_->alloc.Free(x.offset);
    x.offset = kNilOff;
    x.state = ObjState::SPILLED;
    ++hdr_->num_spilled;
    hdr_->spilled_bytes += x.size;
    ++hdr_->spill_seq;
    hdr_->spilled_total_bytes += x.size;
    hdr_->spill_ns += NowNs() - began;
    return Status::kOk;
}

Status StoreClient::RestoreLocked(uint32_t e) {
    Entry& x = v_->table[e];
    Status st = Status::kOk;
    uint64_t block = 0;
    uint64_t off = AllocateLocked(x.size, &block, &st);  // may spill others, never x (not in the LRU)
    if (off == kNilOff) return st;
    const uint64_t began = NowNs();   // (after any spills the room took: those count as theirs)
    std::string path = SpillPath(x);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && ReadAll(fd, data_ + off, x.size);
    if (!ok) {
        st = FailErrno(fd < 0 ? "open" : "read", path);
        if (fd >= 0) close(fd);
        v_->alloc.Free(off);
        return st;
    }
    close(fd);
    std::remove(path.c_str());
    x.offset = off;
    x.block = block;
    x.state = ObjState::SEALED;
    --hdr_->num_spilled;
    hdr_->spilled_bytes -= x.size;
    ++hdr_->restored_total;
    hdr_->restored_total_bytes += x.size;
    hdr_->restore_ns += NowNs() - began;
    v_->policy().Added(e);
    return Status::kOk;
}

}  // namespace mpiray::store

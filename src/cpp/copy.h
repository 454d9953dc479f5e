// Copies into shared memory. A big copy is written with non-temporal (streaming) stores:
// a plain memcpy first reads every destination line it will overwrite (the cache's
// read-for-ownership), and the object is not read back by this core anyway. Measured on
// this kind of VM, 8 MiB from private memory into /dev/shm pages: memcpy 8-11 GB/s,
// streaming stores 20-24 GB/s.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace mpiray {

// Below this a copy may well land in (and be read back from) the cache: plain memcpy. Above
// it, into fresh store blocks, streaming stores ran 24-26 GB/s against memcpy's 16 (1-8 MiB).
constexpr size_t kStreamCopyMin = size_t{2} << 20;

inline void copy_stream(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
    if (n >= kStreamCopyMin) {
        auto* d = static_cast<char*>(dst);
        auto* s = static_cast<const char*>(src);
        const size_t head = (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15;  // to a 16-byte boundary
        std::memcpy(d, s, head);
        size_t i = head;
        for (; i + 64 <= n; i += 64) {  // SSE2: every x86-64 has it
            const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 16));
            const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 32));
            const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + 48));
            _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), a);
            _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 16), b);
            _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 32), c);
            _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + 48), e);
        }
        _mm_sfence();  // streaming stores are weakly ordered: visible before the seal that follows
        std::memcpy(d + i, s + i, n - i);
        return;
    }
#endif
    std::memcpy(dst, src, n);
}

// copy_stream, split over up to 4 threads from 64 MiB up: one core copies ~12-20 GB/s
// into warm shm, two ~26 GB/s (ENVIRONMENT.md); below that a thread start (~30 us) is
// not worth it.
inline void copy_parallel(void* dst, const void* src, size_t n) {
    constexpr size_t kThreadsFrom = size_t{64} << 20;
    if (n < kThreadsFrom) {
        copy_stream(dst, src, n);
        return;
    }
    auto* d = static_cast<char*>(dst);
    auto* s = static_cast<const char*>(src);
    const unsigned nt = std::min(4u, std::max(1u, std::thread::hardware_concurrency()));
    const size_t chunk = (n / nt + 4095) & ~size_t{4095};
    std::vector<std::thread> ts;
    for (unsigned t = 1; t < nt; ++t) {
        const size_t lo = std::min(n, t * chunk), hi = std::min(n, lo + chunk);
        if (lo < hi) ts.emplace_back([=] { copy_stream(d + lo, s + lo, hi - lo); });
    }
    copy_stream(d, s, std::min(n, chunk));
    for (auto& t : ts) t.join();
}

}  // namespace mpiray

// A baseline for benchmarks: the raw cost of waking another process through a futex.
#pragma once

namespace mpiray {

// Raw cross-process futex ping-pong (fork + two futex words in a MAP_SHARED page; each
// side sleeps in FUTEX_WAIT, no spinning): the mean round trip in ns over `iters`
// exchanges, or -1 if mmap/fork failed. The baseline of benchmarks/queue.py.
double futex_pingpong_rtt_ns(int iters);

}  // namespace mpiray

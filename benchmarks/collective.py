"""ray.util.collective's allreduce among actors of one node; prints figures and ratios
measured in this run (no asserts).

    .venv/bin/python benchmarks/collective.py

Baselines, measured here in the same run: for a small array, one call to an async
actor and back (a round of the exchange is at least that, for every rank); for a large
one, the memory work one rank cannot avoid, in one process: a put of its array, and its
reduction over world_size arrays into a fresh one, then copied into the tensor.
"""
import time

import numpy as np

import mpiray as ray
from mpiray.util import collective as col


@ray.remote(num_cpus=0)
class Member:
    def __init__(self, rank, world):
        col.init_collective_group(world, rank, "gloo", "bench")

    def allreduce(self, n, iterations):
        t = np.ones(n)
        col.barrier("bench")
        start = time.perf_counter()
        for _ in range(iterations):
            col.allreduce(t, "bench")
        return (time.perf_counter() - start) / iterations

    def leave(self):
        col.destroy_collective_group("bench")


@ray.remote(num_cpus=0)
class Echo:
    async def echo(self, x):
        return x


def call_round_trip(iterations=300):
    echo = Echo.remote()
    ray.get(echo.echo.remote(0))
    start = time.perf_counter()
    for _ in range(iterations):
        ray.get(echo.echo.remote(np.ones(1)))
    ray.kill(echo)
    return (time.perf_counter() - start) / iterations


def memory_floor(n, world, iterations=5):
    arrays = [np.ones(n) for _ in range(world)]
    tensor = np.ones(n)
    best = float("inf")
    for _ in range(iterations):
        start = time.perf_counter()
        ref = ray.put(tensor)
        out = arrays[0].copy()
        for a in arrays[1:]:
            np.add(out, a, out=out)
        np.copyto(tensor, out)
        best = min(best, time.perf_counter() - start)
        del ref
    return best


def main():
    ray.init(num_cpus=2)
    trip = call_round_trip()
    print(f"async actor call round trip: {trip * 1e6:.0f} us")
    print("| ranks | array | allreduce | baseline | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for world in (2, 4):
        members = [Member.remote(r, world) for r in range(world)]
        for n, iterations in ((1, 300), (1 << 20, 20)):
            took = max(ray.get([m.allreduce.remote(n, iterations) for m in members]))
            base = trip if n == 1 else memory_floor(n, world)
            what = "actor call" if n == 1 else "put + reduce in one process"
            print(f"| {world} | {n * 8} B | {took * 1e6:.0f} us | {what}: {base * 1e6:.0f} us "
                  f"| {took / base:.1f}x |")
        ray.get([m.leave.remote() for m in members])
        for m in members:
            ray.kill(m)
    ray.shutdown()


if __name__ == "__main__":
    main()

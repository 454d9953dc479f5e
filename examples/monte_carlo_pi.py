"""Monte Carlo estimate of pi: batches of random points counted in parallel tasks.

Run: python examples/monte_carlo_pi.py
"""

import time

import numpy as np

import mpiray as ray


@ray.remote
def count_inside(seed, samples):
    rng = np.random.default_rng(seed)
    xy = rng.random((samples, 2))
    return int(np.count_nonzero((xy * xy).sum(axis=1) <= 1.0))


def main(batches=32, samples=1_000_000):
    ray.init()
    start = time.perf_counter()
    inside = sum(ray.get([count_inside.remote(seed, samples) for seed in range(batches)]))
    pi = 4.0 * inside / (batches * samples)
    elapsed = time.perf_counter() - start
    assert abs(pi - np.pi) < 0.01, f"estimate {pi} is off"
    print(f"monte_carlo_pi: pi ~ {pi:.5f} from {batches * samples:,} points in {elapsed:.3f} s")
    ray.shutdown()


if __name__ == "__main__":
    main()

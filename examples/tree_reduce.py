"""Tree reduction of numpy arrays: 64 leaves summed pairwise by tasks, level by level.

Run: python examples/tree_reduce.py   (or under mpiexec -n 4 once MPI nodes are in)
"""

import time

import numpy as np

import mpiray as ray


@ray.remote
def make_leaf(i, n):
    return np.full(n, i, dtype=np.float64)


@ray.remote
def add(a, b):
    return a + b


def tree_sum(refs):
    while len(refs) > 1:
        refs = [add.remote(refs[i], refs[i + 1]) if i + 1 < len(refs) else refs[i]
                for i in range(0, len(refs), 2)]
    return refs[0]


def main(leaves=64, n=1_000_000):
    ray.init()
    start = time.perf_counter()
    total = ray.get(tree_sum([make_leaf.remote(i, n) for i in range(leaves)]))
    elapsed = time.perf_counter() - start
    expected = leaves * (leaves - 1) / 2
    assert total.shape == (n,) and np.all(total == expected), "wrong sum"
    print(f"tree_reduce: {leaves} arrays of {n * 8 / 1e6:.0f} MB summed in {elapsed:.3f} s "
          f"(each element = {total[0]:.0f}, expected {expected:.0f})")
    ray.shutdown()


if __name__ == "__main__":
    main()

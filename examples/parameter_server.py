"""Parameter server: an actor holds a numpy vector; worker tasks pull it, compute a
gradient of a least-squares loss on their shard, and push it back.

Run: python examples/parameter_server.py
"""

import time

import numpy as np

import mpiray as ray

DIM = 1000


@ray.remote
class ParameterServer:
    def __init__(self, dim, lr):
        self.params = np.zeros(dim)
        self.lr = lr
        self.updates = 0

    def get_params(self):
        return self.params

    def apply_gradient(self, grad):
        self.params = self.params - self.lr * grad
        self.updates += 1
        return self.updates


@ray.remote
def worker(ps, x, y, steps):
    for _ in range(steps):
        w = ray.get(ps.get_params.remote())
        grad = 2 * x.T @ (x @ w - y) / len(y)
        ray.get(ps.apply_gradient.remote(grad))
    return steps


def main(workers=4, steps=50):
    ray.init()
    rng = np.random.default_rng(0)
    true_w = rng.normal(size=DIM)
    x = rng.normal(size=(4000, DIM))
    y = x @ true_w
    ps = ParameterServer.remote(DIM, 0.1)
    start = time.perf_counter()
    shards = np.array_split(np.arange(len(y)), workers)
    ray.get([worker.remote(ps, ray.put(x[s]), ray.put(y[s]), steps) for s in shards])
    elapsed = time.perf_counter() - start
    w = ray.get(ps.get_params.remote())
    err = float(np.linalg.norm(w - true_w) / np.linalg.norm(true_w))
    updates = workers * steps
    assert err < 0.5, f"did not converge: relative error {err}"
    print(f"parameter_server: {updates} updates in {elapsed:.2f} s "
          f"({updates / elapsed:.0f}/s), relative error {err:.3f}")
    ray.shutdown()


if __name__ == "__main__":
    main()

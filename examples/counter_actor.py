"""A counter actor: state kept between calls, calls from several tasks.

Run: python examples/counter_actor.py
"""

import mpiray as ray


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self, by=1):
        self.value += by
        return self.value

    def get(self):
        return self.value


@ray.remote
def bump(counter, times):
    for _ in range(times):
        ray.get(counter.incr.remote())
    return times


def main():
    ray.init()
    counter = Counter.remote(100)
    done = ray.get([bump.remote(counter, 25) for _ in range(4)])
    value = ray.get(counter.get.remote())
    assert value == 100 + sum(done) == 200, value
    print(f"counter_actor: 100 + 4 tasks x 25 increments -> {value}")
    ray.shutdown()


if __name__ == "__main__":
    main()

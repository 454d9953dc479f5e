"""A streaming pipeline in a placement group: a generator task reads "chunks" and
yields each one as soon as it is ready; a pool of worker actors, reserved together in
one placement group, processes them while the generator is still reading.

    read_chunks (generator task) ──yield──► chunk refs, one by one
        └─► each ref, as it comes ──► Scorer actors (bundles of one group) ──► scores

Run: python examples/streaming_pipeline.py   (or under mpiexec -n N: the group's
bundles are spread over the nodes)
"""

import time

import numpy as np

import mpiray as ray
from mpiray.util.placement_group import placement_group, remove_placement_group
from mpiray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

CHUNKS, CHUNK_ELEMENTS, SCORERS = 24, 250_000, 2


@ray.remote(num_cpus=0)   # (it mostly waits; the CPUs go to the scorers' group)
def read_chunks(n):
    rng = np.random.default_rng(0)
    for i in range(n):
        time.sleep(0.01)   # (reading takes a while)
        yield rng.standard_normal(CHUNK_ELEMENTS)


@ray.remote
class Scorer:
    def score(self, chunk):
        return float(np.abs(chunk).mean())


def main():
    ray.init()
    scorers_n = max(1, min(SCORERS, int(ray.cluster_resources()["CPU"])))
    pg = placement_group([{"CPU": 1}] * scorers_n, strategy="SPREAD")
    ray.get(pg.ready(), timeout=60)
    scorers = [Scorer.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i)).remote()
               for i in range(scorers_n)]
    start = time.perf_counter()
    first_at = None
    scores = []
    for i, chunk in enumerate(read_chunks.remote(CHUNKS)):
        if first_at is None:
            first_at = time.perf_counter() - start
        scores.append(scorers[i % scorers_n].score.remote(chunk))
    values = ray.get(scores, timeout=120)
    took = time.perf_counter() - start
    assert len(values) == CHUNKS and all(0.7 < v < 0.9 for v in values), values
    print(f"streaming_pipeline: {CHUNKS} chunks scored in {took:.2f} s, the first in hand "
          f"after {first_at * 1000:.0f} ms; mean |x| {np.mean(values):.3f} (0.798 expected)")
    remove_placement_group(pg)
    ray.shutdown()


if __name__ == "__main__":
    main()

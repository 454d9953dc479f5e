"""joblib's multiprocessing backend, its pool made of mpiray's actors.

    joblib.Parallel ──batches──► PicklingPool (joblib's: memmaps large arrays) whose base
    class is mpiray.util.multiprocessing.Pool ──apply_async──► actor workers
"""

from __future__ import annotations

import logging

from joblib._parallel_backends import MultiprocessingBackend
from joblib.pool import PicklingPool

import mpiray as ray
from mpiray.util.multiprocessing import Pool

logger = logging.getLogger(__name__)


class RayBackend(MultiprocessingBackend):
    """ray_remote_args (here, or to Parallel / parallel_backend) configure the pool's actors."""

    def __init__(self, nesting_level=None, inner_max_num_threads=None, ray_remote_args=None,
                 **kwargs):
        self.ray_remote_args = ray_remote_args
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads,
                         **kwargs)

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, ray_remote_args=None,
                  **memmappingpool_args):
        # (as Ray's backend does: joblib's pool keeps its reducers and memmapping, over our
        # Pool instead of multiprocessing's)
        PicklingPool.__bases__ = (Pool,)
        if n_jobs == -1:
            n_jobs = _cluster_cpus()
        return super().configure(n_jobs, parallel, prefer, require,
                                 ray_remote_args=ray_remote_args or self.ray_remote_args,
                                 **memmappingpool_args)

    def effective_n_jobs(self, n_jobs):
        if n_jobs == -1:
            return _cluster_cpus()
        return super().effective_n_jobs(n_jobs)


def _cluster_cpus() -> int:
    if not ray.is_initialized():
        logger.info("Starting local ray cluster")
        ray.init()
    return int(ray.cluster_resources()["CPU"])

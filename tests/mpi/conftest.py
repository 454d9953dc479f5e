"""Runtime for the MPI tests: run by `mpiexec -n N python -m pytest tests/mpi --with-mpi`.

Every rank runs pytest; in the first test's fixture, init() keeps every rank but 0
serving the cluster (they never come back to pytest) and rank 0 runs the tests. Run
with MPIRAY_NODE_PER_RANK=1 every rank is a node of its own, so every cross-node path
runs on one machine; without it, the ranks of this host form one node.
"""

import os

import pytest


@pytest.fixture(scope="session")
def cluster():
    import mpiray

    os.environ["MPIRAY_TASK_EVENTS"] = "1"   # every node times its tasks: timeline() tests
    mpiray.init(num_cpus=1)
    yield mpiray
    mpiray.shutdown()


@pytest.fixture
def ray(cluster):
    if not cluster.is_initialized():
        cluster.init(num_cpus=1)
    return cluster

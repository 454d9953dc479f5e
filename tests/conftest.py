"""Shared fixtures: a runtime per test module, and leak checks on /dev/shm and processes."""

import os

import pytest


def our_segments():
    prefix = f"mpiray-{os.getuid()}-"
    return sorted(e for e in os.listdir("/dev/shm") if e.startswith(prefix))


@pytest.fixture(scope="module")
def ray_module():
    import mpiray

    if mpiray.is_initialized():
        mpiray.shutdown()
    mpiray.init(num_cpus=2)
    yield mpiray
    mpiray.shutdown()


@pytest.fixture
def ray(ray_module):
    if not ray_module.is_initialized():
        ray_module.init(num_cpus=2)
    return ray_module


@pytest.fixture
def fresh():
    import mpiray

    if mpiray.is_initialized():
        mpiray.shutdown()
    yield mpiray
    if mpiray.is_initialized():
        mpiray.shutdown()

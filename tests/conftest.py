"""Shared fixtures: a runtime per test module, and leak checks on /dev/shm and processes."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")


def mpirun(n, code, *, per_rank=True, timeout=120, module=False, tmp_path=None, env=None):
    """Runs code as job.py under mpiexec -n n (a rank per node unless per_rank=False),
    env added to the environment: (CompletedProcess, seconds it took)."""
    script = os.path.join(str(tmp_path), "job.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent(code))
    env = dict(os.environ, MPIRAY_NODE_PER_RANK="1" if per_rank else "0",
               PYTHONPATH=ROOT, **(env or {}))
    cmd = [MPIEXEC, "-n", str(n), sys.executable] + (["-m", "mpiray"] if module else []) + [script]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.monotonic() - start


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

"""The MPI thread's wait (mpiray/_native/mpipoll.pyx) between two real ranks: it ends for
a message from the other rank, for a poke from another thread, or at its timeout, and
while it waits it sleeps (no core burnt) and holds no GIL."""

import os

import pytest

from conftest import MPIEXEC, mpirun

pytestmark = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="mpiexec not in the venv")

JOB = """
    import resource, threading, time
    from mpi4py import MPI
    from mpiray._native.mpipoll import (MESSAGE, POKED, TIMEOUT, MpiPoller,
                                        mpi_function_address, set_timer_slack_ns)

    comm = MPI.COMM_WORLD.Dup()
    TAG = 11
    poller = MpiPoller(mpi_function_address("MPI_Iprobe"), comm, MPI.ANY_SOURCE, TAG)
    set_timer_slack_ns(1000)

    def cpu():
        r = resource.getrusage(resource.RUSAGE_THREAD)
        return r.ru_utime + r.ru_stime

    if comm.rank == 1:
        comm.recv(source=0, tag=1)                 # rank 0 is waiting now
        time.sleep(0.3)
        comm.send("hello", dest=0, tag=TAG)
    else:
        # 1. a timeout, napping 5 ms between probes: asleep nearly all of it
        t, c = time.monotonic(), cpu()
        assert poller.wait(0.5, 5e-3) == TIMEOUT
        took, burnt = time.monotonic() - t, cpu() - c
        assert 0.5 <= took < 0.6, took
        assert burnt < 0.05, burnt
        # 2. a poke from another thread ends a long wait at once; the GIL is free meanwhile
        ticks = []
        def poke_later():
            for _ in range(20):
                ticks.append(1)
                time.sleep(0.005)
            poker_at.append(time.monotonic())
            poller.poke()
        poker_at = []
        threading.Thread(target=poke_later).start()
        assert poller.wait(10.0, 5e-3) == POKED
        assert time.monotonic() - poker_at[0] < 0.05 and len(ticks) == 20
        # a poke made while nobody waits ends the next wait
        poller.poke()
        assert poller.wait(10.0, 5e-3) == POKED
        # 3. a message from rank 1: seen within a probe interval of its arrival
        comm.send("go", dest=1, tag=1)
        t = time.monotonic()
        assert poller.wait(10.0, 1e-3) == MESSAGE
        assert 0.25 < time.monotonic() - t < 1.0
        assert comm.recv(source=1, tag=TAG) == "hello"
        # nothing more pending: back to timeouts
        assert poller.wait(0.05, 1e-3) == TIMEOUT
        print("poller ok", flush=True)
"""


def test_poller_wakes_for_a_message_a_poke_or_its_timeout(tmp_path):
    proc, _ = mpirun(2, JOB, tmp_path=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "poller ok" in proc.stdout


def test_poller_needs_the_probe_function():
    from mpiray._native.mpipoll import MpiPoller

    with pytest.raises(ValueError, match="MPI_Iprobe"):
        MpiPoller(0, None, -2, 11)


def test_busy_probe_interval_shares_the_host_cores(monkeypatch):
    from mpiray.mpi.agent import probe_plan

    monkeypatch.delenv("MPIRAY_MPI_PROBE_US", raising=False)
    busy = lambda threads, cores: probe_plan(threads, cores)[0][1]  # noqa: E731
    assert busy(1, 2) == pytest.approx(20e-6)      # never more often than every 20 us
    assert busy(2, 2) == pytest.approx(40e-6)      # 2 MPI threads on 2 cores: 1/8 of them
    assert busy(4, 2) == pytest.approx(80e-6)
    assert busy(8, 64) == pytest.approx(20e-6)
    plan = probe_plan(4, 2)                        # quiet nodes probe less and less often
    assert [every for _, every in plan] == sorted(every for _, every in plan)
    assert plan[-1][0] is None
    monkeypatch.setenv("MPIRAY_MPI_PROBE_US", "300")
    assert busy(4, 2) == pytest.approx(300e-6)

"""Cross-node figures, each against a raw MPI baseline measured in the same run.

    .venv/bin/python benchmarks/mpi.py        (starts the mpiexec runs itself)

Every run uses MPIRAY_NODE_PER_RANK=1, so each rank is a node of its own on this machine.
- transfer: a 256 MiB object made on node 1, pulled by the driver (node 0), against raw
  mpi4py Send/Recv of the same 256 MiB between the same two ranks (goal >= 0.7x), from
  anonymous memory, from /dev/shm memory (what a store is: MPICH moves it at about half
  the speed here), and from anonymous into /dev/shm memory (the ceiling of any pull into a
  store);
- round trip: a task sent to node 1 and its result back, against a raw mpi4py pickled
  ping-pong between the same ranks (goal <= 2x);
- tasks/s with 1, 2 and 4 nodes (no-op tasks; the driver's node has 1 CPU).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20
SIZE = 256 * MIB


def _send_recv_gbps(comm, buf, recv_buf=None):
    """Rank 1 sends buf, rank 0 receives into recv_buf (default: its own buf)."""
    into = buf if recv_buf is None else recv_buf
    times = []
    for _ in range(5):
        comm.Barrier()
        t = time.perf_counter()
        if comm.rank == 1:
            comm.Send(buf, dest=0)
        elif comm.rank == 0:
            comm.Recv(into, source=1)
        times.append(time.perf_counter() - t)
    return SIZE / min(times) / 1e9


def _shm_buffer(comm):
    """SIZE bytes of /dev/shm memory, faulted in: the kind of memory the stores are."""
    import mmap

    path = f"/dev/shm/mpiray-bench-{os.getuid()}-{os.getpid()}"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        m = mmap.mmap(fd, SIZE, flags=mmap.MAP_SHARED)
    finally:
        os.close(fd)
        os.unlink(path)
    buf = np.frombuffer(m, dtype=np.uint8)
    buf[:] = 1
    return buf


def raw_baselines(comm):
    """Rank 0 <-> 1 before mpiray starts: Send/Recv bandwidth (between anonymous buffers,
    and between /dev/shm buffers as the stores are) and a pickled ping-pong."""
    anon = np.ones(SIZE, dtype=np.uint8)  # touched: no page faults
    gbps = _send_recv_gbps(comm, anon)
    shm = _shm_buffer(comm)
    shm_gbps = _send_recv_gbps(comm, shm)
    # the most any pull into a store can reach: the sender's best case, /dev/shm receiver
    into_shm_gbps = _send_recv_gbps(comm, anon, shm)
    del shm
    n = 2000
    comm.Barrier()
    t = time.perf_counter()
    for _ in range(n):
        if comm.rank == 0:
            comm.send(("task", b"x" * 64), dest=1)
            comm.recv(source=1)
        elif comm.rank == 1:
            comm.send(comm.recv(source=0), dest=0)
    rtt_us = (time.perf_counter() - t) / n * 1e6
    return gbps, shm_gbps, into_shm_gbps, rtt_us


def child(mode, out):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    result = {}
    if mode == "pair":
        (result["raw_gbps"], result["raw_shm_gbps"], result["raw_into_shm_gbps"],
         result["raw_rtt_us"]) = raw_baselines(comm)
    import mpiray as ray
    from mpiray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(num_cpus=1, object_store_memory=1536 * MIB, _prefault_store=True)
    nodes = ray.nodes()
    if mode == "pair":
        on1 = NodeAffinitySchedulingStrategy(nodes[1]["NodeID"])

        @ray.remote(scheduling_strategy=on1)
        def make():
            return np.ones(SIZE, dtype=np.uint8)

        @ray.remote(scheduling_strategy=on1)
        def noop():
            return 1

        times = []
        for _ in range(5):
            ref = make.remote()
            ray.get(noop.remote())  # make has run: only the pull is timed below
            while not _sealed_remotely(ref):
                time.sleep(0.001)
            t = time.perf_counter()
            a = ray.get(ref)
            times.append(time.perf_counter() - t)
            assert a.nbytes == SIZE
            del a, ref
        result["transfer_gbps"] = SIZE / min(times) / 1e9
        ray.get([noop.remote() for _ in range(50)])
        n = 500
        t = time.perf_counter()
        for _ in range(n):
            ray.get(noop.remote())
        result["task_rtt_us"] = (time.perf_counter() - t) / n * 1e6
    else:
        @ray.remote
        def noop():
            return 1

        ray.get([noop.remote() for _ in range(200)])
        n = 3000
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            ray.get([noop.remote() for _ in range(n)])
            best = max(best, n / (time.perf_counter() - t))
        result["tasks_per_s"] = best
        result["nodes"] = len(nodes)
    with open(out, "w") as f:
        json.dump(result, f)


def _sealed_remotely(ref):
    """The driver's node has heard that ref's task is done (its route is known)."""
    from mpiray.core import current

    s = current.node().scheduler
    with s.lock:
        return ref.binary() in s.sealed


def run(n, mode):
    out = tempfile.mktemp(suffix=".json")
    venv_bin = os.path.dirname(sys.executable)
    env = dict(os.environ, MPIRAY_NODE_PER_RANK="1", MPIRAY_OBJECT_STORE_MEMORY=str(1536 * MIB),
               MPIRAY_NUM_CPUS="1")
    subprocess.run([os.path.join(venv_bin, "mpiexec"), "-n", str(n), sys.executable, __file__,
                    "--child", mode, out], check=True, env=env, timeout=600)
    with open(out) as f:
        data = json.load(f)
    os.unlink(out)
    return data


def main():
    pair = run(2, "pair")
    print("mpiray cross-node benchmark (MPIRAY_NODE_PER_RANK=1, one machine)")
    print(f"transfer 256 MiB node 1 -> node 0   : {pair['transfer_gbps']:6.2f} GB/s   "
          f"raw MPI Send/Recv {pair['raw_gbps']:.2f} GB/s   ratio {pair['transfer_gbps'] / pair['raw_gbps']:.2f} (goal >= 0.7)")
    print(f"  same raw Send/Recv between /dev/shm buffers (as the stores are): {pair['raw_shm_gbps']:.2f} GB/s   "
          f"ratio {pair['transfer_gbps'] / pair['raw_shm_gbps']:.2f}")
    print(f"  raw Send/Recv from an anonymous buffer into a /dev/shm one (the ceiling of any pull "
          f"into a store): {pair['raw_into_shm_gbps']:.2f} GB/s   ratio {pair['transfer_gbps'] / pair['raw_into_shm_gbps']:.2f}")
    print(f"task round trip to node 1           : {pair['task_rtt_us']:6.0f} us     "
          f"raw mpi4py pickled ping-pong {pair['raw_rtt_us']:.1f} us   ratio {pair['task_rtt_us'] / pair['raw_rtt_us']:.1f}x (goal <= 2x)")
    for n in (1, 2, 4):
        r = run(n, "scale")
        print(f"no-op tasks/s with {r['nodes']} node(s)           : {r['tasks_per_s']:8,.0f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()

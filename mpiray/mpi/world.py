"""The MPI job seen from one rank: who it is, which node it belongs to, and its role.

    mpiexec -n N python job.py
      every rank ── init() ──► World.join()
                                 ├─ rank 0:               driver + control store (returns)
                                 ├─ other node leaders:   serve their node, never return
                                 └─ every other rank:     lend its core to its node, never return

A node is the ranks of one host (``Split_type(COMM_TYPE_SHARED)``), or of one rank when
``MPIRAY_NODE_PER_RANK=1`` (so every cross-node path runs on one machine). Nodes are
numbered by their leader's world rank; node 0 is the driver's.

In single-host mode this module is never imported: MPI_Init costs time and makes fork()
unsafe, and a plain ``python job.py`` must start at once.
"""

from __future__ import annotations

import os
import socket

MPI_ENV = ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALRANKID")


def launched_by_mpi(environ=os.environ) -> bool:
    """True under mpiexec/mpirun/srun with more than one task; MPIRAY_MPI=0/1 forces it."""
    forced = environ.get("MPIRAY_MPI")
    if forced in ("0", "1"):
        return forced == "1"
    if any(key in environ for key in MPI_ENV):
        return True
    tasks = environ.get("SLURM_NTASKS") or environ.get("SLURM_NPROCS") or "1"
    return "SLURM_PROCID" in environ and tasks.isdigit() and int(tasks) > 1


MPICH_SEGMENT_PREFIX = "/dev/shm/mpich_shm_"


def unlink_mapped_segments(prefix: str) -> list:
    """Unlink the shared-memory files this process maps whose path starts with prefix;
    the mappings stay valid until the last process unmaps them."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if prefix in line}
    gone = []
    for path in sorted(p for p in paths if p.startswith(prefix)):
        try:
            os.unlink(path)
            gone.append(path)
        except FileNotFoundError:       # a neighbour rank unlinked it first
            pass
    return gone


# A rank that waits in init() for the others says so after this long (once), and gives
# up after MPIRAY_INIT_TIMEOUT_S if set: a rank that failed before init() (or a script
# that calls init() on some ranks only) would otherwise leave the others waiting for ever.
SLOW_INIT_WARN_S = 60.0


def wait_for_every_rank(MPI, environ=os.environ) -> None:
    """A barrier of every rank that polls and naps instead of spinning (MPICH's blocking
    one burns a core), warns when it takes long, and ends the job on the timeout."""
    import sys
    import time

    timeout = float(environ.get("MPIRAY_INIT_TIMEOUT_S", "0") or 0)
    comm = MPI.COMM_WORLD
    req = comm.Ibarrier()
    start = time.monotonic()
    nap, warned = 1e-5, False
    while not req.Test():
        waited = time.monotonic() - start
        if not warned and waited > SLOW_INIT_WARN_S:
            warned = True
            print(f"mpiray: rank {comm.rank} has waited {waited:.0f} s in init() for the other "
                  "ranks: if one failed before init(), or only some ranks call it, the job "
                  "cannot go on (`python -m mpiray job.py` runs the script on rank 0 only; "
                  "MPIRAY_INIT_TIMEOUT_S ends such a job)", file=sys.stderr, flush=True)
        if timeout and waited > timeout:
            print(f"mpiray: rank {comm.rank}: not every rank reached init() within "
                  f"{timeout:g} s (MPIRAY_INIT_TIMEOUT_S): ending the job", file=sys.stderr,
                  flush=True)
            unlink_mapped_segments(MPICH_SEGMENT_PREFIX)   # (MPICH leaves them on an abort)
            comm.Abort(1)
        time.sleep(nap)
        nap = min(nap * 2, 0.05)


def _import_mpi(environ=os.environ):
    """mpi4py's MPI. Its import is MPI_Init, which waits for every rank of the job (one
    that failed before init() leaves it waiting for ever) holding the GIL, so no Python
    thread can time it: with MPIRAY_INIT_TIMEOUT_S a native watchdog thread ends this
    rank then, saying why, and unlinks the MPICH segment it maps."""
    import sys

    timeout = float(environ.get("MPIRAY_INIT_TIMEOUT_S", "0") or 0)
    if not timeout or "mpi4py.MPI" in sys.modules:   # (or the script initialized MPI)
        from mpi4py import MPI

        return MPI
    from mpiray._native.mpipoll import start_init_watchdog, stop_init_watchdog

    start_init_watchdog(timeout, f"mpiray: not every rank reached MPI_Init within {timeout:g} s "
                        "(MPIRAY_INIT_TIMEOUT_S): ending this rank (did one fail before "
                        "init()?)\n", MPICH_SEGMENT_PREFIX)
    try:
        from mpi4py import MPI
    finally:
        stop_init_watchdog()
    return MPI


def node_per_rank(environ=os.environ) -> bool:
    return environ.get("MPIRAY_NODE_PER_RANK", "0") not in ("", "0")


class World:
    """Ranks, nodes and roles of this job; built collectively by every rank."""

    def __init__(self):
        MPI = _import_mpi()
        self.MPI = MPI
        wait_for_every_rank(MPI)
        self.comm = MPI.COMM_WORLD.Dup()        # ours alone: user MPI traffic never mixes in
        self.rank, self.size = self.comm.rank, self.comm.size
        self.hostname = socket.gethostname()
        if node_per_rank():
            self.node_comm = self.comm.Split(self.rank, 0)
        else:
            self.node_comm = self.comm.Split_type(MPI.COMM_TYPE_SHARED, 0)
        self.local_rank, self.local_size = self.node_comm.rank, self.node_comm.size
        leader = self.node_comm.bcast(self.rank, root=0)
        leaders_of = self.comm.allgather(leader)                 # world rank -> its leader
        self.leaders = sorted(set(leaders_of))                   # node index -> leader rank
        self.node_index = self.leaders.index(leader)
        self.ranks_per_node = [leaders_of.count(r) for r in self.leaders]
        self.hosts = self.comm.allgather(self.hostname)
        # Every rank of this host is past MPI_Init (the allgathers above), so MPICH's
        # segments are mapped by all who need them: their names can go now. Otherwise a
        # rank killed by SIGKILL leaves MPICH's 3 MB segments in /dev/shm forever.
        unlink_mapped_segments(MPICH_SEGMENT_PREFIX)

    @property
    def num_nodes(self) -> int:
        return len(self.leaders)

    @property
    def is_driver(self) -> bool:
        return self.rank == 0

    @property
    def is_leader(self) -> bool:
        return self.local_rank == 0

    def leader_of(self, node: int) -> int:
        return self.leaders[node]

    def describe_rank(self, rank: int) -> str:
        return f"rank {rank} on host {self.hosts[rank]}"

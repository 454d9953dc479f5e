"""Sending a large object to a node on the same host through anonymous staging buffers.

    store buffer (/dev/shm, 4 KiB pages) ──memcpy──► staging buffer (anonymous, huge pages)
        ──Isend (chunk k, the transfer's own tag)──► receiver's Irecv into its store

MPICH moves a large message between two processes of one host with a single copy by the
receiver (CMA: process_vm_readv of the sender's pages). From /dev/shm pages that copy runs
at about half the speed it reaches from anonymous memory with transparent huge pages,
which /dev/shm does not get here (shmem_enabled "never"). So the sender copies each
chunk into a staging buffer first; its copy of chunk k+1 overlaps the receiver's read of
chunk k, on another core. Measured (256 MiB, 2 ranks of one 2-core host): 7.0 GB/s
sent from the store directly, 8-12 GB/s staged in 8 MiB chunks (/tmp/stage/proto.py,
benchmarks/mpi.py). Nodes on other hosts are sent the store's bytes as they are: there
the network, not page walks, sets the pace.

An OutgoingObject stands in the agent's list of sends as a request would: Test() moves
it on (no call ever blocks, so two nodes sending to each other cannot deadlock) and is
True once every chunk has gone.
"""

from __future__ import annotations

import numpy as np

STAGE_CHUNK = 8 << 20     # bytes per staged message
STAGE_BUFFERS = 2         # staging buffers per transfer: one filled while one is read
STAGE_MIN = 32 << 20      # smaller objects go straight from the store (the copy would not pay)
POOL_MAX = 8              # staging buffers kept for the next transfers


class StagingPool:
    """Staging buffers reused across transfers (a fresh one costs its page faults)."""

    def __init__(self):
        self.free = []

    def take(self):
        return self.free.pop() if self.free else np.empty(STAGE_CHUNK, dtype=np.uint8)

    def give(self, buf):
        if len(self.free) < POOL_MAX:
            self.free.append(buf)


class OutgoingObject:
    def __init__(self, comm, mpi, rank, tag, raw, pool):
        self.comm, self.mpi, self.rank, self.tag = comm, mpi, rank, tag
        self.raw = raw                 # the object's bytes (a view of the store's buffer)
        self.pool = pool
        self.bufs = [pool.take() for _ in range(STAGE_BUFFERS)]
        self.reqs = [None] * STAGE_BUFFERS
        self.next_off = 0
        self.chunk_index = 0
        self.Test()                    # (the first chunks go now)

    def Test(self) -> bool:
        if self.raw is None:
            return True
        n = self.raw.nbytes
        while self.next_off < n:
            slot = self.chunk_index % STAGE_BUFFERS
            req = self.reqs[slot]
            if req is not None and not req.Test():
                return False           # (the receiver still reads that buffer)
            size = min(STAGE_CHUNK, n - self.next_off)
            staged = self.bufs[slot][:size]
            staged[:] = np.frombuffer(self.raw[self.next_off: self.next_off + size], dtype=np.uint8)
            self.reqs[slot] = self.comm.Isend([staged, self.mpi.BYTE], dest=self.rank, tag=self.tag)
            self.next_off += size
            self.chunk_index += 1
        if not all(req is None or req.Test() for req in self.reqs):
            return False
        for buf in self.bufs:
            self.pool.give(buf)
        self.bufs, self.raw = [], None
        return True

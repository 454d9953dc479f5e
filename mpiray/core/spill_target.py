"""An object written straight into its spill file, for the store to list as spilled:
Ray's fallback allocation, when the store cannot hold an object even by spilling others
(what fills it is pinned by readers, or the object is bigger than the whole store).

    SpillTarget(store.spill_path(oid), n) ── its bytes written (a put, a return, an MPI
        receive) ──► publish(): store.adopt_spilled(oid, n) ──► a get restores it when
        there is room, else maps the file
"""

from __future__ import annotations

import mmap
import os


class SpillTarget:
    """A spill file of nbytes, mapped writable. The disk space is taken up front
    (posix_fallocate): a full disk is an OSError here, not a SIGBUS while writing."""

    def __init__(self, path: str, nbytes: int):
        self.path, self.nbytes = path, nbytes
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, nbytes)
            except OSError:
                os.close(fd)
                fd = -1
                self._unlink()
                raise
            self.mapping = mmap.mmap(fd, nbytes)
        finally:
            if fd >= 0:
                os.close(fd)
        self.view = memoryview(self.mapping)

    def publish(self, store, oid):
        """The bytes are in: the store lists the object as spilled. None, or the error
        (the file is removed then)."""
        self._unmap()
        try:
            store.adopt_spilled(oid, self.nbytes)
            return None
        except Exception as exc:  # noqa: BLE001 - (already here, or the table is full)
            self._unlink()
            return exc

    def discard(self):
        """Writing failed: the file goes."""
        self._unmap()
        self._unlink()

    def _unmap(self):
        try:
            self.view.release()
            self.mapping.close()   # (the file keeps the bytes)
        except BufferError:   # a receive's slice still alive: unmapped when it goes
            pass

    def _unlink(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass

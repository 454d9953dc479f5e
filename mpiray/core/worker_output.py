"""Workers' output on the driver's terminal, each line prefixed with who printed it.

    worker fd 1 / fd 2 ──pipe of its own──┐   (the zygote makes both pipes at the fork and
    (print(), os.write, a subprocess,     │    hands their read ends over the fd socket)
     a C library's printf)                ▼
    zygote ──fd socket: (slot, pid, kind, label) + 2 fds──► OutputRouter (node's log thread)
    zygote's own stdout / stderr pipes ─────────────────────►   │ whole lines per pipe
                                                                ▼
        "\\x1f(f pid=N) text"  print() in the worker: prefixed there, sentinel dropped
        "text"                 raw bytes: prefixed here, "(<running task> pid=N) "
                                                                │
                                        LogLines (one per stream: Ray's deduplication)
                                                                ▼
                                               driver's sys.stdout / sys.stderr

Every worker writing to a pipe of its own is what lets output that never passed through
Python (a subprocess's, a C library's) be told apart and prefixed, as Ray's log monitor
prefixes what it reads from each worker's log file; one pipe for both kinds keeps a
worker's lines in the order it wrote them. The label of a raw line is the task the
worker runs when the line is read (its process title), else the last label it printed
with: raw output is read while its task runs, almost always.
"""

from __future__ import annotations

import os
import pickle
import resource
import selectors
import socket
import sys
import time

from mpiray.core.log_dedup import PREFIX, LogLines
from mpiray.core.worker_main import PY_LINE, output_prefix

# A worker's unfinished line (a raw write without its newline: a progress counter, a
# prompt) is printed, ended, after this long without the rest.
PARTIAL_LINE_S = 0.2
FD_MESSAGE = 4096   # (the largest (slot, pid, kind, label) message sent with a worker's fds)


class _Source:
    """One pipe: the zygote's own (no prefix) or one of a worker's two."""

    def __init__(self, fd, lines: LogLines, pid=None, kind=None, label=None):
        self.fd, self.lines, self.pid, self.kind, self.label = fd, lines, pid, kind, label
        self.partial, self.partial_since = "", 0.0
        self.last_python = None    # the last line the worker's Python wrote (its prefix)

    def split(self, text: str, now: float) -> list:
        """The whole lines text finishes, each as it is to be printed (without newline)."""
        if not self.partial:
            self.partial_since = now
        *whole, self.partial = (self.partial + text).split("\n")
        shown = []
        for line in whole:
            self._show(line, shown)
        return shown

    def unfinished(self) -> list:
        line, self.partial, shown = self.partial, "", []
        if line:
            self._show(line, shown)
        return shown

    def _show(self, line: str, shown: list):
        if self.pid is None:
            shown.append(line)
            return
        raw, sep, python = line.partition(PY_LINE)
        if raw:   # (raw bytes; before a print()'s line: written without their newline)
            shown.append(self._raw_prefix() + raw)
        if sep:
            shown.append(python)
            self.last_python = python

    def _raw_prefix(self) -> str:
        if self.kind == "task":
            running = _running_task(self.pid)
            if running:
                return output_prefix(running.rpartition(".")[2], self.pid)
        found = PREFIX.match(self.last_python) if self.last_python else None
        return found.group(0) if found else output_prefix(self.label, self.pid)


def _running_task(pid: int):
    """What a task worker runs now, from its process title (core/proctitle.py); None when
    it is idle or gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return None
    if not title.startswith("ray::") or title == "ray::IDLE":
        return None
    return title[5:]


class OutputRouter:
    """The loop of one zygote's log thread (a new zygote gets a router of its own): ends
    when the zygote and every worker it forked have closed their ends."""

    def __init__(self, out_r: int, err_r: int, fd_socket: socket.socket, to_driver: bool):
        self.streams = {"stdout": LogLines("stdout"), "stderr": LogLines("stderr")}
        self.to_driver = to_driver
        self.selector = selectors.DefaultSelector()
        self.sources = {}
        self._add(_Source(out_r, self.streams["stdout"]))
        self._add(_Source(err_r, self.streams["stderr"]))
        self.fd_socket = fd_socket
        self.selector.register(fd_socket, selectors.EVENT_READ)

    def _add(self, source: _Source):
        self.sources[source.fd] = source
        self.selector.register(source.fd, selectors.EVENT_READ)

    def run(self):
        try:
            while self.sources or self.fd_socket is not None:
                for key, _ in self.selector.select(self._timeout()):
                    if key.fileobj is self.fd_socket:
                        self._take_fds()
                    else:
                        self._read(self.sources[key.fd])
                self._print_due(time.monotonic())
        finally:
            for source in list(self.sources.values()):
                self._close(source)
            for lines in self.streams.values():
                self._print(lines.stream, lines.close())
            self.selector.close()

    def _timeout(self):
        waits = [source.partial_since + PARTIAL_LINE_S - time.monotonic()
                 for source in self.sources.values() if source.partial]
        if any(lines.pending() for lines in self.streams.values()):
            waits.append(0.5)
        return max(0.0, min(waits)) if waits else None

    def _take_fds(self):
        try:
            message, fds, _, _ = socket.recv_fds(self.fd_socket, FD_MESSAGE, 2)
        except OSError:
            message, fds = b"", []
        if not message:   # the zygote is gone (its workers may still hold their pipes)
            for fd in fds:
                os.close(fd)
            self.selector.unregister(self.fd_socket)
            self.fd_socket.close()
            self.fd_socket = None
            return
        _slot, pid, kind, label = pickle.loads(message)
        for fd, stream in zip(fds, ("stdout", "stderr")):
            self._add(_Source(fd, self.streams[stream], pid, kind, label))

    def _read(self, source: _Source):
        try:
            data = os.read(source.fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._close(source)
            return
        if not self.to_driver:
            return   # (init(log_to_driver=False): read, so that no worker blocks on a full pipe)
        lines = source.split(data.decode(errors="replace"), time.monotonic())
        self._print(source.lines.stream, source.lines.feed_lines(lines))

    def _print_due(self, now):
        for source in self.sources.values():
            if source.partial and now - source.partial_since >= PARTIAL_LINE_S and self.to_driver:
                self._print(source.lines.stream, source.lines.feed_lines(source.unfinished()))
        for lines in self.streams.values():
            if lines.pending():
                self._print(lines.stream, lines.due())

    def _close(self, source: _Source):
        if self.to_driver:
            self._print(source.lines.stream, source.lines.feed_lines(source.unfinished()))
        self.selector.unregister(source.fd)
        os.close(source.fd)
        del self.sources[source.fd]

    @staticmethod
    def _print(name: str, text: str):
        """text on the driver's sys.stdout / sys.stderr (as it is then: a test may capture it)."""
        if not text:
            return
        stream = getattr(sys, name)
        try:
            stream.write(text)
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed terminal must not stop the node
            pass


def allow_worker_pipes():
    """Every worker holds two of the driver's descriptors: the soft limit raised to the
    hard one (as far as 1M), so that a few hundred actors do not run the driver out."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard if hard != resource.RLIM_INFINITY else 1 << 20, 1 << 20)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass

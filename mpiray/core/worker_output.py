"""Workers' output on the driver's terminal, each line prefixed with who printed it.

    worker fd 1 / fd 2 ──pipe of its own──┐   (the zygote makes both pipes at the fork and
    (print(), os.write, a subprocess,     │    hands their read ends over the fd socket)
     a C library's printf)                ▼
    zygote ──fd socket: (slot, pid, kind, label) + 2 fds──► OutputRouter (node's log thread)
    zygote's own stdout / stderr pipes ─────────────────────►   │ whole lines per pipe
                                                                ├──► the worker's log file,
                                                                ▼    unprefixed (worker_logs.py)
        "\\x1f\\x02label:(g pid=N) "  the worker's next task: the prefix of this pipe's lines
        "text"                     a line (print() or raw bytes): shown as "(g pid=N) text"
                                                                │
                                        LogLines (one per stream: Ray's deduplication)
                                                                ▼
                                               driver's sys.stdout / sys.stderr

Every worker writing to a pipe of its own is what lets output that never passed through
Python (a subprocess's, a C library's) be prefixed, as Ray's log monitor prefixes what it
reads from each worker's log file; one pipe for both kinds keeps a worker's lines in the
order it wrote them; the label records, written to both pipes in that order, give each
line the task that wrote it, even when it is read after the task has ended.
"""

from __future__ import annotations

import codecs
import os
import pickle
import resource
import selectors
import socket
import sys
import time

from mpiray.core.log_dedup import LogLines
from mpiray.core.worker_main import LABEL, output_prefix

# A worker's unfinished line (a raw write without its newline: a progress counter, a
# prompt) is printed, ended, after this long without more of it, or this long after it
# began (a counter that keeps writing); a long line still arriving is not cut sooner.
PARTIAL_LINE_S = 0.2
PARTIAL_LINE_MAX_S = 2.0
FD_MESSAGE = 4096   # (the largest (slot, pid, kind, label) message sent with a worker's fds)


class _Source:
    """One pipe: the zygote's own (prefix None: none) or one of a worker's two, whose
    lines also go, unprefixed, to its log file (opened when it first writes)."""

    def __init__(self, fd, lines: LogLines, prefix=None, log_path=None):
        self.fd, self.lines, self.prefix, self.log_path = fd, lines, prefix, log_path
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial, self.partial_since, self.partial_began = "", None, 0.0
        self.logged, self.log_file = [], None

    def write_log(self):
        if not self.logged:
            return
        try:
            if self.log_file is None:
                self.log_file = open(self.log_path, "a", encoding="utf-8", errors="replace")
            self.log_file.write("".join(line + "\n" for line in self.logged))
            self.log_file.flush()
        except OSError:
            self.log_path = None   # (a full or removed disk: the terminal still gets it)
        self.logged = []

    def close(self):
        self.write_log()
        if self.log_file is not None:
            try:
                self.log_file.close()
            except OSError:
                pass   # (what a full disk could not take)

    def split(self, data: bytes, now: float) -> list:
        """The whole lines data finishes, each as it is to be printed (without newline)."""
        *whole, self.partial = (self.partial + self.decoder.decode(data)).split("\n")
        if not self.partial:
            self.partial_since = None
        elif whole or self.partial_since is None:   # (a new unfinished line)
            self.partial_began = self.partial_since = now
        else:
            self.partial_since = now
        shown = []
        for line in whole:
            self._show(line, shown)
        return shown

    def unfinished(self) -> list:
        line, self.partial, shown = self.partial + self.decoder.decode(b"", final=True), "", []
        self.partial_since = None
        if line:
            self._show(line, shown)
        return shown

    def _show(self, line: str, shown: list):
        if line.endswith("\r"):
            line = line[:-1]   # (a CRLF line end, as Ray's log monitor takes it)
        if self.prefix is None:
            shown.append(line)
            return
        text, sep, label = line.partition(LABEL)
        if text or not sep:   # (before a record: raw bytes written without their newline)
            shown.append(self.prefix + text)
            if self.log_path is not None:
                self.logged.append(text)
        if sep:
            self.prefix = label

    def due(self, now) -> bool:
        return bool(self.partial) and (now - self.partial_since >= PARTIAL_LINE_S
                                       or now - self.partial_began >= PARTIAL_LINE_MAX_S)


class OutputRouter:
    """The loop of one zygote's log thread (a new zygote gets a router of its own): ends
    when the zygote and every worker it forked have closed their ends."""

    def __init__(self, out_r: int, err_r: int, fd_socket: socket.socket, to_driver: bool,
                 log_name=None):
        """log_name(slot, pid): the path of a worker's log files, less .out / .err (None:
        none kept)."""
        self.log_name = log_name
        self.streams = {"stdout": LogLines("stdout"), "stderr": LogLines("stderr")}
        self.to_driver = to_driver
        self.selector = selectors.DefaultSelector()
        self.sources = {}
        self._add(_Source(out_r, self.streams["stdout"]))
        self._add(_Source(err_r, self.streams["stderr"]))
        self.fd_socket = fd_socket
        self.selector.register(fd_socket, selectors.EVENT_READ)
        self.warned_fds = False

    def _add(self, source: _Source):
        self.sources[source.fd] = source
        self.selector.register(source.fd, selectors.EVENT_READ)

    def run(self):
        try:
            while self.sources or self.fd_socket is not None:
                for key, _ in self.selector.select(self._timeout()):
                    try:
                        if key.fileobj is self.fd_socket:
                            self._take_fds()
                        else:
                            self._read(self.sources[key.fd])
                    except Exception:  # noqa: BLE001 - one bad event must not end the thread
                        pass           # (every worker's output would stop with it)
                self._print_due(time.monotonic())
        finally:
            for source in list(self.sources.values()):
                self._close(source)
            for lines in self.streams.values():
                self._print(lines.stream, lines.close())
            self.selector.close()

    def _timeout(self):
        now = time.monotonic()
        waits = [min(source.partial_since + PARTIAL_LINE_S, source.partial_began
                     + PARTIAL_LINE_MAX_S) - now
                 for source in self.sources.values() if source.partial]
        if any(lines.pending() for lines in self.streams.values()):
            waits.append(0.5)
        return max(0.0, min(waits)) if waits else None

    def _take_fds(self):
        try:
            message, fds, flags, _ = socket.recv_fds(self.fd_socket, FD_MESSAGE, 2)
        except OSError:
            message, fds, flags = b"", [], 0
        if not message:   # the zygote is gone (its workers may still hold their pipes)
            for fd in fds:
                os.close(fd)
            self.selector.unregister(self.fd_socket)
            self.fd_socket.close()
            self.fd_socket = None
            return
        _slot, pid, _kind, label = pickle.loads(message)
        if len(fds) < 2 or flags & socket.MSG_CTRUNC:
            # (this process is out of descriptors: the kernel dropped what did not fit)
            for fd in fds:
                os.close(fd)
            if not self.warned_fds:
                self.warned_fds = True
                limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                print(f"(mpiray) warning: out of file descriptors (RLIMIT_NOFILE {limit}): "
                      f"the output of worker pid {pid} and of others started from now on is "
                      "lost; raise the limit (ulimit -n) to see it", file=sys.stderr, flush=True)
            return
        for fd in fds:
            os.set_inheritable(fd, False)   # (no child of the driver holds a worker's pipe)
        prefix = output_prefix(label, pid)
        stem = self.log_name(_slot, pid) if self.log_name is not None else None
        for fd, stream, suffix in zip(fds, ("stdout", "stderr"), (".out", ".err")):
            self._add(_Source(fd, self.streams[stream], prefix, stem and stem + suffix))

    def _read(self, source: _Source):
        try:
            data = os.read(source.fd, 65536)
        except OSError:
            data = b""
        if not data:
            self._close(source)
            return
        lines = source.split(data, time.monotonic())
        source.write_log()
        if self.to_driver:   # (else, init(log_to_driver=False): its log file only)
            self._print(source.lines.stream, source.lines.feed_lines(lines))

    def _print_due(self, now):
        for source in self.sources.values():
            if source.due(now):
                lines = source.unfinished()
                source.write_log()
                if self.to_driver:
                    self._print(source.lines.stream, source.lines.feed_lines(lines))
        for lines in self.streams.values():
            if lines.pending():
                self._print(lines.stream, lines.due())

    def _close(self, source: _Source):
        lines = source.unfinished()
        source.close()
        if self.to_driver:
            self._print(source.lines.stream, source.lines.feed_lines(lines))
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
    """Every worker holds two of the driver's descriptors: the soft limit raised toward the
    hard one, as far as 65536 as Ray's driver does (a larger limit slows select()-era code
    and closing every fd at a fork), so that a few hundred actors do not run the driver out."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass

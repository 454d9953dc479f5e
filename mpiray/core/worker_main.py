"""A forked worker's start: attach the node's segments, become a Runtime, serve.

    zygote fork ──► run_worker ──► attach store + queues ──► TaskWorker.serve()
                                                          or ActorWorker.serve()
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import signal
import sys

from mpiray import _config
from mpiray.core import accelerators, context, names, refcount
from mpiray.core.channel import WorkerChannel
from mpiray.core.native import Queue, Store
from mpiray.core.proctitle import set_title
from mpiray.core.runtime import Runtime


# Starts a record, not a line: the prefix of what this worker writes from here on, to
# either pipe (Ray's workers mark each task's start in their log files alike), so that the
# node prefixes every line itself (core/worker_output.py) and the lines stay the worker's
# own text: a task that captures its fd 1 (wurlitzer) gets what it printed, nothing more.
# Two control characters together, which text output does not hold.
PY_LINE = "\x1f\x02"
LABEL = PY_LINE + "label:"


class _WholeLines(io.TextIOBase):
    """sys.stdout/err of a worker: whole lines, written to the worker's output pipe in one
    write (its raw output, os.write or a subprocess's, cannot split a line). A text stream
    as the interpreter's is (.buffer writes raw)."""

    def __init__(self, fd, name):
        super().__init__()
        self.fd, self.pending, self._name = fd, "", name
        self.buffer = open(fd, "wb", buffering=0, closefd=False)

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.pending += text
        if "\n" in self.pending:
            *lines, self.pending = self.pending.split("\n")
            _write_all(self.fd, "".join(line + "\n" for line in lines))
        return len(text)

    def flush(self):
        if self.pending:
            self.write("\n")

    def isatty(self):
        return False

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def reconfigure(self, *, encoding=None, errors=None, newline=None, line_buffering=None,
                    write_through=None):
        """Accepted as TextIOWrapper's: lines go out whole, as UTF-8, whatever is asked."""

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "replace"

    @property
    def line_buffering(self):
        return True

    @property
    def name(self):
        return self._name

    @property
    def mode(self):
        return "w"


def _write_all(fd, text: str):
    data = text.encode(errors="replace")
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass   # (the node could not take this worker's pipe: worker_output.OutputRouter says so)


_streams = []   # this worker's two _WholeLines, whatever sys.stdout is now
_named = [""]   # the prefix its output has now


def run_exit_handlers():
    """The atexit handlers this worker's own code registered (exit_actor(), the end of an
    actor or worker), as a process of its own runs them at exit; a failing one is
    reported, not raised: the process is ending."""
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass


def _retarget_log_handlers(old) -> None:
    """Logging handlers made before the swap (a runtime_env's worker_process_setup_hook
    calling logging.basicConfig runs in the zygote) write to the new streams, so their
    lines get the worker's prefix too, as Ray's do."""
    import logging

    swap = {id(old[0]): sys.stdout, id(old[1]): sys.stderr,
            id(sys.__stdout__): sys.stdout, id(sys.__stderr__): sys.stderr}
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for handler in lg.handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and id(stream) in swap:
                handler.setStream(swap[id(stream)])


# Ray's RAY_COLOR_PREFIX=1: each process's prefix in a colour of its own (by pid), dimmed
_COLORS = ("\x1b[35m", "\x1b[36m", "\x1b[32m", "\x1b[90m", "\x1b[94m", "\x1b[95m")


def output_prefix(label: str, pid=None) -> str:
    """"(label pid=N) ", as Ray prefixes a worker's lines on the driver (this process's
    pid unless given)."""
    pid = os.getpid() if pid is None else pid
    if os.environ.get("RAY_COLOR_PREFIX") == "1":
        return f"\x1b[2m{_COLORS[pid % len(_COLORS)]}({label} pid={pid})\x1b[0m "
    return f"({label} pid={pid}) "


def name_output(label: str) -> None:
    """Lines written from now on start with "(label pid=N)", as Ray's: the running task's
    name, or the actor's class (or its __repr__); raw output too (the record tells the node)."""
    who = output_prefix(label)
    if not _streams or _named[0] == who:
        return
    _named[0] = who
    for stream in _streams:
        stream.flush()
        _write_all(stream.fd, f"{LABEL}{who}\n")   # (each pipe is read on its own)


def go_idle() -> None:
    """A task worker with nothing to run: its unfinished lines out, its title ray::IDLE."""
    flush_partial_output()
    set_title("IDLE")


def flush_partial_output() -> None:
    """Ends the line a task left unfinished (print(x, end=" ")) when the worker goes idle:
    Ray's workers write unbuffered, so such output reaches the driver at once, not at the
    next newline or never (a worker that shutdown kills)."""
    for stream in _streams:
        if stream.pending:
            stream.flush()


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code sys.exit(code) means, as the interpreter maps it (a message
    is printed, and means 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


# Asks a worker or actor process to run gc.collect() (Node.global_gc): SIGUSR1 and SIGUSR2
# are cancels'; this one is unused by Python and rarely by programs.
GC_SIGNAL = signal.SIGURG


def _collect_garbage(signum, frame):
    gc.collect()   # (as a collection an allocation starts may run at any point anyway)


def _raise_oom_score():
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(_config.worker_oom_score_adj()))
    except (OSError, ValueError):
        pass   # (not Linux, or a lower value refused without privileges)
    try:
        os.nice(_config.worker_niceness())
    except OSError:
        pass   # (a negative niceness refused without privileges)


def run_worker(init, slot, kind, actor_id, devices, options, nonce=None):
    from mpiray import _ids

    atexit._clear()   # (the handlers forked from the zygote are the driver's, not ours)

    _ids.set_node(init.get("node_index", 0), nonce)
    _raise_oom_score()
    signal.signal(GC_SIGNAL, _collect_garbage)
    accelerators.pin_process(devices, _config.hide_gpus_without_request())
    context.process()["devices"] = dict(devices)
    context.process()["reconstructed"] = bool(options.get("reconstructed"))
    context.process()["node_id"] = init["node_id"]
    context.process()["worker_id"] = f"{init['session']}-{slot}"
    who = output_prefix(options.get('label', 'worker'))
    old = (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = _WholeLines(1, "<stdout>"), _WholeLines(2, "<stderr>")
    _streams[:] = [sys.stdout, sys.stderr]
    _named[0] = who   # (the node starts from the label the zygote sent with the pipes)
    _retarget_log_handlers(old)
    import faulthandler

    faulthandler.enable(all_threads=False)   # (as Ray's workers: a crash prints its Python stack)
    session = init["session"]
    store = Store.attach(names.store_name(session))
    inbox = Queue.attach(names.inbox_name(session))
    inbox.populate()
    channel = WorkerChannel(inbox, store, slot)
    refcount.set_sink(channel)
    channel.start_flusher()

    def actor_queue(aid):
        try:
            return Queue.attach(names.actor_queue_name(session, aid))
        except (FileNotFoundError, OSError):
            return None

    rt = Runtime(session, store, channel, actor_queue, is_driver=False)
    rt.fetch_remote = init.get("num_nodes", 1) > 1
    from mpiray.core import current

    current.set_runtime(rt, init)
    try:
        if kind == "actor":
            from mpiray.core.actor_worker import ActorWorker

            ActorWorker(rt, Queue.attach(names.actor_queue_name(session, actor_id)), actor_id, slot).serve()
        else:
            from mpiray.core.worker import TaskWorker

            tasks = Queue.attach(names.task_queue_name(session))
            tasks.populate()
            TaskWorker(rt, tasks, slot).serve()
    finally:
        rt.deferred.send_all()   # (actor calls still waiting here go first)
        channel.flush()
        sys.stdout.flush()
        sys.stderr.flush()

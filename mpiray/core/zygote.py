"""The fork server: one clean process per node that forks workers on request.

    driver ──commands (fork / kill / signal / exit)──► zygote ──fork()──► worker or actor
    driver ◄──reports (started / died, with status)── zygote ◄──SIGCHLD── its children
    driver ◄──fd socket: each worker's stdout and stderr pipes (core/worker_output.py)
    driver's process gone (EOF on commands) ──► zygote kills every child, unlinks the
                                               session's segments, exits

Forking from here (not from the driver) gives workers a small, thread-free parent whose
imports are already done, so a worker starts in about a millisecond, and it never copies
the user's driver state. Children die with the zygote (PR_SET_PDEATHSIG).

Processes a task or actor started go when its worker does, as Ray's do
(kill_child_processes_on_worker_exit): each worker leads a process group of its own,
which what it starts joins, and the zygote kills that group when the worker has ended
(exited or killed). What left the group (setsid: a daemon) goes when the session does:
the zygote is the subreaper of everything below it and kills what remains at its exit.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import select
import shutil
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection

from mpiray import _ids

PRELOAD_AFTER_S = 0.02
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def main(cmd_fd: int, report_fd: int, output_fd: int) -> None:
    commands, reports = Connection(cmd_fd, writable=False), Connection(report_fd, readable=False)
    init = commands.recv()
    init["output_socket"] = socket.socket(fileno=output_fd)
    children = {}  # pid -> (slot, kind)
    try:   # (from here on, however it ends: the driver may be gone before "ready" is sent)
        wake_r = _boot(init)
        reports.send(("ready", os.getpid()))
        _serve(init, commands, reports, wake_r, children)
    except (BrokenPipeError, EOFError, OSError):
        pass   # the driver went away (a rank killed by mpiexec, say): clean up after it
    finally:
        _kill_all(children)
        if init.get("cleanup_on_exit", True):
            from mpiray.core.names import remove_session_segments

            remove_session_segments(init["session"])
            for spill_dir in init.get("spill_dirs") or ():   # (a killed driver could not
                shutil.rmtree(spill_dir, ignore_errors=True)   # remove its spill files)
    os._exit(0)


def _boot(init):
    """The imports every worker shares, and the signals the serve loop waits on; the
    read end of the wake-up pipe."""
    sys.path[:] = init["sys_path"]
    os.chdir(init["cwd"])
    from mpiray.core import runtime_env

    runtime_env.apply_process(init.get("runtime_env"))  # the job's: every worker inherits it
    # read by core/timeline.py when the worker modules are imported, just below
    os.environ["MPIRAY_TASK_EVENTS"] = "1" if init.get("task_events") else "0"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    from mpiray.core import worker_main  # noqa: F401 - imported once, shared by every fork

    _shared_from_here()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return wake_r


_LIBC = []


def _libc():
    """libc, loaded once and kept: a dropped CDLL is a reference cycle, which every
    forked worker would inherit as garbage (user code that checks gc.garbage sees it)."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _shared_from_here():
    """Everything imported so far is shared with every fork: moved out of the collector's
    reach, a child's collections no longer write to (and so copy) those pages, which
    made a fresh worker's first milliseconds of tasks several times slower."""
    gc.freeze()


def _preload(init):
    """What only some workers need (actors: asyncio; the driver's numpy), imported once the
    first task workers' forks are served (or before an actor's), so that init() does not
    wait for it (~100 ms here); a worker forked before it imports what it needs itself.
    numpy's BLAS sizes its thread pool as it loads: for one CPU, what a task holds by
    default (core/blas_threads.py resizes it for a task that holds more), unless the user
    sized it."""
    from mpiray.core import blas_threads

    sized_by_user = any(name in os.environ for name in blas_threads.SIZING)
    if not sized_by_user:
        os.environ["OMP_NUM_THREADS"] = "1"
    try:
        for module in ["mpiray.core.actor_worker", *init.get("preload", ())]:
            try:
                __import__(module)
            except ImportError:
                pass
    finally:
        if not sized_by_user:
            del os.environ["OMP_NUM_THREADS"]
    blas_threads.prepare(None if sized_by_user else 1)   # (found once, for every fork)
    _shared_from_here()


def _serve(init, commands, reports, wake_r, children):
    preloaded = False
    while True:
        # (quiet for PRELOAD_AFTER_S: the driver's first forks, sent right after "ready",
        # are served before the preload)
        readable, _, _ = select.select([commands, wake_r], [], [],
                                       1.0 if preloaded else PRELOAD_AFTER_S)
        if not readable and not preloaded:
            _preload(init)
            preloaded = True
            continue
        if wake_r in readable:
            os.read(wake_r, 4096)
        _reap(children, reports)
        if commands not in readable:
            continue
        try:
            cmd = commands.recv()
        except (EOFError, OSError):
            return  # the driver is gone
        op = cmd[0]
        if op == "fork":
            if cmd[2] == "actor" and not preloaded:   # (what every actor imports: once, here)
                _preload(init)
                preloaded = True
            _fork(init, cmd, commands, reports, wake_r, children)
        elif op == "kill":
            for pid, (slot, _) in list(children.items()):
                if slot == cmd[1]:
                    _signal(pid, signal.SIGKILL)
        elif op == "signal":
            for pid, (_, kind) in list(children.items()):
                if kind == cmd[2]:
                    _signal(pid, cmd[1])
        elif op == "exit":
            return


def _fork(init, cmd, commands, reports, wake_r, children):
    _, slot, kind, actor_id, devices, options = cmd
    # Chosen here so that the node hears it with the pid: when the worker dies, what it
    # made and never reported is found in the store by this prefix of its ids.
    nonce = _ids.new_nonce(init.get("node_index", 0))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(out_w, 1)   # (what it and its subprocesses write: its own pipes)
            os.dup2(err_w, 2)
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            init["output_socket"].close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setpgid(0, 0)   # (a group of its own: what it starts goes with it)
            os.close(wake_r)
            commands.close()
            reports.close()
            _die_with_parent()
            from mpiray.core.worker_main import exit_code_of, run_exit_handlers, run_worker

            run_worker(init, slot, kind, actor_id, devices, options, nonce)
            code = 0
            run_exit_handlers()
        except SystemExit as exc:   # sys.exit(n) in a task: the worker's exit code is n
            code = exit_code_of(exc)
            run_exit_handlers()
        except BaseException:  # noqa: BLE001 - a worker that fails to start says why
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    children[pid] = (slot, kind)
    os.close(out_w)
    os.close(err_w)
    try:
        who = pickle.dumps((slot, pid, "actor" if kind == "actor" else "task",
                            options.get("label", "worker")))
        socket.send_fds(init["output_socket"], [who], [out_r, err_r])
    except OSError as exc:   # (the node's log thread is gone: this worker's output is lost,
        # but the node must still get its worker)
        print(f"(mpiray) warning: the output of worker pid {pid} is lost: {exc}",
              file=sys.stderr, flush=True)
    finally:
        os.close(out_r)
        os.close(err_r)
    reports.send(("started", slot, pid, nonce))


def _die_with_parent():
    parent = os.getppid()
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the zygote died before prctl took effect
        os._exit(1)


def _reap(children, reports):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        slot, _ = children.pop(pid, (None, None))
        if slot is not None:
            # What the worker started, in its group (killed before the pid can be
            # reused: a fork comes only after this loop). Orphans reparented here are
            # reaped by this loop as they die.
            _kill_group(pid)
            reports.send(("died", slot, pid, _describe(status)))


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _own_children():
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _describe(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by signal {sig} ({signal.Signals(sig).name})"
    return f"exit code {os.WEXITSTATUS(status)}"


def death_hint(status: str) -> str:
    """What Ray's error adds about a process that died of SIGKILL: who likely sent it."""
    if "SIGKILL" not in status:
        return ""
    return (" There are some potential root causes. (1) The process is killed by SIGKILL by "
            "OOM killer due to high memory usage. (2) It was killed with kill -9 (or ray.kill "
            "of the actor it ran). (3) Its node's job was ended.")


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_all(children):
    """Every worker and its group, then whatever else was adopted here (a daemon that
    left its group), each reaped so that none is left a zombie."""
    for pid in list(children):
        _signal(pid, signal.SIGKILL)
        _kill_group(pid)
    _reap_until(lambda: not children, children, 5.0)
    # (killing an adopted daemon orphans its own children, adopted here in turn: again
    # until none is left)
    deadline = time.monotonic() + 3.0
    while _own_children() and time.monotonic() < deadline:
        for pid in _own_children():
            _signal(pid, signal.SIGKILL)
        _reap_until(lambda: not _own_children(), children, 0.2)


def _reap_until(done, children, limit_s):
    """Reaps (without blocking, so that the limit holds) until done() or limit_s."""
    deadline = time.monotonic() + limit_s
    while not done() and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            children.pop(pid, None)
        else:
            time.sleep(0.002)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))

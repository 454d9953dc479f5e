"""A task worker's loop: pop a task, run it, report, repeat.

    shared task queue ──pop (futex sleep when empty)──► TaskSpec
        ──► executor.run ──► returns sealed in the store (getters wake)
        ──► TASK_DONE (with ref events) ──► inbox ──► scheduler frees the resources

The popped item stays recorded in this worker's consumer slot of the queue until
``done``; if the process dies meanwhile, the scheduler recovers it from there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

from mpiray import _ids
from mpiray.core import protocol as P
from mpiray.core import accelerators, executor
from mpiray.core import runtime_env
from mpiray.core.native import QueueClosed
from mpiray.core.task_spec import TaskSpec
from mpiray.core.worker_main import go_idle, name_output
from mpiray.core import timeline
from mpiray.exceptions import RaySystemError, RuntimeEnvSetupError, TaskCancelledError

IDLE_FLUSH_S = 0.5
# After finishing work a worker polls its queue this long before it sleeps: the next task
# usually follows within tens of microseconds, and a futex sleep + wake costs ~50 us or
# more on a quiet VM. The poll runs in C, marked as a spinner, so a push meanwhile wakes
# no sleeping worker (no syscall, and no second worker spinning up for nothing). Bounded,
# so an idle worker still sleeps (no busy core).
SPIN_S = 200e-6


RESIGNAL_S = 0.002


def _bookkeeping_code():
    from mpiray.core import refcount
    from mpiray.core.channel import WorkerChannel
    from mpiray.core.runtime import Runtime

    return frozenset(f.__code__ for f in (WorkerChannel.flush, refcount.add_local,
                                          refcount.remove_local, P.encode_item, Runtime.write,
                                          executor.write_returns))


_BOOKKEEPING = _bookkeeping_code()


def _in_bookkeeping(frame) -> bool:
    """A cancel's signal interrupted code that must not stop half-way (an outbox flush,
    a ref count change, an object half written), or a finalizer (__del__), where the
    interpreter would report the exception and drop it: the cancel would be lost."""
    while frame is not None:
        code = frame.f_code
        if code in _BOOKKEEPING or code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _signal_self(signum):
    try:
        os.kill(os.getpid(), signum)
    except OSError:
        pass


def spin_pop(queue, consumer, spin_s=SPIN_S):
    """pop, polling for up to spin_s seconds first; None if nothing came."""
    return queue.pop(spin_s, consumer, spin_s)


class TaskWorker:
    def __init__(self, runtime, queue, slot):
        self.rt = runtime
        self.queue = queue
        self.slot = slot
        self.current = None
        self.interrupted = None  # the running task a cancel interrupted (a force one still ends it)
        self.pinning = accelerators.Pinning()
        self.now = timeline.clock()
        self.calls = {}          # function id -> tasks run (for max_calls)
        self.exit_after = False  # a function's max_calls was reached: exit after the task
        self.lending = {}        # task id -> its threads waiting in get() now
        self.lending_lock = threading.Lock()
        self.child_cancels = None   # a recursive cancel's events, sent again in order
        self.named = None           # the task name printed lines start with
        runtime.blocked_hook = self._lend_cpu
        runtime.running_task = self._running_task

    def serve(self):
        signal.signal(signal.SIGUSR1, self._on_cancel_signal)
        signal.signal(signal.SIGUSR2, self._on_cancel_signal)
        ch = self.rt.channel
        while True:
            try:
                item = spin_pop(self.queue, self.slot)
                if item is None:
                    ch.flush()
                    go_idle()
                    item = self.queue.pop(IDLE_FLUSH_S, self.slot)
            except QueueClosed:
                break
            if item is None:
                continue
            if item == P.TERMINATE:  # retired: the node has more workers than it needs
                self.queue.done(self.slot)
                break
            data = P.decode_item(item, self.rt.store)
            self.execute(TaskSpec.from_bytes(data))
            self.queue.done(self.slot)
            P.release_item(item, self.rt.store)
            if self.exit_after:  # the node starts a fresh worker in its place
                break
        ch.flush()

    def execute(self, spec):
        start, began = self.now(), time.time()
        try:
            self.current = spec
            self.rt.children = []
            # A cancel marks the store, then signals every task worker: a signal that came
            # before the line above found no task to stop, so the mark is what tells.
            if self.rt.store.contains(_ids.object_id(spec.task_id, _ids.CANCEL_INDEX)):
                self.current = None   # (a later signal of this cancel must not fire again)
                raise TaskCancelledError(spec.task_id.hex())
            self.pinning.pin(spec.devices)
            if spec.name != self.named:
                self.named = spec.name
                name_output(spec.name)
            if spec.runtime_env is None:
                sealed, retry = self._run(spec)
            else:
                sealed, retry = self._run_in_env(spec)
        except (TaskCancelledError, KeyboardInterrupt):  # the cancel came outside the user's function
            self.current = None  # every cancel signals every task worker: no second raise
            sealed, retry = executor._write_error(self.rt, spec, TaskCancelledError(spec.task_id.hex())), False
        except (RuntimeEnvSetupError, RaySystemError) as exc:   # (its env, or its function)
            sealed, retry = executor._write_error(self.rt, spec, exc), False
        finally:
            self.current = self.interrupted = None
            self.rt.children = None
            self.rt.inherited_env = None
        if start:
            self.rt.channel.timings.entries.append((spec.name, start, self.now(), spec.task_id))
        if self.child_cancels:
            # (the first copy may have overtaken a child's submit, still in the outbox
            # then; this one follows it: a child already ended ignores it)
            self.rt.channel.send(self.child_cancels, flush=False)
            self.child_cancels = None
        self._report(spec, sealed, retry, began)
        if spec.max_calls:
            count = self.calls[spec.function_id] = self.calls.get(spec.function_id, 0) + 1
            self.exit_after = count >= spec.max_calls

    def _run(self, spec):
        try:
            fn = self.rt.load_function(spec.function_id)
        except RuntimeError as exc:   # (a module it needs is missing here: the task's error)
            return executor._write_error(self.rt, spec, executor.wrap(exc.with_traceback(None), spec.name)), False
        return executor.run(self.rt, spec, fn)

    def _run_in_env(self, spec):
        """The task inside its runtime_env (core/runtime_env.py), which its children inherit."""
        with runtime_env.applied(spec.runtime_env):
            self.rt.inherited_env = spec.runtime_env
            try:
                return self._run(spec)
            finally:
                # the task is over: a cancel's signal from here on finds no task, so it
                # cannot cut the putting back of the environment short (a leak into
                # every later task of this worker)
                self.rt.inherited_env = None
                self.current = None

    def _running_task(self):
        spec = self.current   # (read once: the task may end meanwhile)
        return spec.task_id.hex() if spec is not None else None

    def _report(self, spec, sealed, retry, began):
        self.rt.channel.send([(P.TASK_DONE, spec.task_id, self.slot, sealed, [], retry,
                               executor.task_failed, began)])

    def _on_cancel_signal(self, signum, frame):
        spec = self.current
        if spec is None:
            spec = self.interrupted   # (interrupted once, it caught that: only force now)
            if spec is None or signum != signal.SIGUSR2:
                return
        store = self.rt.store
        mark = store.get(_ids.object_id(spec.task_id, _ids.CANCEL_INDEX), 0)
        if mark is None:
            return   # (another task's cancel: every task worker is signalled)
        recursive = bytes(mark) == _ids.CANCEL_RECURSIVE
        del mark   # (its pin: the traceback raised below keeps this frame)
        force = signum == signal.SIGUSR2 and store.contains(
            _ids.object_id(spec.task_id, _ids.FORCE_CANCEL_INDEX))
        if not force and spec is self.interrupted:
            return   # (another task's cancel, or this one's again: interrupted once is all)
        if not force and _in_bookkeeping(frame):
            # Raising here would lose events half-way out of the outbox, or a ref count
            # changed without its event: the signal comes again in a moment instead.
            threading.Timer(RESIGNAL_S, _signal_self, (signum,)).start()
            return
        if recursive and self.rt.children:
            self._cancel_children(force)
        if force:
            os.kill(os.getpid(), signal.SIGKILL)  # the scheduler sees the death
        self.current, self.interrupted = None, spec
        raise KeyboardInterrupt   # as Ray's cancel: user code's `except Exception` lets it by

    def _cancel_children(self, force):
        """Ray's recursive cancel: what the cancelled task submitted is cancelled too (and
        so on down, each by its own worker). Pushed straight onto the inbox: this runs in a
        signal handler, which may have interrupted a flush holding the channel's lock."""
        ch = self.rt.channel
        events = [(P.CANCEL, tid, force, True, True) for tid in self.rt.children]
        self.child_cancels = events
        ch.inbox.push(P.encode_item(P.dumps(events), ch.inbox.max_payload, self.rt.store,
                                    _ids.new_item_id))

    @contextlib.contextmanager
    def _lend_cpu(self):
        """While this task waits in get(), its CPU goes back to the scheduler: from any of
        its threads (a task that gets its children from a thread pool must not hold every
        CPU they need), lent once by the first thread to wait and taken back by the last.
        The counts and the messages go together under one lock, so the scheduler sees
        them in the threads' order."""
        spec = self.current
        if spec is None:
            yield
            return
        tid = spec.task_id
        with self.lending_lock:
            waiting = self.lending.get(tid, 0)
            self.lending[tid] = waiting + 1
            if not waiting:
                self.rt.channel.send([(P.BLOCKED, tid)])
        try:
            yield
        finally:
            with self.lending_lock:
                waiting = self.lending.pop(tid) - 1
                if waiting:
                    self.lending[tid] = waiting
                else:
                    self.rt.channel.send([(P.UNBLOCKED, tid)])

"""One process's side of the runtime: put, get, wait and submitting work.

    put(value) ──serialize──► store ──► ObjectRef (counted) ──► channel: SEALED if it holds refs
    f.remote() ──TaskSpec──► channel ──► scheduler ──► task queue ──► a worker
    actor.m.remote() ──TaskSpec──► the actor's own queue (no scheduler on the way)
    get(refs) ──► store.get (futex wait, zero copy) ──► deserialize ──► value or raise

The driver and every worker hold one ``Runtime``; only the channel differs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time

import cloudpickle

from mpiray import _ids, _options
from mpiray.core.native import QueueClosed
from mpiray.core.deferred_calls import DeferredCalls
from mpiray.core import actor_spec as A
from mpiray.core import context, labels, placement, refcount
from mpiray.core import protocol as P
from mpiray.core import runtime_env
from mpiray.core.task_spec import ACTOR_CALL, TaskSpec
from mpiray.exceptions import (ActorDiedError, ActorUnavailableError, GetTimeoutError,
                               ObjectStoreFullError, RayError, RaySystemError, RayTaskError)
from mpiray.core.spill_target import SpillTarget
from mpiray.generators import StreamEnd
from mpiray.object_ref import ObjectRef
from mpiray.serialization import (deserialize, is_error, raise_reworded, raise_unpicklable,
                                  reworded, serialize, serialize_error, unpicklable)

ARGS_INLINE_LIMIT = 64 * 1024   # bigger arguments travel as one stored object
BIG_OBJECT = 1 << 20
# Ray's global GC: when a big write leaves the store this full, or had to spill others to
# fit, every process of the node is asked to run gc.collect() (objects held only by
# reference cycles are freed). A process asks at most once per GC_ASK_INTERVAL_S; the node
# collects at most once per GC_MIN_INTERVAL_S, and a request that comes sooner waits for
# it (Scheduler.want_gc), as Ray's delays one.
GC_PRESSURE = 0.8
GC_ASK_INTERVAL_S = 1.0
GC_MIN_INTERVAL_S = 5.0
WAIT_SLICE_S = 0.5   # a blocked get wakes this often to let signal handlers run
WATCH_SLICE_S = 0.01  # a get of many first wakes this often to look for an error among the others
# A store full of pinned objects often frees soon (objects being sent to another node,
# a reader about to drop its view): a put or a return waits this long for room, looking
# again with a growing pause, before it goes to disk (_write_on_disk), as Ray's plasma
# queues a create that finds no room before its fallback allocation.
FALLBACK_AFTER_S = 2.0
_NO_ROOM = object()


def _pending_ids(ids, ready):
    """The ids (bytes each) of packed ids whose ready flag is not set."""
    size = _ids.OBJECT_ID_SIZE
    return [ids[i * size : (i + 1) * size] for i, r in enumerate(ready) if not r]


class Runtime:
    def __init__(self, session, store, channel, queue_factory, is_driver):
        self.session = session
        self.store = store
        self.channel = channel
        self.queue_factory = queue_factory   # actor_id -> attached actor Queue (or None)
        self.is_driver = is_driver
        self.functions = {}                  # function id -> loaded function/class
        self.actor_queues = {}
        self.children = None   # task workers: the running task's submitted tasks (to cancel)
        self.call_children = None  # actors: call's task id (hex) -> what it submitted
        self.on_call_child = None  # actors: called when a call submits its first work
        self.blocked_hook = None             # workers: lend the CPU back while blocked
        self.loop_thread = None              # an async actor's event loop thread (its id)
        self.running_task = None             # task workers: () -> the running task's hex id
        self.fetch_remote = False            # MPI mode: ask the node to pull missing objects
        self.pump = None                     # driver: its node's InboxPump (drained while waiting)
        self.inherited_env = None            # the running task's or actor's runtime_env: its
                                             # children's start from it (core/runtime_env.py)
        self.deferred = DeferredCalls(self)  # actor calls waiting for their arguments
        self.gc_asked = -GC_ASK_INTERVAL_S   # when this process last asked for a global GC
        self.spills_seen = 0                 # the store's spill count when it last looked

    # ------------------------------------------------------------ objects
    def put(self, value) -> ObjectRef:
        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ObjectRef is not allowed (put its value, "
                            "or pass the ref inside a container)")
        oid = _ids.new_put_id()
        try:
            sobj = serialize(value)
        except Exception as exc:  # noqa: BLE001
            raise_unpicklable(f"the put value {value!r}", value, exc)
        if sobj.contained:
            _refuse_unknown(sobj.contained, "put inside a value")
        self.write(oid, sobj)
        ref = ObjectRef(oid)
        if sobj.contained:
            self.channel.send([(P.SEALED, oid, sobj.contained)])
        return ref

    def write(self, oid, sobj):
        if sobj.contained:
            # The refs inside go out first: once the value is in the store anyone may read
            # it and drop the refs they made of it; this process's holds on them (a put
            # just made, say) must reach the scheduler before those drops can.
            self.channel.flush()
        try:
            if not sobj.buffers:
                data = sobj.to_bytes()
                if self._when_room(lambda: self.store.put(oid, data, True)) is _NO_ROOM:
                    self._write_on_disk(oid, len(data), sobj.write_to, "no room")
                if len(data) >= BIG_OBJECT:
                    self._ask_gc_if_full()
                return
            if sobj.total_size >= BIG_OBJECT:
                self.channel.apply_refs()  # memory of dropped refs comes back before we allocate
            buf = self._when_room(lambda: self.store.create_object(oid, sobj.total_size, True))
        except ValueError as exc:   # (bigger than the whole store: full for it, for ever)
            self._write_on_disk(oid, sobj.total_size, sobj.write_to, str(exc))
            return
        if buf is _NO_ROOM:
            self._write_on_disk(oid, sobj.total_size, sobj.write_to, "no room")
            self._ask_gc_if_full()
            return
        try:
            sobj.write_to(buf)
        except BaseException:
            del buf
            self.store.abort(oid)
            raise
        del buf
        self.store.seal(oid)
        if sobj.total_size >= BIG_OBJECT:
            self._ask_gc_if_full()

    def _ask_gc_if_full(self):
        now = time.monotonic()
        if now < self.gc_asked + GC_ASK_INTERVAL_S:
            return
        stats = self.store.stats()
        spilled, self.spills_seen = stats["spill_count"] > self.spills_seen, stats["spill_count"]
        if spilled or stats["used"] >= GC_PRESSURE * stats["capacity"]:
            self.gc_asked = now
            self.channel.send([(P.GLOBAL_GC,)])

    def _when_room(self, make):
        """make(), again while the store is full, for up to FALLBACK_AFTER_S; _NO_ROOM
        if it still is (what fills it is pinned)."""
        deadline, pause = None, 0.001
        while True:
            try:
                return make()
            except ObjectStoreFullError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + FALLBACK_AFTER_S
                    self._ask_gc_if_full()   # (refs only garbage holds pin objects too)
                if now >= deadline:
                    return _NO_ROOM
                self.channel.apply_refs()
                time.sleep(pause)
                pause = min(2 * pause, 0.1)

    def _write_on_disk(self, oid, nbytes, write_to, why):
        """Ray's fallback allocation: an object the store cannot hold, even by spilling
        others, is written into its spill file, which the store lists as spilled (a get
        maps it, or restores it when there is room). ObjectStoreFullError if the disk
        cannot take it either."""
        if not nbytes:
            raise ObjectStoreFullError(f"object {oid.hex()}: {why}")
        try:
            target = SpillTarget(self.store.spill_path(oid), nbytes)
        except OSError as exc:
            raise ObjectStoreFullError(
                f"object {oid.hex()} of {nbytes} bytes does not fit in the object store ({why}), "
                f"and its file in the spill directory could not be made: {exc}") from None
        try:
            write_to(target.view)
        except BaseException:
            target.discard()
            raise
        err = target.publish(self.store, oid)
        if err is not None:
            raise ObjectStoreFullError(f"object {oid.hex()} could not be stored, in memory or on "
                                       f"disk: {err}") from None

    def write_error(self, oid, exc):
        try:
            self.store.put(oid, serialize_error(exc).to_bytes())
        except Exception:
            pass  # already there (a racing writer sealed it first)

    def get(self, oids, timeout=None):
        """Values of oids in order; raises the first error object met. As Ray's, a get of
        many fails as soon as any of them is an error, whatever it still waits for."""
        errors = self.store.error_seq()   # (before the first look: no error sealed between is missed)
        bufs = [self.store.get(oid, 0) for oid in oids]
        missing = [i for i, b in enumerate(bufs) if b is None]
        if missing:
            _refuse_unknown([oids[i] for i in missing], "given to ray.get()")
            for i, buf in enumerate(bufs):   # as Ray: an error here already is raised at once
                if buf is not None and is_error(buf):
                    self._value(buf, oids[i])
            if self.loop_thread is not None and self.loop_thread == threading.get_ident():
                _warn_blocking_get()
            self._pull([oids[i] for i in missing])
            deadline = None if timeout is None else time.monotonic() + timeout
            watch = None
            if len(missing) > 1:
                def watch():   # between slices of a wait: an error sealed among the others?
                    nonlocal errors
                    now = self.store.error_seq()
                    if now != errors:
                        errors = now
                        self._raise_first_error(oids, bufs, missing)
            # A worker waits for the last first: tasks end roughly in the order they were
            # submitted, so one sleep covers the batch, where waiting in order would wake
            # it once per object (a nested parent getting its children). The driver waits
            # in order: while a task it waits for runs, it applies that task's end itself
            # (InboxPump.await_return), which keeps the next ones flowing.
            with self._blocked():
                for i in (missing if self.pump is not None else reversed(missing)):
                    if bufs[i] is None:
                        bufs[i] = self.wait_get(oids[i], deadline, watch)
                    if bufs[i] is None:
                        if watch is not None:
                            watch()
                        raise GetTimeoutError(
                            "Get timed out: some object(s) not ready.")
                    if is_error(bufs[i]):
                        self._value(bufs[i], oids[i])
        return [self._value(b, oid) for b, oid in zip(bufs, oids)]

    def _raise_first_error(self, oids, bufs, missing):
        """Takes what has come of the objects still missing; raises the first error."""
        for i in missing:
            if bufs[i] is None:
                bufs[i] = self.store.get(oids[i], 0)
                if bufs[i] is not None and is_error(bufs[i]):
                    self._value(bufs[i], oids[i])

    def get_one(self, oid, timeout=None):
        """get([oid])[0] without the list handling a batch needs (a third of the cost
        of a big get): a sealed local object is read at once."""
        buf = self.store.get(oid, 0)
        if buf is not None:
            return self._value(buf, oid)
        return self.get([oid], timeout)[0]

    def wait_get(self, oid, deadline, watch=None):
        """store.get in slices, so that signals (Ctrl-C, SIGTERM) reach Python while a
        get waits; None if the deadline (monotonic, or None) passes first. watch: called
        between slices (shorter ones, WATCH_SLICE_S), it may raise to end the wait."""
        if self.pump is not None:
            buf = self.pump.await_return(oid)
            if buf is not None:
                return buf
        # A watched wait looks often at first, then less (up to WAIT_SLICE_S): a get
        # blocked for long (a parent waiting for its children's children) costs few
        # wake-ups, and an error among the others is seen within the slice it is in.
        slice_s = WAIT_SLICE_S if watch is None else WATCH_SLICE_S
        while True:
            left = slice_s if deadline is None else min(slice_s, deadline - time.monotonic())
            buf = self.store.get(oid, max(0.0, left))
            if buf is not None or (deadline is not None and time.monotonic() >= deadline):
                return buf
            if watch is not None:
                watch()
                slice_s = min(2 * slice_s, WAIT_SLICE_S)

    def request(self, event: tuple, timeout, who: str):
        """Sends event, plus a reply id, to this node's scheduler and returns what it
        puts under that id (the answer of a table or registry, maybe on another node)."""
        reply = _ids.new_put_id()
        self.channel.send([event + (reply,)])
        buf = self.wait_get(reply, None if timeout is None else time.monotonic() + timeout)
        if buf is None:
            raise TimeoutError(f"no answer from {who} in {timeout} s")
        result = P.loads(buf)
        del buf
        self.store.delete(reply)
        return result

    def _pull(self, oids):
        """MPI mode: objects this process is about to wait for may live on another node;
        its node's scheduler asks for copies (single host: nothing to do)."""
        if self.fetch_remote:
            self.channel.send([(P.FETCH, oids)])

    def _value(self, buf, oid=None):
        try:
            value, is_error = deserialize(buf)
        except Exception as exc:  # noqa: BLE001 - its class's unpickling raised, here
            # (as Ray's get: a RayError naming the failure, not the bare exception)
            raise RaySystemError(f"object {oid.hex() if oid else ''} could not be deserialized: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if is_error:
            if oid is not None and self.pump is not None:
                self.pump.settle(oid)   # (the driver: the failed task's end applies first)
        elif not isinstance(value, RayError):
            # (a stream's end, got through gen.completed(): Ray's value for it is None)
            return None if value.__class__ is StreamEnd else value
        # (as Ray's get: a Ray error is raised even when it was a value returned or put)
        if isinstance(value, RayTaskError):
            raise value.as_instanceof_cause()
        raise value

    def wait(self, ids, num_returns, timeout, users=False, fetch_local=True):
        """ids: packed end to end (mpiray._native.reflist); a bytearray of ready flags.
        users: ids of the user's refs (unknown ones are refused), not the runtime's own.
        fetch_local=False: ready once sealed on any node (MPI), not brought here."""
        store = self.store
        ready = bytearray(len(ids) // _ids.OBJECT_ID_SIZE)
        count = store.wait_ids(ids, num_returns, 0, ready)
        if count >= num_returns or timeout == 0:
            return ready
        if users:
            _refuse_unknown(_pending_ids(ids, ready), "given to ray.wait()")
        if self.fetch_remote:
            if not fetch_local:
                return self._wait_located(ids, num_returns, timeout, ready)
            self._pull(_pending_ids(ids, ready))
        # A task waiting lends its CPU, as in get (Ray's blocked task): the work it
        # waits for may need that CPU to run at all.
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._blocked():
            while count < num_returns:
                left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
                if left <= 0:
                    break
                count = store.wait_ids(ids, num_returns, left, ready)
        return ready

    def _wait_located(self, ids, num_returns, timeout, ready):
        """wait(fetch_local=False) under MPI: the node's scheduler answers which of the
        objects not here are sealed on some node (core/locate.py); none is moved."""
        size = _ids.OBJECT_ID_SIZE
        located = bytearray(len(ready))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._blocked():
            while True:
                pending = [i for i, flag in enumerate(ready) if not flag]
                oids = [ids[i * size:(i + 1) * size] for i in pending]
                reply = _ids.new_put_id()
                self.channel.send([(P.LOCATE, oids, reply)])
                buf = self.wait_get(reply, deadline)
                timed_out = buf is None
                if timed_out:   # (the scheduler forgets the ask)
                    self.channel.send([(P.LOCATE_DROP, reply)])
                else:
                    found = set(P.loads(buf))
                    del buf
                    self.store.delete(reply)
                    for i, oid in zip(pending, oids):
                        if oid in found:
                            located[i] = 1
                count = self.store.wait_ids(ids, num_returns, 0, ready)
                for i, flag in enumerate(located):
                    if flag and not ready[i]:
                        ready[i] = 1
                        count += 1
                if timed_out or count >= num_returns:
                    return ready

    def _blocked(self):
        return self.blocked_hook() if self.blocked_hook else _NoBlock()

    # ------------------------------------------------------------ functions
    def export(self, blob: bytes) -> bytes:
        """Stores a pickled function or class once; its id is its content hash."""
        fid = hashlib.sha1(blob).digest()
        if not self.store.contains(fid):
            try:
                self.store.put(fid, blob)
            except (FileExistsError, KeyError, RuntimeError, ValueError):
                if not self.store.contains(fid):
                    raise
        return fid

    def load_function(self, fid: bytes, actor_class=None):
        """The function (or actor_class's class) stored under fid. One that cannot be
        loaded here (a module it needs is missing) raises RuntimeError, in Ray's words: the
        task's error, or the actor's creation error."""
        fn = self.functions.get(fid)
        if fn is None:
            buf = self.store.get(fid, 30.0)
            if buf is None:
                raise RaySystemError(f"function {fid.hex()} was never exported to this node")
            try:
                fn = cloudpickle.loads(buf)
            except Exception as exc:  # noqa: BLE001 - a module the function needs is missing here
                import traceback

                who = "The remote function" if actor_class is None else \
                    f"The actor with name {actor_class}"
                raise RuntimeError(
                    f"{who} failed to import on the worker. This may be because needed library "
                    f"dependencies are not installed in the worker environment or cannot be "
                    f"found from sys.path {sys.path}:\n\n{traceback.format_exc()}") from None
            self.functions[fid] = fn
        return fn

    # ------------------------------------------------------------ arguments
    def pack_args(self, args, kwargs, what):
        """(args blob, deps, contained, keep-alive refs) for a TaskSpec. what: the task's
        or actor's name, for errors."""
        if not args and not kwargs:
            return _NO_ARGS, [], [], None
        deps = [a._id for a in args if type(a) is ObjectRef]
        deps += [v._id for v in kwargs.values() if type(v) is ObjectRef]
        _refuse_unknown(deps, "passed to .remote()")
        try:
            sobj = serialize((args, kwargs))
        except Exception as exc:  # noqa: BLE001 - a clear error instead of pickle's
            raise_reworded(unpicklable_argument(args, kwargs, what, exc), exc)
        if sobj.contained:   # (refs inside a list or dict too, as Ray's)
            _refuse_unknown(sobj.contained, "passed to .remote() inside an argument")
        if sobj.total_size <= ARGS_INLINE_LIMIT:
            return sobj.to_bytes(), deps, sobj.contained, None
        holder = self.put_serialized(sobj)      # one stored object holds every argument
        return b"", deps + [holder._id], sobj.contained + [holder._id], holder

    def put_serialized(self, sobj):
        oid = _ids.new_put_id()
        self.write(oid, sobj)
        ref = ObjectRef(oid)
        if sobj.contained:
            self.channel.send([(P.SEALED, oid, sobj.contained)])
        return ref

    def unpack_args(self, spec):
        """The call's (args, kwargs), top-level refs replaced by their values.
        Raises _DependencyFailed with the error's bytes if an argument is an error."""
        if spec.args == _NO_ARGS:
            return (), {}
        if spec.args:
            args, kwargs = deserialize(spec.args)[0]
        else:
            buf = self.store.get(spec.deps[-1], 0)
            if buf is None:
                self._pull([spec.deps[-1]])
                buf = self.wait_get(spec.deps[-1], None)
            args, kwargs = deserialize(buf)[0]
        if not spec.deps:
            return args, kwargs
        try:
            args = [self._resolve(a) if type(a) is ObjectRef else a for a in args]
            kwargs = {k: self._resolve(v) if type(v) is ObjectRef else v for k, v in kwargs.items()}
        except DependencyFailed:
            self._touch(spec.deps)
            raise
        return args, kwargs

    def _touch(self, oids):
        """Reads those of oids that are here: a failed argument the call never looked at
        (it failed on an earlier one) counts as read, as in Ray, so no "Unhandled error"
        is told of it."""
        for oid in oids:
            try:
                self.store.get(oid, 0)
            except Exception:  # noqa: BLE001 - (gone meanwhile)
                pass

    def _resolve(self, ref):
        buf = self.store.get(ref._id, 0)
        if buf is None:
            self._pull([ref._id])
            with self._blocked():
                buf = self.wait_get(ref._id, None)
        value, is_error = deserialize(buf)
        if is_error:
            raise DependencyFailed(bytes(buf))
        return value

    # ------------------------------------------------------------ tasks
    def submit_task(self, function_id, name, args, kwargs, opts, what=None, function_name=None) -> list:
        """what: the function as errors name it (module.qualified name), else name;
        function_name: the function's own name, when name is another (name=)."""
        blob, deps, contained, holder = self.pack_args(args, kwargs, what or name)
        n = opts["num_returns"]
        req = opts["resources"]
        if opts["labels"] is not None:
            req = dict(req, **labels.mark(opts["labels"]))
        if not self.is_driver and opts["capturable"]:
            parent = context.resources()
            if len(parent) > 1:   # (a plain parent, {"CPU": 1}, captures nothing)
                req = _options.captured(req, opts["resources"], parent, what or name)
        spec = TaskSpec(
            task_id=_ids.new_id() if n >= 0 else _ids.new_stream_id(), kind=0,
            function_id=function_id, name=name, args=blob,
            deps=deps, contained=contained, num_returns=opts["num_returns"],
            resources=req, max_retries=opts["max_retries"],
            retry_exceptions=opts["retry_exceptions"],
            runtime_env=runtime_env.merge(self.inherited_env, opts["runtime_env"]),
            max_calls=opts["max_calls"], depth=context.task_depth() + 1,
            parent=context.task_id(), function_name=function_name,
        )
        refs = [ObjectRef(oid) for oid in spec.return_ids()]
        self._note_child(spec.task_id)
        self.channel.send([(P.SUBMIT, spec)])
        del holder  # the pending task now holds the stored arguments
        return refs

    def _note_child(self, child_id):
        """What a task or actor call submits is cancelled with it (Ray's recursive
        cancel): the task's list, or the actor call's, by the call's context."""
        children = self.children   # (read once: the task may end meanwhile in another thread)
        if children is not None:
            children.append(child_id)
            return
        calls = self.call_children
        if calls is not None:
            call = context.task_id()
            if call is not None:
                kids = calls.get(call)
                if kids is None:
                    kids = calls[call] = []
                    self.on_call_child(call)
                kids.append(child_id)

    def cancel(self, oid, force, recursive):
        self.channel.send([(P.CANCEL, _ids.task_of(oid), force, recursive, False,
                            _ids.index_of(oid))])

    # ------------------------------------------------------------ actors
    def actor_queue(self, actor_id):
        q = self.actor_queues.get(actor_id)
        if q is None:
            q = self.actor_queues[actor_id] = self.queue_factory(actor_id)
        return q

    def call_actor(self, actor_id, name, method, args, kwargs, num_returns, max_retries=-1,
                   retry_exceptions=False, in_order=True, fails_fast=False):
        """name: the task's name (Class.method); max_retries -1: the actor's max_task_retries;
        in_order: the actor runs this caller's calls in order (not async or threaded);
        fails_fast: made while the actor restarts, the call fails at once (actor_spec)."""
        blob, deps, contained, holder = self.pack_args(args, kwargs, name)
        spec = TaskSpec(
            task_id=_ids.new_call_id(num_returns < 0),
            kind=ACTOR_CALL, function_id=b"", name=name,
            args=blob, deps=deps, contained=contained, num_returns=num_returns,
            actor_id=actor_id, method=method, max_retries=max_retries,
            retry_exceptions=retry_exceptions, depth=context.task_depth() + 1,
            parent=context.task_id(),
        )
        refs = [ObjectRef(oid) for oid in spec.return_ids()]
        self._note_child(spec.task_id)
        # The call holds its arguments until the actor reports it done; register the
        # hold before the call can possibly finish.
        # The caller's hold on the return refs must reach the scheduler before the actor
        # reports them sealed (an unheld result is freed at once), and the actor reports
        # through the same inbox: so the outbox goes out before the call does.
        if contained or not self.is_driver:
            self.channel.send([(P.HOLD, contained)] if contained else [])
        del holder
        if fails_fast and self.store.contains(A.restarting_key(actor_id)):
            self._fail_call_locally(spec, ActorUnavailableError(
                f"The actor is restarting: {name} was not sent (its calls are not retried, "
                "max_task_retries=0).", actor_id=actor_id.hex()))
            return refs
        self.push_actor_call(spec, in_order)
        return refs

    def push_actor_call(self, spec, in_order=True):
        """The call goes to its actor once its arguments are ready and its queue has room
        (core/deferred_calls.py); .remote() never waits for either."""
        if (spec.deps or self.deferred.backlogs) and self.deferred.defer(spec, in_order):
            return
        if not self.push_now(spec, wait=False):
            self.deferred.overflow(spec)

    def push_now(self, spec, wait=True) -> bool:
        """Sends the call on. False only when not `wait`ing and the actor's queue is full."""
        if self.fetch_remote and not self.is_driver:
            # Across nodes a call from a worker goes through its node's scheduler, after
            # the worker's hold on the return refs: the answer may come back through the
            # MPI thread, which does not see this process's inbox events.
            self.channel.send([(P.REMOTE_CALL, spec)])
            return True
        q = self.actor_queue(spec.actor_id)
        if q is None and self.fetch_remote and _ids.node_of(spec.actor_id) != _ids.this_node():
            self.channel.send([(P.REMOTE_CALL, spec)])  # the actor's node takes it from here
            return True
        try:
            if q is None:
                raise QueueClosed("the actor's queue is gone")
            item = P.encode_item(spec.to_bytes(), q.max_payload, self.store, _ids.new_item_id)
            if not q.push(item, None if wait else 0):
                P.release_item(item, self.store)
                return False
        except QueueClosed:
            self._fail_call_locally(spec)
        return True

    def _fail_call_locally(self, spec, exc=None):
        """The actor is dead for good: its death note becomes every return's value (or
        exc's, given)."""
        if exc is not None:
            data = serialize_error(exc).to_bytes()
        else:
            note = self.store.get(A.death_key(spec.actor_id), 5.0)
            data = bytes(note) if note is not None else serialize_error(
                ActorDiedError("The actor is dead.", actor_id=spec.actor_id.hex())).to_bytes()
            del note
        events = []
        for oid in spec.return_ids():
            try:
                self.store.put(oid, data)
            except Exception:
                pass
            events.append((P.SEALED, oid, []))
        if spec.contained:
            events.append((P.UNHOLD, list(spec.contained)))
        self.channel.send(events)


def _warn_blocking_get():
    global _warned_blocking_get
    if not _warned_blocking_get:
        _warned_blocking_get = True
        logging.getLogger("mpiray").warning(
            "Using blocking ray.get inside async actor method. This blocks the event loop. "
            "Please use `await` on object ref with asyncio.gather if you want to yield "
            "execution to the event loop instead.")


_warned_blocking_get = False
_NO_ARGS = serialize(((), {})).to_bytes()   # f.remote(): the commonest call has no arguments


def unpicklable_argument(args, kwargs, what, exc):
    """Ray's error for an argument that does not pickle: which one, and for whom (exc
    itself when it is not an error Ray rewords: unpicklable())."""
    if not reworded(exc):
        return exc
    culprit = None
    for value in list(args) + list(kwargs.values()):
        try:
            serialize(value)
        except Exception:  # noqa: BLE001 - the one that does not pickle
            culprit = value
            break
    if culprit is None:
        culprit = (args, kwargs)
        return unpicklable(f"an argument for a task or actor {what}", culprit, exc)
    return unpicklable(f"the argument {culprit!r} for a task or actor {what}", culprit, exc)


def _refuse_unknown(oids, what):
    """A ref this process holds is counted (core/refcount.py); one that is not was made by
    a runtime that has since been shut down (or names no object: ObjectRef.from_random()).
    Nothing would ever seal it: as Ray, a ValueError at once instead of a wait forever."""
    held = refcount.held
    for oid in oids:
        if not held(oid):
            raise ValueError(
                f"You are trying to access Ray objects whose owner is unknown: "
                f"ObjectRef({oid.hex()}) {what} is a Ray object whose owner is unknown. It was "
                f"made before the last ray.shutdown() (objects do not outlive their runtime), "
                f"or names no object")


class DependencyFailed(Exception):
    """An argument of the task is an error object; its bytes become the task's returns."""

    def __init__(self, error_bytes):
        self.error_bytes = error_bytes


class _NoBlock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["Runtime", "DependencyFailed", "ObjectStoreFullError"]

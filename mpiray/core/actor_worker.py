"""An actor's process: build the instance, then serve its queue until told to stop.

    actor queue ──pop──► call TaskSpec ──► method(*args) ──► returns in the store
         │                    (sync: in this thread; threaded: a pool of max_concurrency;
         │                     async: coroutines on one event loop)
         └─ TERMINATE (no handle left) ──► finish earlier calls ──► ACTOR_EXIT ──► exit

Every in-flight call sits in its own consumer slot of the queue until done, so if this
process dies the scheduler recovers exactly the calls it was running. A call that
ray.cancel marked in the store is skipped if it has not started; on an async actor a
running one is cancelled on the loop (_watch_cancels).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import threading
import time
import traceback
from concurrent.futures import CancelledError, ThreadPoolExecutor

from mpiray import _ids
from mpiray.core import actor_spec as A
from mpiray.core.actor_spec import TERMINATE_METHOD, recorded_slots
from mpiray.core import context, current
from mpiray.core import executor
from mpiray.core import futures
from mpiray.core.executor import ExitActor
from mpiray.core import protocol as P
from mpiray.core import runtime_env
from mpiray.core.native import QueueClosed
from mpiray.core.task_spec import GROUP_SEP, TaskSpec
from mpiray.core import timeline
from mpiray.core.runtime import DependencyFailed
from mpiray.core.worker import spin_pop
from mpiray.core.proctitle import set_title
from mpiray.core.worker_main import exit_code_of, flush_partial_output, name_output, run_exit_handlers
from mpiray.exceptions import ActorDiedError


# How often an async actor looks for cancelled running calls: often while few run (a
# recursive cancel crosses a chain of actors one poll per hop), less with many (each look
# costs one store lookup per running call).
CANCEL_POLL_S = 0.01
CANCEL_POLL_MANY_S = 0.05
CANCEL_POLL_FEW = 8
_CANCEL_SUFFIX = _ids.object_id(b"", _ids.CANCEL_INDEX)   # (task id + this: its cancel mark)
OUTBOX_BATCH = 64
UNPACK_THREADS = 2   # an async actor's threads that read its calls' arguments off its loop


GRACEFUL_SHUTDOWN_S = 30.0   # Ray's actor_graceful_shutdown_timeout_ms default


class ActorWorker:
    def __init__(self, runtime, queue, actor_id, slot):
        self.rt = runtime
        self.queue = queue
        self.actor_id = actor_id
        self.slot = slot
        self.instance = None
        self.repr_name = ""   # its __repr__ when its class has its own (list_actors)
        self.sequential = False   # one call at a time (_serve_sync): idle means no call runs
        self.aspec = None
        self.exiting = False
        self.exit_how = None   # "exit_actor" or "sys.exit": how a method ended the actor
        self.now = timeline.clock()
        self.running_async = {}   # task id -> future of an async call running on the loop
        self.call_tasks = {}      # task id -> its asyncio.Task, once the call has started
        self.cancels_sent = set() # task ids of running async calls cancelled already
        self.group_limits = {}    # async actor: concurrency group -> asyncio.Semaphore
        self.methods = {}         # TaskSpec.method -> (bound method, group): looked up once
        self.kinds = {}           # TaskSpec.method -> "sync" / "coro" / "agen" (async actors)
        self.watching = False     # async actor: _watch_cancels is running
        self.loop = None          # async actor: its event loop (_event_loop)
        self.group_loops = {}     # async actor: concurrency group -> its own event loop
        self.unpacker = None      # async actor: the pool its calls' arguments are read in
        self.shutdown_lock = threading.Lock()   # __ray_shutdown__ runs once (_shutdown_hook)
        self.shutdown_done = False
        runtime.call_children, runtime.on_call_child = {}, self._call_has_children
        self.child_watches = {}   # call's task id (hex) -> the watch of its cancel mark
        self.children_cancelled = set()   # calls whose children went with their cancel
        # (its watch, the call's end and an async call's cancel may each be first to act)
        self.children_lock = threading.Lock()

    # ------------------------------------------------------------ start
    def serve(self):
        buf = self.rt.store.get(A.spec_key(self.actor_id), 30.0)
        self.aspec = P.loads(buf)
        del buf
        context.process().update(actor_id=self.actor_id.hex(), resources=dict(self.aspec.resources),
                                 actor_name=self.aspec.name, actor_class=self.aspec.class_name,
                                 actor_methods=dict(self.aspec.methods),
                                 actor_in_order=A.runs_in_order(self.aspec),
                                 actor_is_async=self.aspec.is_async)
        # (set before __init__ runs: it, or a task it starts, may call exit_actor)
        context.process()["exit_requested"] = self._exit_requested
        if not self._construct():
            return
        self._idle_title()
        self.rt.channel.send([(P.ACTOR_READY, self.actor_id, self.slot, self.repr_name)])
        concurrency = max(1, self.aspec.max_concurrency)
        if self.aspec.is_async:
            self._serve_async(concurrency)
        elif concurrency > 1 or self.aspec.concurrency_groups:
            self._serve_threaded(concurrency)
        else:
            self._serve_sync()
        if self.queue.closed and not self.exiting:
            # Its queue was closed under it: ray.kill (or the node stopping), whose
            # SIGKILL is on its way. As Ray's kill, the actor's exit handlers do not run.
            self.rt.channel.flush()
            os._exit(0)
        self._shutdown_hook()
        self._send_exit()

    def _construct(self):
        spec = self.aspec.creation
        context.set_task(spec.task_id.hex(), spec.name, depth=spec.depth)
        context.set_fallback_task(spec.task_id.hex(), spec.name, spec.depth)
        set_title(f"{self.aspec.class_name}.__init__")
        loading = False
        try:
            # the actor's whole process runs in its runtime_env, its class loaded in it too
            runtime_env.apply_process(spec.runtime_env)
            executor.default_omp_threads(self.aspec.resources)
            self.rt.inherited_env = spec.runtime_env
            loading = True
            cls = self.rt.load_function(spec.function_id, self.aspec.class_name)
            loading = False
            args, kwargs = self.rt.unpack_args(spec)
            self.instance = cls.__new__(cls)
            try:   # (a constructor's error names the instance too, as Ray's)
                context.process()["actor_repr"] = object.__repr__(self.instance)
            except Exception:  # noqa: BLE001
                pass
            if self.aspec.is_async:   # as Ray's: on the loop its methods run on (so that
                self._on_loop(self.instance.__init__, args, kwargs)   # it may start tasks)
            else:
                self.instance.__init__(*args, **kwargs)
            try:
                context.process()["actor_repr"] = repr(self.instance)   # (in its errors' text)
                if type(self.instance).__repr__ is not object.__repr__:   # Ray's log prefix
                    name_output(context.process()["actor_repr"])
                    self.repr_name = context.process()["actor_repr"]   # (list_actors')
            except Exception:  # noqa: BLE001 - a broken __repr__ keeps the class name
                pass
            return True
        except BaseException as exc:  # noqa: BLE001 - the cause goes to every caller
            if loading:   # (its class could not be loaded: no frames of ours in its text)
                exc = exc.with_traceback(None)
            if isinstance(exc, DependencyFailed):   # (an argument's error, as a task's)
                err = executor.dependency_error(f"{self.aspec.class_name}.__init__", exc)
            else:
                err = executor.wrap(exc, f"{self.aspec.class_name}.__init__")
            # (by value: the node may not import the error's class, a local one say)
            self.rt.channel.send([(P.ACTOR_FAILED, self.actor_id, executor.error_blob(err))])
            # as Ray's worker logs it: the driver sees it whether or not a call reads it
            print("Exception raised in creation task: The actor died because of an error "
                  f"raised in its creation task, {err}", file=sys.stderr, flush=True)
            return False
        finally:
            context.set_task(None, None)

    def _shutdown_hook(self):
        """Ray's __ray_shutdown__(): the instance's clean-up, run when the actor ends
        gracefully (no handle left, __ray_terminate__, exit_actor), never on ray.kill
        or a crash. Its failure is printed; the actor ends either way, within Ray's
        actor_graceful_shutdown_timeout_ms (30 s): a hook still running then is cut
        short, the process ending as an intended exit."""
        hook = getattr(self.instance, "__ray_shutdown__", None)
        if hook is None:
            return
        # Once: an async actor's exit_actor() ends it from the loop's thread while its main
        # thread leaves its loop too; the later caller waits for the first one's run.
        with self.shutdown_lock:
            if self.shutdown_done:
                return
            limit = current.info().get("actor_graceful_shutdown_s", GRACEFUL_SHUTDOWN_S)
            watchdog = threading.Timer(limit, self._cut_shutdown_short, args=(limit,))
            watchdog.daemon = True
            watchdog.start()
            try:
                self._run_shutdown_hook(hook)
            finally:
                self.shutdown_done = True
                watchdog.cancel()

    def _cut_shutdown_short(self, limit):
        print(f"(mpiray) warning: {self.aspec.class_name}.__ray_shutdown__ did not end within "
              f"{limit:g} s (actor_graceful_shutdown_timeout_ms): the actor is ended",
              file=sys.stderr, flush=True)
        self._send_exit()
        self.rt.channel.flush()
        os._exit(0)

    def _run_shutdown_hook(self, hook):
        try:
            result = hook()
            if inspect.iscoroutine(result):   # (in a thread: this may be the loop's own)
                worker = threading.Thread(target=asyncio.run, args=(result,))
                worker.start()
                worker.join()
        except BaseException:  # noqa: BLE001 - reported, as Ray logs it
            traceback.print_exc()

    # ------------------------------------------------------------ one call
    def _next(self, consumer, block=True):
        item = spin_pop(self.queue, consumer)
        if item is None:
            self.rt.channel.flush()  # idle: report finished calls now
            if self.sequential:   # (a threaded or async actor's calls may be mid-print)
                flush_partial_output()
                self._idle_title()
            while item is None:
                item = self.queue.pop(0.5, consumer)
                if item is None:
                    self.rt.channel.flush()
        return item

    def _idle_title(self):
        """As Ray's: `ray::<Class>` while no call runs (`ray::<Class>.<method>` while one
        does: executor.run), which tools read to tell whether a call is still running."""
        set_title(self.aspec.class_name)

    def _resolve_retries(self, spec):
        """A call's retries: its own (method option), else the actor's max_task_retries."""
        if spec.max_retries < 0:
            spec.max_retries = self.aspec.max_task_retries

    def _next_attempt(self, spec):
        """A retry on an exception, here: the attempt is noted in the store too, so that
        a crash later counts it (Ray counts both kinds against max_task_retries)."""
        spec.attempt += 1
        A.note_attempt(self.rt.store, spec.task_id, spec.attempt)

    def _terminate_call(self, spec, item, consumer) -> bool:
        """actor.__ray_terminate__.remote(): as Ray's, the actor ends once the calls
        before it are done (the loop stops taking calls); its own return is the actor's
        death (a get of it raises ActorDiedError, as exit_actor's call does in Ray)."""
        if spec.method != TERMINATE_METHOD:
            return False
        died = ActorDiedError("The actor exited: __ray_terminate__ was called.",
                              actor_id=self.actor_id.hex())
        self._report(spec, executor._write_error(self.rt, spec, died), item, consumer, 0)
        return True

    def _cancelled(self, spec) -> bool:
        """The call was cancelled before it started (ray.cancel marks it in the store):
        its returns say so, and it does not run."""
        if not self.rt.store.contains(spec.task_id + _CANCEL_SUFFIX):
            return False
        executor._write_error(self.rt, spec, executor.call_cancelled(spec.task_id, spec.name))
        return True

    def _method_and_group(self, spec):
        """(bound method, concurrency group or None: the default one) of a call; a call
        may name its own group (ActorMethod.options: "method:group")."""
        found = self.methods.get(spec.method)
        if found is None:
            found = self.methods[spec.method] = self._look_up(spec)
        return found

    def _look_up(self, spec):
        name, _, group = spec.method.partition(GROUP_SEP)
        if name == "__ray_ready__":
            return (lambda: True), None
        if name == "__ray_call__":
            return (lambda fn, *args, **kwargs: fn(self.instance, *args, **kwargs)), None
        if not group:
            group = self.aspec.method_groups.get(name)
        elif group not in self.aspec.concurrency_groups:
            raise ValueError(f"{spec.name} asks for concurrency group {group!r}, which "
                             f"{self.aspec.class_name} does not have")
        return _bound_method(self.instance, name), group

    def _refuse(self, spec, exc):
        """The call cannot run (cancelled before it started, or a bad group): its
        returns get the error. Returns what _report needs."""
        executor._write_error(self.rt, spec, exc)
        return [(oid, []) for oid in spec.return_ids()]

    def _run_call(self, item, consumer, spec=None):
        """Runs one call synchronously; returns False when the actor must stop."""
        if item == P.TERMINATE:
            return False
        if spec is None:
            spec = TaskSpec.from_bytes(P.decode_item(item, self.rt.store))
        if self._terminate_call(spec, item, consumer):
            return False
        if self._cancelled(spec):
            self._report(spec, [(oid, []) for oid in spec.return_ids()], item, consumer, 0)
            return True
        try:
            method = self._method_and_group(spec)[0]
        except ValueError as exc:
            self._report(spec, self._refuse(spec, exc), item, consumer, 0)
            return True
        start = self.now()
        self._resolve_retries(spec)
        try:
            while True:  # an exception retry_exceptions allows runs the call again, here
                sealed, retry = executor.run(self.rt, spec, method)
                if not retry:
                    break
                if self._cancelled(spec):  # (a cancelled call is not retried)
                    sealed = [(oid, []) for oid in spec.return_ids()]
                    break
                self._next_attempt(spec)
        except (ExitActor, SystemExit) as exc:
            sealed = self._exit_call(spec, exc)
        self._report(spec, sealed, item, consumer, start)
        return not self.exiting

    def _send_exit(self):
        """Tells the node this actor ends by itself (how: for its death cause and
        list_workers' exit detail)."""
        self.rt.channel.send([(P.ACTOR_EXIT, self.actor_id, self.slot, self.exit_how)])

    def _exit_call(self, spec, exc):
        """exit_actor(), or sys.exit() / sys.exit(0) in a method: the actor's intended
        end (no restart, as in Ray) once this call is answered. sys.exit(n) with n != 0
        is a failure: the process ends with that code, and restarts count it."""
        if isinstance(exc, SystemExit) and exc.code not in (None, 0):
            code = exit_code_of(exc)
            self.rt.channel.flush()   # (the calls it finished: their holds go)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)   # (from any thread: an async actor's loop, a group's pool)
        how = "exit_actor() was called" if isinstance(exc, ExitActor) else \
            "sys.exit() was called. Worker exits with an exit code 0"   # (Ray's words)
        self.exit_how = "exit_actor" if isinstance(exc, ExitActor) else "sys.exit"
        self.exiting = True
        return executor._write_error(self.rt, spec, ActorDiedError(
            f"The actor exited: {how}. Worker exit type: INTENDED_USER_EXIT",
            actor_id=self.actor_id.hex()))

    def _report(self, spec, sealed, item, consumer, start):
        # Completions go out in batches (when idle, or every OUTBOX_BATCH events): the
        # caller waits on the store, not on the scheduler, so only frees are delayed.
        ch = self.rt.channel
        if start:
            ch.timings.entries.append((spec.name, start, self.now(), spec.task_id))
        # (a call holding arguments reports at once: were this process killed with the
        # report still here, their holds, which only the report releases, would leak)
        ch.send([(P.ACTOR_DONE, sealed, spec.contained, spec.task_id,
                  executor.task_failed and spec.depth <= 1)],
                flush=self.exiting or bool(spec.contained) or len(ch.outbox) >= OUTBOX_BATCH)
        if spec.attempt:   # (a retried call's note of its attempts: done with)
            A.taken_attempt(self.rt.store, spec.task_id, 0)
        if self.rt.call_children or self.child_watches:
            call = spec.task_id.hex()
            watch = self.child_watches.pop(call, None)
            if watch is not None:
                futures.waiter_of(self.rt).drop(watch)
            self._cancel_children_once(spec.task_id)   # (marked before its watch fired)
            self.rt.call_children.pop(call, None)
            self.children_cancelled.discard(call)
        self.queue.done(consumer)
        P.release_item(item, self.rt.store)

    # ------------------------------------------------------------ loops
    def _serve_sync(self):
        self.sequential = context.process()["actor_sequential"] = True
        try:
            while self._run_call(self._next(0), 0):
                pass
        except QueueClosed:
            pass

    def _serve_threaded(self, concurrency):
        """A pool of max_concurrency threads, and one per concurrency group (Ray's: a
        group's calls run on its own threads, so a busy group never blocks another)."""
        groups = self.aspec.concurrency_groups
        slots = _SlotPool(recorded_slots(self.aspec))
        stop = threading.Event()
        # (every thread started now, as Ray's pools are: the actor's threads never grow)
        pools = {None: _started_pool(concurrency, "actor-call")}
        pools.update((g, _started_pool(n, f"actor-call-{g}")) for g, n in groups.items())

        running = _Running()

        def call(item, consumer, spec):
            if stop.is_set():
                return   # (taken before exit_actor(): left held, its caller gets the death)
            running.enter()
            try:
                if not self._run_call(item, consumer, spec):
                    # exit_actor(): as Ray's, the calls already running on other threads
                    # finish and answer first; then, as the main thread may wait for a
                    # call that never comes, the process ends here
                    stop.set()
                    running.wait_for_others()
                    self._shutdown_hook()
                    self._send_exit()
                    self.rt.channel.flush()
                    run_exit_handlers()
                    os._exit(0)
            finally:
                if running.leave() == 0:
                    self._idle_title()
                slots.put(consumer)

        try:
            while not stop.is_set():
                consumer = slots.take()
                try:
                    item = self._next(consumer)
                except QueueClosed:
                    break
                if item == P.TERMINATE:
                    self.queue.done(consumer)
                    break
                spec = TaskSpec.from_bytes(P.decode_item(item, self.rt.store))
                if self._terminate_call(spec, item, consumer):
                    slots.put(consumer)
                    break
                group = spec.method.partition(GROUP_SEP)[2] or self.aspec.method_groups.get(
                    spec.method)
                pools.get(group, pools[None]).submit(call, item, consumer, spec)
        finally:
            for pool in pools.values():
                pool.shutdown(wait=True)
        self.rt.channel.flush()

    def _call_has_children(self, call):
        """Ray's recursive cancel of an actor call: once a call has submitted work, its
        cancel mark is watched (futures.Waiter: at once, not polled); a recursive one
        cancels what the call submitted, each child the same way down the tree."""
        if call in self.children_cancelled:
            return   # (what a cancelled call submits after its cancel, as its clean-up, runs)
        task_id = bytes.fromhex(call)
        mark = _ids.object_id(task_id, _ids.CANCEL_INDEX)

        def marked(oid):
            if oid is not None:
                self._cancel_children_once(task_id)

        self.child_watches[call] = futures.waiter_of(self.rt).watch(
            [mark], marked, lends=False, pull=False)   # (the mark is this node's to make)

    def _cancel_children_once(self, task_id):
        """If the call is marked cancelled: what it submitted so far goes with it (a
        recursive cancel), once, whoever sees the mark first. What it submits after (its
        clean-up, in an async call's `except CancelledError`) runs: an async call is
        interrupted only after this (_watch_cancels)."""
        call = task_id.hex()
        with self.children_lock:
            if call in self.children_cancelled:
                return
            mark = self.rt.store.get(_ids.object_id(task_id, _ids.CANCEL_INDEX), 0)
            if mark is None:
                return
            self.children_cancelled.add(call)
            recursive = bytes(mark) == _ids.CANCEL_RECURSIVE
            del mark
            kids = self.rt.call_children.pop(call, None)
        if recursive and kids:
            if not self.rt.fetch_remote:
                self._premark_calls(kids)
            self.rt.channel.send([(P.CANCEL, kid, False, True, True) for kid in kids])

    def _premark_calls(self, kids):
        """The cancel marks of the actor calls among kids, put here at once: the actors
        running them (on this node) see them now, not after the scheduler has read our
        CANCEL (a hop per level of a chain of calls, which a result racing up the chain
        may beat). The scheduler does the rest as before (and drops a mark it finds on
        a call that had ended)."""
        store = self.rt.store
        for kid in kids:
            if _ids.is_actor_call(kid) and not store.contains(_ids.object_id(kid, 1)):
                try:
                    store.put(_ids.object_id(kid, _ids.CANCEL_INDEX), _ids.CANCEL_RECURSIVE)
                except Exception:  # noqa: BLE001 - marked already
                    pass

    def _exit_requested(self):
        """exit_actor(): the actor ends once the calls already taken are done, as in Ray,
        whether its ExitActor reaches us (_exit_call) or not: caught by the method, or
        raised in a task or thread of the actor's own, whose exception nobody would see."""
        if self.aspec.is_async:
            try:
                task = asyncio.current_task()
            except RuntimeError:
                task = None
            in_call = task is not None and any(t is task for t in list(self.call_tasks.values()))
        else:
            in_call = context.task_id() is not None   # (a call's own thread)
        woken, self.exiting = in_call or self.exiting, True
        if not woken:   # (outside any call: the loop taking calls may be asleep)
            try:
                self.queue.push(P.TERMINATE, 5.0)
            except QueueClosed:
                pass

    def _event_loop(self):
        """The async actor's event loop, running in a thread of its own (made once)."""
        if self.loop is None:
            self.loop, thread = _running_loop("actor-loop")
            self.rt.loop_thread = thread.ident   # (a blocking get there warns, as Ray's)
        return self.loop

    def _on_loop(self, fn, args, kwargs):
        """fn(*args, **kwargs) run on the actor's loop (a coroutine around a plain call);
        what it raises is raised here."""
        async def call():
            try:
                return fn(*args, **kwargs), None
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                return None, exc

        result, exc = asyncio.run_coroutine_threadsafe(call(), self._event_loop()).result()
        if exc is not None:
            raise exc
        return result

    def _loop_of(self, spec):
        """As Ray's: each concurrency group has an event loop (and thread) of its own, so
        a call blocking one group's loop does not stop another's; the default group runs
        on the actor's own loop, where __init__ ran."""
        try:
            group = self._method_and_group(spec)[1]
        except ValueError:
            group = None   # (refused on the actor's loop)
        if group is None:
            return self._event_loop()
        loop = self.group_loops.get(group)
        if loop is None:
            loop = self.group_loops[group] = _running_loop(f"actor-loop-{group}")[0]
        return loop

    def _serve_async(self, concurrency):
        loop = self._event_loop()
        # (every loop and thread made now, as Ray's: the actor's threads never grow)
        for group in self.aspec.concurrency_groups:
            if group not in self.group_loops:
                self.group_loops[group] = _running_loop(f"actor-loop-{group}")[0]
        self.unpacker = _started_pool(UNPACK_THREADS, "actor-args")
        slots = _SlotPool(recorded_slots(self.aspec))
        while True:
            consumer = slots.take()
            try:
                item = self._next(consumer)
            except QueueClosed:
                break
            if item == P.TERMINATE:
                self.queue.done(consumer)
                slots.put(consumer)   # (drained below: every slot must come back)
                break
            spec = TaskSpec.from_bytes(P.decode_item(item, self.rt.store))
            if self._terminate_call(spec, item, consumer):
                slots.put(consumer)
                break
            if self._cancelled(spec):
                self._report(spec, [(oid, []) for oid in spec.return_ids()], item, consumer, 0)
                slots.put(consumer)
                continue
            # (no groups: straight to the call, one coroutine less per call)
            if self.aspec.concurrency_groups:
                fut = asyncio.run_coroutine_threadsafe(self._run_async(spec), self._loop_of(spec))
            else:
                fut = asyncio.run_coroutine_threadsafe(self._run_plain(spec), loop)
            self.running_async[spec.task_id] = fut
            if not self.watching:  # (after the call is in running_async: see _watch_cancels)
                self.watching = True
                asyncio.run_coroutine_threadsafe(self._watch_cancels(), loop)
            fut.add_done_callback(lambda f, s=spec, i=item, c=consumer, t=self.now():
                                  self._async_done(f, s, i, c, slots, t))
            if self.exiting:
                break
        slots.drain()
        for running in [loop, *self.group_loops.values()]:
            running.call_soon_threadsafe(running.stop)
        self.rt.channel.flush()

    async def _run_async(self, spec):
        """A call of an async actor with concurrency groups: within its group's limit."""
        try:
            method, group = self._method_and_group(spec)
        except ValueError as exc:
            return self._refuse(spec, exc)
        async with self._group_limit(group):
            return await self._run_async_call(spec, method)

    def _run_plain(self, spec):
        """A call of an async actor without groups: its method's coroutine itself."""
        try:
            method = self._method_and_group(spec)[0]
        except ValueError as exc:   # (a call naming a group this actor lacks)
            return self._refused(spec, exc)
        return self._run_async_call(spec, method)

    async def _refused(self, spec, exc):
        return self._refuse(spec, exc)

    def _group_limit(self, group):
        """The semaphore of a concurrency group (the default one's: max_concurrency)."""
        groups = self.aspec.concurrency_groups
        sem = self.group_limits.get(group)
        if sem is None:
            n = groups[group] if group is not None else max(1, self.aspec.max_concurrency)
            sem = self.group_limits[group] = asyncio.Semaphore(n)
        return sem

    async def _run_async_call(self, spec, method):
        self.call_tasks[spec.task_id] = asyncio.current_task()   # (_watch_cancels)
        kind = self.kinds.get(spec.method)
        if kind is None:   # (inspect's checks are slow: once per method)
            kind = self.kinds[spec.method] = (
                "agen" if inspect.isasyncgenfunction(method) else
                "coro" if inspect.iscoroutinefunction(method) else "sync")
        is_agen = kind == "agen"
        self._resolve_retries(spec)
        if kind == "sync":
            while True:
                try:
                    sealed, retry = executor.run(self.rt, spec, method)
                except (ExitActor, SystemExit) as exc:   # (out of here it would stop the loop)
                    return self._exit_call(spec, exc)
                if not retry:
                    return sealed
                if self._cancelled(spec):
                    return [(oid, []) for oid in spec.return_ids()]
                self._next_attempt(spec)
        context.set_task(spec.task_id.hex(), spec.name, fn=method, depth=spec.depth)
        while True:
            try:
                try:
                    args, kwargs = await asyncio.get_running_loop().run_in_executor(
                        self.unpacker, self.rt.unpack_args, spec)
                except DependencyFailed as failed:
                    return executor.write_dependency_error(self.rt, spec, failed)
                if is_agen:
                    sealed, retry = await executor.write_async_stream(
                        self.rt, spec, method(*args, **kwargs))
                    if not retry:
                        return sealed
                    if self._cancelled(spec):
                        return [(oid, []) for oid in spec.return_ids()]
                    self._next_attempt(spec)   # (again from its start: the items made are
                    continue                   # skipped, as Ray's retried generator's)
                result = await method(*args, **kwargs)
                executor.exit_caught(spec)
                if executor.cancelled_meanwhile(self.rt, spec):   # (it caught CancelledError)
                    return executor._write_error(self.rt, spec, executor.task_cancelled_while_running(
                        spec.task_id, spec.name))
            except asyncio.CancelledError:   # (a running async call: Ray's RayTaskError too)
                return executor._write_error(self.rt, spec, executor.task_cancelled_while_running(
                    spec.task_id, spec.name))
            except (ExitActor, SystemExit) as exc:
                return self._exit_call(spec, exc)
            except BaseException as exc:  # noqa: BLE001 - (any, as Ray: the caller gets it)
                if executor.should_retry(self.rt, spec, exc):
                    if self._cancelled(spec):
                        return [(oid, []) for oid in spec.return_ids()]
                    self._next_attempt(spec)
                    continue
                return executor._write_error(self.rt, spec, executor.wrap(exc, spec.name))
            return executor.write_returns(self.rt, spec, result)

    async def _watch_cancels(self):
        """Cancels the running calls that ray.cancel marked (asyncio's cancellation: the
        call sees CancelledError at its next await), as Ray does for async actors. It
        runs while calls do (an idle actor does not wake up): it says it stops, then
        looks once more, so a call the main thread added meanwhile is not missed."""
        store = self.rt.store
        while True:
            await asyncio.sleep(CANCEL_POLL_S if len(self.running_async) <= CANCEL_POLL_FEW
                                else CANCEL_POLL_MANY_S)
            if not self.running_async:
                self.watching = False
                if not self.running_async:
                    return
                self.watching = True
            for task_id, fut in list(self.running_async.items()):
                if task_id in self.cancels_sent:
                    continue
                if store.contains(_ids.object_id(task_id, _ids.CANCEL_INDEX)):
                    self.cancels_sent.add(task_id)
                    if self.rt.call_children:   # (first: its clean-up's calls must run)
                        self._cancel_children_once(task_id)
                    task = self.call_tasks.get(task_id)
                    if task is None:
                        fut.cancel()   # (not started: it never runs)
                    else:
                        # The call's own task, on its loop (a group's may be another):
                        # its answer is what the call ends with, after its clean-up, as
                        # in Ray (the future itself would be answered at once).
                        task.get_loop().call_soon_threadsafe(task.cancel)

    def _async_done(self, fut, spec, item, consumer, slots, start):
        self.running_async.pop(spec.task_id, None)
        self.call_tasks.pop(spec.task_id, None)
        self.cancels_sent.discard(spec.task_id)
        try:
            sealed = fut.result()
        except (asyncio.CancelledError, CancelledError):
            sealed = executor._write_error(self.rt, spec, executor.call_cancelled(spec.task_id, spec.name))
        except BaseException as exc:  # noqa: BLE001
            sealed = executor._write_error(self.rt, spec, executor.wrap(exc, spec.name))
        self._report(spec, sealed, item, consumer, start)
        slots.put(consumer)
        if self.exiting:
            self._shutdown_hook()
            self._send_exit()
            self.rt.channel.flush()
            run_exit_handlers()
            os._exit(0)


def _bound_method(instance, name):
    """The class's method `name` bound to instance, as Ray calls it: an attribute of the
    instance with that name (`self.ready = False` beside `def ready(self)`) does not
    hide it. What the class lacks is looked up on the instance (__getattr__)."""
    found = inspect.getattr_static(type(instance), name, None)   # (the raw descriptor:
    if found is None or not hasattr(found, "__get__"):          # staticmethod stays one)
        return getattr(instance, name)
    return found.__get__(instance, type(instance))


def _started_pool(n, name):
    """A pool of n threads, all of them started (a ThreadPoolExecutor starts its threads
    one per call that finds none idle, so its count would creep up under load)."""
    pool = ThreadPoolExecutor(n, thread_name_prefix=name)
    started = threading.Barrier(n + 1)
    for _ in range(n):
        pool.submit(started.wait)
    started.wait()
    return pool


def _running_loop(name):
    """A new event loop running in a daemon thread of its own: (loop, thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name=name)
    thread.start()
    return loop, thread


class _Running:
    """The calls running on a threaded actor's threads, so that an exit_actor() waits for
    the others (each call that exits counts as done waiting)."""

    def __init__(self):
        self.count = self.exiting = 0
        self.cond = threading.Condition()

    def enter(self):
        with self.cond:
            self.count += 1

    def leave(self) -> int:
        """How many calls still run."""
        with self.cond:
            self.count -= 1
            self.cond.notify_all()
            return self.count

    def wait_for_others(self):
        with self.cond:
            self.exiting += 1
            self.cond.notify_all()
            while self.count > self.exiting:
                self.cond.wait()


class _SlotPool:
    """Free consumer slots; taking one blocks while all are busy (max_concurrency)."""

    def __init__(self, n):
        self.n = n
        self.free = list(range(n - 1, -1, -1))
        self.cond = threading.Condition()

    def take(self):
        with self.cond:
            while not self.free:
                self.cond.wait()
            return self.free.pop()

    def put(self, slot):
        with self.cond:
            self.free.append(slot)
            self.cond.notify()

    def drain(self):
        with self.cond:
            while len(self.free) < self.n:
                self.cond.wait()

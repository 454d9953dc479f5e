"""Running one TaskSpec in a worker: arguments in, returns (or the error) out.

    spec ──unpack_args (zero-copy gets)──► fn(*args) ──serialize──► store (returns)
                    │ argument is an error                    │ raised
                    ▼                                         ▼
           same error bytes ──► returns          RayTaskError ──► returns
                                        (or a retry, when retry_exceptions allows)

A generator task (num_returns "streaming"/"dynamic") writes each value it yields as an
item the moment it is yielded, then its end object: the refs of all of them
(mpiray/generators.py).
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
import types

from mpiray import _ids
from mpiray.core import blas_threads, context, placement
from mpiray.core import protocol as P
from mpiray.core.proctitle import set_title
from mpiray.core.runtime import DependencyFailed
from mpiray.core.task_spec import STREAMING
from mpiray._native.store import ObjectExistsError
from mpiray.exceptions import AsyncioActorExit, ObjectStoreFullError, RayTaskError, TaskCancelledError
from mpiray.object_ref import ObjectRef
from mpiray.serialization import deserialize, serialize, serialize_error
from mpiray.util.network import get_node_ip_address


_NONE = serialize(None).to_bytes()
# (type checks, not inspect's: these run for every task and actor call)
_COROUTINE = types.CoroutineType
_GENERATORS = frozenset((types.GeneratorType, types.AsyncGeneratorType))


class ExitActor(BaseException):
    """Raised by mpiray.actor.exit_actor(): ends the actor after this call (the actor is
    marked to exit first, so one the method catches still ends it once the call returns)."""


class SyncActorExit(ExitActor, SystemExit):
    """exit_actor() in a sync or threaded actor: a SystemExit, as Ray's."""


class AsyncActorExit(ExitActor, AsyncioActorExit):
    """exit_actor() in an async actor: Ray's AsyncioActorExit (a SystemExit would stop
    the actor's event loop)."""


# Whether the task run() ran last ended in an error (its returns, or a stream's item, say
# so): False, or the error's text (failure_text). Its worker reports it (ray.util.state
# lists it FAILED, with the text). One task runs at a time in a task worker.
task_failed = False


def run(runtime, spec, fn):
    """Executes fn for spec and writes its returns. Returns (sealed, retry):
    sealed = [(oid, contained oids)], retry = True when the scheduler should re-run it."""
    global task_failed
    task_failed = False
    set_title(spec.name)
    # Actor calls see the GPUs of their process; a task sees the ones it was given.
    if spec.actor_id:   # (a sequential actor's threads see its running call, as Ray's)
        context.set_task(spec.task_id.hex(), spec.name, fn=fn, depth=spec.depth,
                         process_wide=context.process().get("actor_sequential", False))
    else:
        context.set_task(spec.task_id.hex(), spec.name, spec.devices, spec.resources, fn,
                         spec.depth, process_wide=True)
        default_omp_threads(spec.resources)
    try:
        try:
            args, kwargs = runtime.unpack_args(spec)
        except DependencyFailed as failed:
            return write_dependency_error(runtime, spec, failed), False
        except Exception as exc:  # noqa: BLE001 - an argument that cannot be loaded here
            # (its unpickling raised, or a spilled one finds no room to come back): the
            # call fails, not its worker or actor, and is not run again
            return _write_error(runtime, spec, wrap(exc, spec.name)), False
        if spec.deps and not spec.actor_id and runtime.store.contains(
                _ids.object_id(spec.task_id, _ids.CANCEL_INDEX)):
            # Cancelled while its arguments came (from another node, say: seconds): it
            # does not start (the cancel's signal waits while mpiray's own code runs).
            return _write_error(runtime, spec, TaskCancelledError(spec.task_id.hex())), False
        try:
            result = fn(*args, **kwargs)
            if type(result) is _COROUTINE:  # an `async def` task: on a loop of its own
                result = run_on_own_loop(result)
        except BaseException as exc:  # noqa: BLE001 - every failure goes home
            if isinstance(exc, KeyboardInterrupt):
                exc = as_cancel(exc, spec)
            elif isinstance(exc, (SystemExit, ExitActor)):
                raise
            if should_retry(runtime, spec, exc):
                task_failed = failure_text(wrap(exc, spec.name))   # (this attempt's, listed)
                return [], True
            return _write_error(runtime, spec, wrap(exc, spec.name)), False
        if spec.actor_id:
            exit_caught(spec)
        if spec.num_returns < 0:
            return write_stream(runtime, spec, result)
        if spec.actor_id and cancelled_meanwhile(runtime, spec):
            return _write_error(runtime, spec, call_cancelled(spec.task_id, spec.name)), False
        return write_returns(runtime, spec, result), False
    finally:
        context.set_task(None, None)


def exit_caught(spec):
    """The call ran exit_actor() and caught its ExitActor: it ends as exit_actor's call
    does (ActorDiedError, as Ray's), whatever it returned."""
    proc = context.process()
    if proc.get("exit_call") is not None and proc.get("exit_call") == spec.task_id.hex():
        raise ExitActor()


def cancelled_meanwhile(runtime, spec) -> bool:
    """An actor call cancelled while it ran (it is not interrupted, but may have seen
    is_canceled()) ends cancelled, as in Ray, whatever it returned."""
    return runtime.store.contains(_ids.object_id(spec.task_id, _ids.CANCEL_INDEX))


def call_cancelled(task_id, name=None):
    """A cancelled actor call's error: a plain TaskCancelledError, as Ray's (queued,
    running or waiting for an argument), which `except RayTaskError` does not take for
    the method's own failure. name: the method's, where known (unused: Ray's error names
    the task by id)."""
    return TaskCancelledError(task_id.hex())


def task_cancelled_while_running(task_id, name):
    """A running task interrupted by its cancel: TaskCancelledError as a RayTaskError
    (get raises an instance of both), as Ray's."""
    return RayTaskError(name, f"TaskCancelledError: Task {task_id.hex()} was cancelled",
                        TaskCancelledError(task_id.hex()), pid=os.getpid(), ip=get_node_ip_address())


def as_cancel(exc, spec):
    """A cancel raises KeyboardInterrupt in the task, as Ray's does (so that `except
    Exception` in user code does not swallow it), and so may the user's own code: either
    way the call ends cancelled, and is not retried."""
    cancelled = TaskCancelledError(spec.task_id.hex())
    cancelled.__cause__ = exc
    return cancelled.with_traceback(exc.__traceback__)


def should_retry(runtime, spec, exc):
    """retry_exceptions allows exc another attempt; never for a cancelled task (its code
    may turn the cancel's KeyboardInterrupt into an error of its own, as Ray's)."""
    if spec.attempt >= spec.max_retries or isinstance(exc, TaskCancelledError):
        return False
    if not spec.actor_id and runtime.store.contains(_ids.object_id(spec.task_id, _ids.CANCEL_INDEX)):
        return False   # (an actor's call, never interrupted, ends cancelled where it retries)
    rx = spec.retry_exceptions
    if rx is True:
        return isinstance(exc, Exception)
    if isinstance(rx, (list, tuple)):
        return isinstance(exc, tuple(rx))
    return False


def wrap(exc, name):
    """The task's error as a RayTaskError: the user's frames (mpiray's own are left out,
    as Ray leaves its out), and for an error a nested get raised, this task's frames
    above the inner task's whole error text, which keeps the original cause."""
    proc = context.process()
    actor = dict(actor_repr=proc.get("actor_repr"), actor_id=proc.get("actor_id"))
    if actor["actor_id"] is not None and not isinstance(actor["actor_id"], str):
        actor["actor_id"] = actor["actor_id"].hex()
    if isinstance(exc, RayTaskError):
        frames = _user_frames(traceback.TracebackException(type(exc), exc, exc.__traceback__))
        tb = "".join(frames.format()) + f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
        cause = exc.cause if exc.cause is not None else exc
        return RayTaskError(name, tb, cause, pid=os.getpid(), ip=get_node_ip_address(), **actor)
    tb = "".join(_without_own_frames(traceback.TracebackException(
        type(exc), exc, exc.__traceback__)).format())
    return RayTaskError(name, tb, exc, pid=os.getpid(), ip=get_node_ip_address(), **actor)


_OWN_CODE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep   # mpiray/


def _user_frames(te):
    """te's frames outside mpiray's own code (all of them if none is outside)."""
    user = [f for f in te.stack if not f.filename.startswith(_OWN_CODE)]
    return traceback.StackSummary.from_list(user) if user else te.stack


def _without_own_frames(te, seen=None):
    """te with mpiray's frames dropped from it and from its chained exceptions."""
    seen = set() if seen is None else seen
    if te is None or id(te) in seen:
        return te
    seen.add(id(te))
    te.stack = _user_frames(te)
    _without_own_frames(te.__cause__, seen)
    _without_own_frames(te.__context__, seen)
    return te


def write_returns(runtime, spec, result):
    oids = spec.return_ids()
    if type(result) in _GENERATORS:
        # a generator function with num_returns=n: n values; one that raises part-way
        # keeps what it yielded, the rest of the returns hold the error (as Ray's)
        values = []
        # (one value past num_returns is enough to know it yields too many: as Ray's,
        # the generator is not run further, so an endless one ends too)
        most = max(spec.num_returns, 1) + 1
        try:
            if inspect.isgenerator(result):
                for value in result:
                    values.append(value)
                    if len(values) >= most:
                        break
            else:
                values = run_on_own_loop(_collect(result, values, most))
        except Exception as exc:  # noqa: BLE001 - raised inside the generator
            if len(values) == spec.num_returns:   # every return has its value: only told
                print(str(wrap(exc, spec.name)), file=sys.stderr)
            elif values and len(values) < spec.num_returns:
                sealed = _write_values(runtime, spec, oids, values)
                return _write_instead(runtime, spec, sealed, exc)   # (the rest: the error)
            else:
                return _write_error(runtime, spec, wrap(exc, spec.name))
        if spec.num_returns >= 1 and len(values) > spec.num_returns:
            # every return has its value: the error is only told (as Ray's, which keeps
            # the first num_returns values)
            values = values[:spec.num_returns]
            print(f"Unhandled error: Task threw exception, but all {spec.num_returns} return "
                  f"values already created. This should only occur when using generator "
                  f"tasks.\n{wrap(ValueError(f'Task returned more than num_returns={spec.num_returns} objects.'), spec.name)}",
                  file=sys.stderr)
        if values and 1 < spec.num_returns and len(values) < spec.num_returns:
            # too few: what it yielded stays readable, the rest hold the error (as Ray's)
            sealed = _write_values(runtime, spec, oids, values)
            return _write_instead(runtime, spec, sealed, ValueError(
                f"Task returned {len(values)} objects, but num_returns={spec.num_returns}."))
        result = values
        if spec.num_returns == 1:
            if not result:
                return _write_error(runtime, spec, wrap(ValueError(
                    f"{spec.name} declared num_returns=1 but yielded no values"), spec.name))
            result = result[0]
    if spec.num_returns == 0:
        return []
    if spec.num_returns == 1 or spec.num_returns < 0:  # (< 0: a stream's end)
        values = [result]
    else:
        try:
            values = list(result) if result is not None else []
        except TypeError:  # not iterable: a task error, not a dead worker
            values = [result]
        if len(values) != spec.num_returns:
            err = wrap(ValueError(
                f"{spec.name} declared num_returns={spec.num_returns} but returned "
                f"{len(values)} values"), spec.name)
            return _write_error(runtime, spec, err)
    return _write_values(runtime, spec, oids, values)


def _write_values(runtime, spec, oids, values):
    """values under the first len(values) of oids; [(oid, [])] of those sealed."""
    sealed = []
    for oid, value in zip(oids, values):
        if value is None:  # (the commonest return: one ready-made object)
            try:
                runtime.store.put(oid, _NONE)
            except ObjectExistsError:
                pass   # answered already (see below)
            sealed.append((oid, []))
            continue
        try:
            sobj = serialize(value)
        except Exception as exc:  # noqa: BLE001 - an unpicklable value fails the task, not the worker
            return _write_unserializable(runtime, spec, exc, sealed)
        try:
            runtime.write(oid, sobj)
        except ObjectExistsError:
            # An actor call's return the node answered already (a cancel that came while
            # the call ran: actor_manager.cancel_call). The answer stands.
            sealed.append((oid, []))
            continue
        except (ObjectStoreFullError, ValueError) as exc:   # (ValueError: past its capacity)
            # the task or call fails, not its worker (or actor), and is not run again
            return _write_instead(runtime, spec, sealed, ObjectStoreFullError(
                f"the return value of {spec.name} ({sobj.total_size} bytes) does not fit in "
                f"the object store: {exc}"))
        if sobj.contained:
            # Told now, while `result` still holds those refs: once it is dropped, this
            # process's DECREFs follow, and the return's hold must already be counted.
            runtime.channel.send([(P.SEALED, oid, sobj.contained)], flush=False)
        sealed.append((oid, []))
    return sealed


async def _collect(agen, values, most):
    async for value in agen:
        values.append(value)
        if len(values) >= most:
            break
    return values



def _write_unserializable(runtime, spec, exc, sealed):
    return _write_instead(runtime, spec, sealed, TypeError(
        f"the return value of {spec.name} could not be serialized: {exc}"))


def failure_text(err) -> str:
    """What list_tasks shows of the error a task ended with (Ray's error_message)."""
    text = str(err) or type(err).__name__
    return text if len(text) <= 4000 else f"{text[:2000]}\n...\n{text[-2000:]}"


def _write_instead(runtime, spec, sealed, exc):
    """The returns not written yet become the error exc (those written stay)."""
    global task_failed
    err = wrap(exc, spec.name)
    task_failed = failure_text(err)
    data = error_blob(err)
    done = {oid for oid, _ in sealed}
    for oid in spec.return_ids():
        if oid not in done:
            try:
                runtime.store.put(oid, data)
            except Exception:  # noqa: BLE001 - even this small error finds no room: the
                continue       # return stays unwritten (its task is reported done anyway)
            sealed.append((oid, []))
    return sealed


_OMP = "OMP_NUM_THREADS"
_omp_ours = None   # the value this process set (None: none, or the user's own is there)


def default_omp_threads(resources) -> None:
    """Ray's default for what the task or actor runs: OMP_NUM_THREADS is the CPUs it holds
    (a bundle's too; at least 1) unless the user set it (the job's environment or a
    runtime_env), so that libraries that size their thread pools by it, and the BLAS
    numpy loaded already (core/blas_threads.py), do not oversubscribe the node."""
    global _omp_ours
    current = os.environ.get(_OMP)
    if current is not None and current != _omp_ours:
        return
    n = max(int(placement.cpus_of(resources)) if resources else 0, 1)
    want = str(n)
    if current != want:
        os.environ[_OMP] = _omp_ours = want
        blas_threads.set_threads(n)


def run_on_own_loop(coroutine):
    """An `async def` task's coroutine run to its end on a loop of its own. asyncio is
    imported here, not with this module: a worker that never runs async code does
    without it, and the zygote does not hold init() up importing it (core/zygote.py)."""
    import asyncio

    return asyncio.run(coroutine)


def write_stream(runtime, spec, gen):
    """Writes every value the generator yields as the stream's next item, then the end
    (the items' refs). Returns (sealed, retry) as run() does. A retried attempt skips
    the items an earlier one made (the generator is taken to yield the same values)."""
    if inspect.isasyncgen(gen):  # an `async def` generator task: on a loop of its own
        return run_on_own_loop(write_async_stream(runtime, spec, gen))
    if not inspect.isgenerator(gen):
        err = wrap(ValueError(f"Functions with @ray.remote(num_returns=\"streaming\" or "
                              f"\"dynamic\") must return a generator; {spec.name} returned a "
                              f"{type(gen).__name__}"), spec.name)
        return _write_error(runtime, spec, err), False
    stream = _Stream(runtime, spec)
    try:
        for value in gen:
            stream.add(value)
    except _StreamBroken:
        gen.close()
    except BaseException as exc:  # noqa: BLE001 - the error is the stream's next item
        if isinstance(exc, KeyboardInterrupt):
            exc = as_cancel(exc, spec)
        elif isinstance(exc, (SystemExit, ExitActor)):
            raise
        if should_retry(runtime, spec, exc):
            return [], True
        if _is_cancel(exc):   # (the end is the error: completed() raises it, as Ray's)
            return _write_error(runtime, spec, _stream_error(exc, spec)), False
        stream.add_error(_stream_error(exc, spec))
    return stream.end(), False


def _is_cancel(exc) -> bool:
    import asyncio

    return isinstance(exc, (TaskCancelledError, asyncio.CancelledError))


def _stream_error(exc, spec):
    """A cancel ends a stream with TaskCancelledError: for a task or an async method
    interrupted, as a RayTaskError (an instance of both, as a cancelled running task's
    error is; Ray's tests catch RayTaskError), for a sync method (which only stops
    between items) a plain one (Ray's); anything else is the generator's error."""
    import asyncio

    if _is_cancel(exc):   # (an async method's CancelledError: it was running, as a task)
        running = not spec.actor_id or isinstance(exc, asyncio.CancelledError)
        return (task_cancelled_while_running if running else call_cancelled)(spec.task_id, spec.name)
    return wrap(exc, spec.name)


async def write_async_stream(runtime, spec, agen):
    """write_stream for an async generator (an async actor's method): items as they
    come. Returns (sealed, retry), as write_stream."""
    stream = _Stream(runtime, spec)
    try:
        async for value in agen:
            stream.add(value)
    except _StreamBroken:
        await agen.aclose()
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            exc = as_cancel(exc, spec)
        elif isinstance(exc, (SystemExit, ExitActor)):
            raise
        elif isinstance(exc, TaskCancelledError):   # (its mark, seen between items)
            await _throw_cancel(agen)
        if should_retry(runtime, spec, exc):
            return [], True
        if _is_cancel(exc):
            return _write_error(runtime, spec, _stream_error(exc, spec)), False
        stream.add_error(_stream_error(exc, spec))
    return stream.end(), False


async def _throw_cancel(agen):
    """A cancelled async generator sees CancelledError where it stands, as a cancelled
    asyncio task would (not GeneratorExit when it is collected), so its clean-up runs."""
    import asyncio

    try:
        await agen.athrow(asyncio.CancelledError())
    except BaseException:  # noqa: BLE001 - its CancelledError, its end, or its clean-up's error
        pass


class _Stream:
    """The items of one generator task as they are written."""

    def __init__(self, runtime, spec):
        self.rt, self.spec = runtime, spec
        self.refs = []
        # Across nodes the node pushes each item to the caller's node when it hears of
        # it, so it must hear at once; on one host the caller reads the store directly.
        self.flush = runtime.fetch_remote
        # a task is stopped by a signal; an actor's generator method looks for the mark
        # between items (a running actor call is not interrupted, but its stream ends)
        self.check_cancel = bool(spec.actor_id)
        self.cancel_mark = _ids.object_id(spec.task_id, _ids.CANCEL_INDEX)

    def _next_id(self):
        return _ids.object_id(self.spec.task_id, len(self.refs) + 1)

    def add(self, value):
        if self.check_cancel and self.rt.store.contains(self.cancel_mark):
            raise TaskCancelledError(self.spec.task_id.hex())  # (an actor's: no signal)
        oid = self._next_id()
        if not self.rt.store.contains(oid):  # (else made by an attempt before this one)
            try:
                sobj = serialize(value)
            except Exception as exc:  # noqa: BLE001
                self.add_error(wrap(TypeError(
                    f"a value yielded by {self.spec.name} could not be serialized: {exc}"), self.spec.name))
                raise _StreamBroken() from None
            self.rt.write(oid, sobj)
            self.rt.channel.send([(P.SEALED, oid, sobj.contained)], flush=self.flush)
        self.refs.append(ObjectRef(oid, _counted=False))

    def add_error(self, err):
        global task_failed
        task_failed = failure_text(err)
        oid = self._next_id()
        if not self.rt.store.contains(oid):
            self.rt.write_error(oid, err)
            self.rt.channel.send([(P.SEALED, oid, [])], flush=self.flush)
        self.refs.append(ObjectRef(oid, _counted=False))

    def end(self):
        from mpiray.generators import DynamicObjectRefGenerator, StreamEnd

        kind = StreamEnd if self.spec.num_returns == STREAMING else DynamicObjectRefGenerator
        return write_returns(self.rt, self.spec, kind(self.refs))


class _StreamBroken(Exception):
    """A yielded value could not be stored: its error is already the last item."""


def write_dependency_error(runtime, spec, failed):
    """An argument is an error: the task's returns say so without running it, wrapped
    as Ray's is (this task's name, "At least one of the input arguments ... could not be
    computed", then the argument's whole error): a RayTaskError of the same cause class,
    or of the argument's own error (cancelled, crashed, lost, an actor's death)."""
    return _write_error(runtime, spec, dependency_error(spec.name, failed))


def dependency_error(name, failed) -> RayTaskError:
    """The error of the task or constructor name whose argument failed (see above)."""
    value, _ = deserialize(failed.error_bytes)
    upstream = f"{type(value).__module__}.{type(value).__qualname__}: {value}"
    cause = value.cause if isinstance(value, RayTaskError) and value.cause is not None else value
    return RayTaskError(
        name, "  At least one of the input arguments for this task could not be computed:\n"
        + upstream, cause, pid=os.getpid(), ip=get_node_ip_address())


def error_blob(err) -> bytes:
    """err as bytes any process can load (deserialize), whatever its cause holds."""
    return serialize_error(err).to_bytes()


def _write_error(runtime, spec, err):
    global task_failed
    task_failed = failure_text(err)
    return _write_bytes(runtime, spec, error_blob(err))


def _write_bytes(runtime, spec, data):
    sealed = []
    for oid in spec.return_ids():
        try:
            runtime.store.put(oid, data)
        except Exception:  # noqa: BLE001 - already sealed by a racing cancel
            pass
        sealed.append((oid, []))
    return sealed

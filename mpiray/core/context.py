"""What the current caller is running: task id, name, actor, devices. Kept in context
variables, so each thread (a threaded actor's calls) and each asyncio task (an async
actor's calls, interleaved on one loop) sees its own."""

import contextvars
import inspect
import types

_NO_TASK = (None, None, None, 0)
_task = contextvars.ContextVar("mpiray_task", default=_NO_TASK)
# A task worker runs one task at a time: threads the task starts (whose context is new)
# see it too, as in Ray (their submissions are its children, their task id its own).
_plain_task = _NO_TASK
_plain_held = (None, None)   # (devices, resources) of that task, for those threads too
# What those threads see between tasks: nothing in a task worker; in an actor, its
# creation task (as Ray's threaded and async actors give it to threads the user starts).
_fallback = _NO_TASK
_devices = contextvars.ContextVar("mpiray_devices", default=None)
_resources = contextvars.ContextVar("mpiray_resources", default=None)
_process = {"actor_id": None, "node_id": "", "worker_id": "", "reconstructed": False}


def set_task(task_id=None, name=None, devices=None, resources=None, fn=None, depth=0,
             process_wide=False):
    """fn: the function or method the task runs (for get_task_function_name); depth: the
    task's (what it submits is one deeper); process_wide: a task worker's task, which
    the threads it starts see too."""
    global _plain_task, _plain_held
    _task.set((task_id, name, fn, depth))
    if process_wide or task_id is None:
        _plain_task = (task_id, name, fn, depth) if process_wide else _fallback
        _plain_held = (devices, resources) if process_wide else (None, None)
    # (set only when they change: most tasks of a worker have the same ones, and a
    # ContextVar.set allocates)
    if devices is not None and _devices.get() != devices:
        _devices.set(devices)
    if resources is not None and _resources.get() != resources:
        _resources.set(resources)


def set_fallback_task(task_id, name, depth):
    """An actor's creation task: what threads of its process that run no call of their
    own see (a sequential actor's running call, while one runs: set_task process_wide)."""
    global _fallback, _plain_task
    _fallback = _plain_task = (task_id, name, None, depth)


def _current():
    found = _task.get()
    return _plain_task if found[0] is None else found


def task_id():
    return _current()[0]


def task_name():
    return _current()[1]


def task_depth():
    return _current()[3]


def task_function_name():
    """What the task runs, as Ray's function descriptor writes it: module.function, or
    module.Class.method for an actor's."""
    _, name, fn, _ = _current()
    fn = getattr(fn, "func", fn)   # (functools.partial)
    module, own = getattr(fn, "__module__", None), getattr(fn, "__name__", None)
    if not module or not own:
        return name
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return f"{module}.{fn.__qualname__}"   # (Ray's async actors: the qualified name)
        return f"{module}.{type(owner).__name__}.{own}"
    return f"{module}.{own}"


def devices():
    """The accelerator ids the running task or actor holds, by kind (core/accelerators.py)."""
    ids = _devices.get()
    if ids is None:
        ids = _plain_held[0]
    return _process.get("devices", {}) if ids is None else ids


def gpu_ids():
    return devices().get("GPU", [])


def resources():
    """What the running task holds (an actor's calls: what the actor holds)."""
    res = _resources.get()
    if res is None:
        res = _plain_held[1]
    return _process.get("resources", {}) if res is None else res


def process():
    return _process

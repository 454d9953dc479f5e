"""The process's current Runtime (driver or worker), or None before init()."""

import os

_state = {"runtime": None, "init": None, "node": None, "pid": None}


def set_runtime(runtime, init=None, node=None):
    _state.update(runtime=runtime, init=init, node=node)
    if runtime is not None:
        _state["pid"] = os.getpid()


def in_fork_child() -> bool:
    """This process was forked (os.fork) by one that set a runtime up: it holds a copy
    of that state, not the runtime, and must not tear it down (nor, under MPI, leave
    the job as its driver)."""
    return _state["pid"] is not None and _state["pid"] != os.getpid()


def runtime():
    return _state["runtime"]


def node():
    return _state["node"]


def info():
    return _state["init"]

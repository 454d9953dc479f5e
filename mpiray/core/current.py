"""The process's current Runtime (driver or worker), or None before init()."""

_state = {"runtime": None, "init": None, "node": None}


def set_runtime(runtime, init=None, node=None):
    _state.update(runtime=runtime, init=init, node=node)


def runtime():
    return _state["runtime"]


def node():
    return _state["node"]


def info():
    return _state["init"]

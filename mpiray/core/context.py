"""What the current thread is running: task id, name, actor, GPUs (per thread, so the
calls of a threaded actor each see their own)."""

import threading

_local = threading.local()
_process = {"actor_id": None, "node_id": "", "worker_id": "", "reconstructed": False}


def set_task(task_id=None, name=None, gpu_ids=None, resources=None):
    _local.task_id, _local.name = task_id, name
    if gpu_ids is not None:
        _local.gpu_ids = gpu_ids
    if resources is not None:
        _local.resources = resources


def task_id():
    return getattr(_local, "task_id", None)


def task_name():
    return getattr(_local, "name", None)


def gpu_ids():
    return getattr(_local, "gpu_ids", _process.get("gpu_ids", []))


def resources():
    """What the running task holds (an actor's calls: what the actor holds)."""
    return getattr(_local, "resources", _process.get("resources", {}))


def process():
    return _process

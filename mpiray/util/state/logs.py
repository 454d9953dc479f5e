"""ray.util.state's log API: list_logs() and get_log() over the workers' log files that
every node keeps (core/worker_logs.py); other nodes (MPI) are asked by the driver."""

from __future__ import annotations

import time

from mpiray.util.state.exception import RayStateApiException

DEFAULT_LOG_LIMIT = 1000


def _node_answers(question: tuple) -> list:
    """[(node index, answer)] of every node, the driver's first."""
    from mpiray.api import _driver_node

    node = _driver_node("the log API")
    answers = [(0, local_answer(node.config.spill_dir, *question))]
    link = getattr(node, "link", None)
    if link is not None:
        answers += link.ask(question)
    return answers


def local_answer(session_dir: str, op: str, *args):
    """One node's answer: ("list", glob) its listing; ("read", filename, pid, suffix,
    tail, offset) (name, text, end offset) of the file, or None when it has none such."""
    import os

    from mpiray.core import worker_logs

    directory = worker_logs.log_dir(session_dir)
    if op == "list":
        return worker_logs.listing(directory, *args)
    filename, pid, suffix, lines, offset = args
    name = worker_logs.find(directory, filename, pid, suffix)
    if name is None:
        return None
    if offset is None:
        text = worker_logs.tail(directory, name, lines)
        return name, text, os.path.getsize(os.path.join(directory, name))
    with open(os.path.join(directory, name), "rb") as f:
        f.seek(offset)
        data = f.read()
    return name, data.decode("utf-8", errors="replace"), offset + len(data)


def _node_index(node_id=None, node_ip=None):
    """The index of the node asked for (None: any)."""
    import mpiray

    if node_id is None and node_ip is None:
        return None
    for n in mpiray.nodes():
        if n["NodeID"] == node_id or (node_id is None and n["NodeManagerAddress"] == node_ip):
            return n["NodeIndex"]
    raise ValueError(f"no node has id {node_id!r}" if node_id else f"no node has ip {node_ip!r}")


def list_logs(address=None, node_id=None, node_ip=None, glob_filter=None, timeout=30) -> dict:
    """{category: [file names]} of a node's logs (the driver's node when none is named):
    Ray's worker_out and worker_err."""
    index = _node_index(node_id, node_ip) or 0
    return dict(_node_answers(("list", glob_filter)))[index]


def get_log(address=None, node_ip=None, node_id=None, filename=None, actor_id=None,
            task_id=None, pid=None, follow=False, tail=DEFAULT_LOG_LIMIT, timeout=30,
            suffix="out", encoding="utf-8", errors="strict", submission_id=None,
            attempt_number=0, _interval=None):
    """The last `tail` lines (every line: -1) of a log: a file by name, or the log of a
    worker by pid, of an actor or of a task (its worker's whole log here); with follow,
    what is written later too, as it comes. A generator of text, as Ray's."""
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    if sum(x is not None for x in (filename, actor_id, task_id, pid)) != 1:
        raise ValueError("get_log needs exactly one of filename, actor_id, task_id and pid")
    index = _node_index(node_id, node_ip)
    if actor_id is not None or task_id is not None:
        pid, index = _worker_of(actor_id, task_id)
    found = [(i, a) for i, a in _node_answers(("read", filename, pid, suffix, tail, None))
             if a is not None and (index is None or i == index)]
    if not found:
        what = (f"file {filename!r}" if filename else f"log of actor {actor_id}" if actor_id
                else f"log of task {task_id}" if task_id else f"log of worker pid {pid}")
        raise RayStateApiException(f"no {what} on {'any node' if index is None else f'node {index}'}")
    index, (name, text, offset) = found[0]
    return _chunks(index, name, text, offset, follow, _interval or 0.5)


def _chunks(index, name, text, offset, follow, interval):
    if text:
        yield text
    while follow:
        time.sleep(interval)
        answer = dict(_node_answers(("read", name, None, None, None, offset))).get(index)
        if answer is None:
            return   # (the session ended)
        _, text, offset = answer
        if text:
            yield text


def _worker_of(actor_id, task_id):
    """(pid, node index) of the worker that runs the actor or ran the task."""
    import mpiray
    from mpiray.util.state import list_actors, list_tasks

    if actor_id is not None:
        rows = list_actors(filters=[("actor_id", "=", actor_id)], limit=1)
        pid = rows[0]["pid"] if rows else None
    else:
        rows = [r for r in list_tasks(filters=[("task_id", "=", task_id)], limit=10_000)
                if r.get("worker_pid")]
        pid = rows[-1]["worker_pid"] if rows else None
    if not pid:
        raise RayStateApiException(f"no worker ran {'actor ' + actor_id if actor_id else 'task ' + task_id}")
    node_id = rows[-1]["node_id"]
    index = next((n["NodeIndex"] for n in mpiray.nodes() if n["NodeID"] == node_id), None)
    return pid, index

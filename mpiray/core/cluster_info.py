"""nodes(), cluster_resources(), available_resources(): answered by a node, asked from
any process (as in Ray, tasks and actors ask too: e.g. to build node-affinity lists).

    driver ──► its node (same process): answer(node, what)
    worker ──NODE_QUERY(what, reply id)──► its node's scheduler ──answer──► reply object
           ◄── store.get(reply) ◄──────────────────────────────────────────┘

Under MPI every node holds the node table; available resources are the node's own, plus
the other nodes as it sees them (their totals less what it has sent them and not heard
back about), and on the driver's node no more than each said it had free in its last
heartbeat (the work other nodes sent it).
"""

from __future__ import annotations

import os
import re

from mpiray.core import current
from mpiray.core import protocol as P

REPLY_TIMEOUT_S = 60.0
_NODE_INDEX = re.compile(r"node:\d+")
QUESTIONS = ("nodes", "cluster_resources", "available_resources", "store_stats")
GATHERED = ("actors", "tasks", "named_actors", "objects", "workers")   # state_report's: [(node index, answer)]


def ask(what: str):
    node = current.node()
    if node is not None:
        return answer(node, what)
    result = current.runtime().request((P.NODE_QUERY, what), REPLY_TIMEOUT_S,
                                       f"this node to {what}()")
    if isinstance(result, Exception):
        raise result
    return result


def answer(node, what: str, from_worker: bool = False):
    """from_worker: asked by a worker's NODE_QUERY, answered inside the scheduler's event
    handling, which must not wait on other nodes (their answers come through the MPI
    thread, which may be waiting for the scheduler's lock meanwhile)."""
    if what in GATHERED:
        if node.num_nodes > 1:   # (the others' answers come through the driver only)
            return RuntimeError(f"a task or actor asks for {what} in a one-node cluster only; "
                                f"with {node.num_nodes} nodes (MPI), ask from the driver")
        from mpiray.core import state_report

        return [(0, getattr(state_report, what)(node.scheduler))]
    if what not in QUESTIONS:
        raise ValueError(f"unknown question {what!r}")
    if what == "store_stats":
        return _store_stats(node, ask_others=not from_worker)
    return globals()["_" + what](node)


def _nodes(node) -> list:
    from mpiray.core.labels import node_labels

    return [{
        "NodeID": info["node_id"], "Alive": True, "alive": True,
        "NodeManagerAddress": info["ip"], "NodeManagerHostname": info["host"],
        "NodeName": info["ip"],   # (Ray's node name defaults to its IP)
        "Labels": node_labels(info.get("labels", {}), info["node_id"]),
        "NodeIndex": index, "MPIRank": info["rank"], "Pid": info["pid"],
        "Resources": _listed(info["totals"]),
    } for index, info in enumerate(node_table(node))]


def _listed(resources: dict) -> dict:
    """resources as Ray lists them: without mpiray's node:<index> (still asked for, to pin
    work to one node), which Ray's nodes do not have; programs count nodes by their
    node:<ip> keys."""
    return {k: v for k, v in resources.items() if not _NODE_INDEX.fullmatch(k)}


def _cluster_resources(node) -> dict:
    return _listed(_sum([info["totals"] for info in node_table(node)]))


def _available_resources(node) -> dict:
    """This node's free resources; another node's as this one sees it (its totals less
    what this node sent it), and, on the driver's node, no more than that node said it
    had free in its last heartbeat (work other nodes sent it, within a second)."""
    s = node.scheduler
    agent = getattr(node, "agent", None)
    reported = agent.reported_available if agent is not None else {}
    with s.lock:
        s._apply_driver_refs()
        parts = [s.res.snapshot_available()]
        if s.cluster is not None:
            for n in s.cluster.views:
                seen = s.cluster.seen_available(n)
                told = reported.get(n)
                if told is not None:
                    seen = {k: min(v, told.get(k, 0.0)) for k, v in seen.items()}
                parts.append(seen)
    return {k: v for k, v in _listed(_sum(parts)).items() if v > 0}


def _store_stats(node, ask_others=True) -> list:
    """This node's store (the driver, under MPI, asks the others too)."""
    stats = [node.store.stats()]
    link = getattr(node, "link", None)
    if link is not None and ask_others:
        stats += [answer for _, answer in link.ask("store_stats")]
    return stats


def node_table(node):
    if node.cluster_table is not None:
        return node.cluster_table
    from mpiray.util.network import get_node_ip_address

    return [{"node_id": node.node_id, "host": os.uname().nodename, "ip": get_node_ip_address(),
             "rank": 0, "pid": os.getpid(), "totals": dict(node.scheduler.res.totals),
             "labels": dict(node.config.labels)}]


def _sum(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return out

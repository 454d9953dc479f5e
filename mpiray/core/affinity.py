"""Where work goes when its scheduling strategy says: the marks a strategy leaves in a
request, and what a node's scheduler makes of them.

    NodeAffinitySchedulingStrategy(node, soft=False) ──► {"node:<i>": AFFINITY_SLIVER}
        no node can hold it ──► TaskUnschedulableError / ActorUnschedulableError
    NodeAffinitySchedulingStrategy(node, soft=True)  ──► {"node:<i>": 0}
        resolve(): the hard mark if node i can hold the work, else none
      ..., _spill_on_unavailable=True                ──► {"node:<i>": 0, "spill_on_unavailable": 0}
        resolve(): the hard mark if node i has room for it now, else none
    scheduling_strategy="SPREAD"                     ──► {"spread": 0}
        under MPI the nodes in turn (Cluster.spread_target); on one node, nothing

A mark of 0 takes nothing from any node (NodeResources skips it).
"""

from __future__ import annotations

SPREAD = "spread"
SPILL = "spill_on_unavailable"


# NodeAffinitySchedulingStrategy(soft=False) asks for this much of node:<index>: the
# amount tells it from a request for node:<index> written by hand (which, as any
# custom resource no node can give, waits instead of failing).
AFFINITY_SLIVER = 2.0 ** -13   # (a power of two: sums of it stay exact)


def pinned_node(req):
    """The node index a NodeAffinitySchedulingStrategy(soft=False) pins req to, or None."""
    for key, amount in req.items():
        if amount == AFFINITY_SLIVER and key.startswith("node:") and key[5:].isdigit():
            return int(key[5:])
    return None


def soft_node_key(req):
    """The node:<index> key a NodeAffinitySchedulingStrategy(soft=True) marks req with
    (an amount of 0, which takes nothing), or None."""
    for key, amount in req.items():
        if amount == 0.0 and key.startswith("node:") and key[5:].isdigit():
            return key
    return None


def resolve_soft(req, key, can_hold):
    """Ray's soft affinity: pinned to the node (as soft=False) when it exists and could
    hold req (can_hold(index, req)), else free to go anywhere."""
    base = {k: v for k, v in req.items() if k != key}
    return dict(base, **{key: AFFINITY_SLIVER}) if can_hold(int(key[5:]), base) else base


def unschedulable_message(what, req):
    index = pinned_node(req)
    wanted = {k: v for k, v in req.items() if not k.startswith("node:")}
    lead = ("The node specified via NodeAffinitySchedulingStrategy doesn't exist any more or "
            "is infeasible, and soft=False was specified")   # (Ray's words, then ours)
    if index is not None and index >= 1 << 16:   # (an id that names no node: no index)
        return f"{lead}: {what} is pinned to a node id that names no node of this cluster."
    return f"{lead}: {what} is pinned to node {index}, which does not exist or cannot hold {wanted}."


def resolve(req, one_node, can_hold, has_room=None):
    """req with its marks resolved as a node's scheduler places it: SPREAD dropped on
    one node (there it is the default placement, and the task may queue ahead), a soft
    affinity made hard or dropped (resolve_soft): by whether the node could ever hold
    it (can_hold(index, req)), or with _spill_on_unavailable, whether it has room now
    (has_room(index, req))."""
    if one_node and SPREAD in req:
        req = {k: v for k, v in req.items() if k != SPREAD}
    soft = soft_node_key(req)
    req, check = soft_check(req, can_hold, has_room)
    return req if soft is None else resolve_soft(req, soft, check)


def soft_check(req, can_hold, has_room):
    """(req without the _spill_on_unavailable mark, the test a soft affinity is resolved
    by): has_room with the mark (room now), else can_hold (room ever)."""
    if SPILL not in req:
        return req, can_hold
    return without_spill(req), has_room or can_hold


def without_spill(req):
    return {k: v for k, v in req.items() if k != SPILL} if SPILL in req else req

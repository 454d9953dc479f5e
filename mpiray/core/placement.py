"""Placement groups: bundles of resources reserved on nodes, and the work placed in them.

    placement_group(bundles) ──PG_OP "create"──► node 0's PlacementGroups ──plan──► node n
    node n's Bundles: reserve once its free resources hold the bundle ──► the bundle's
        resources become resources of their own (CPU_group_<i>_<pg>, CPU_group_<pg>,
        bundle_group_<i>_<pg>, ...) ──"resources"──► every node's view of node n
        ──"placed"──► node 0: CREATED once every bundle is
    task or actor in bundle i: {CPU: 1} ──in_group──► {CPU_group_<i>_<pg>: 1,
        bundle_group_<i>_<pg>: 0.001}: placed, held and freed like any resources
    remove_placement_group ──► node 0 ──"unreserve"──► each node holding a bundle: its
        tasks and actors end, its resources go back ──"removed"──► every node fails the
        work still queued for it

This is Ray's own scheme, so a bundle index of -1 (the wildcard names) means "any
bundle"; pg.ready() is a task in bundle 0 that asks the table to answer once every
bundle is placed (op_when_created).
Under MPI node 0 (the driver's) keeps the table; a single host is node 0.
"""

from __future__ import annotations

import time

from mpiray.core.accelerators import is_accelerator
from mpiray.core.resources import EPS

BUNDLE = "bundle"            # a resource every bundle has, so zero-resource work fits
CAPTURE = "capture"          # marks work whose children go in its group (never counted)
BUNDLE_UNITS = 1000.0
SLIVER = 0.001
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
PENDING, CREATED, REMOVED = "PENDING", "CREATED", "REMOVED"
DEFERRED = object()          # an op whose answer goes out later (op_when_created)
_MARK = "_group_"


def group_name(resource: str, pg: str, index=None) -> str:
    return f"{resource}{_MARK}{pg}" if index is None else f"{resource}{_MARK}{index}_{pg}"


def device_keys(kinds, pg: str, index: int) -> dict:
    """The resource key of bundle `index` of pg for each accelerator kind in kinds."""
    return {name: group_name(name, pg, index) for name in kinds if is_accelerator(name)}


def bundle_resources(pg: str, index: int, bundle: dict) -> dict:
    """What reserving bundle `index` of pg adds to its node."""
    out = {}
    for key, amount in list(bundle.items()) + [(BUNDLE, BUNDLE_UNITS)]:
        out[group_name(key, pg, index)] = amount
        out[group_name(key, pg)] = amount
    return out


def reserved_from(added: dict) -> dict:
    """The plain resources a node reserved for the bundles whose names it added
    (bundle_resources): each resource once, from its "any bundle" name."""
    out = {}
    for key, amount in added.items():
        base, _, rest = key.partition(_MARK)
        if rest and "_" not in rest and base != BUNDLE:   # (<index>_<pg> has one)
            out[base] = out.get(base, 0.0) + amount
    return out


def in_group(req: dict, pg: str, index: int, capture=False) -> dict:
    """req, asked of bundle `index` of pg (-1: of any of its bundles). capture: the
    tasks and actors it starts go in pg too (a zero-amount key marks it: it travels
    with the request into the running task's context)."""
    out = {}
    for key, amount in list(req.items()) + [(BUNDLE, SLIVER)]:
        if index >= 0:  # (first: a bundle's GPU ids come from the first GPU name met)
            out[group_name(key, pg, index)] = amount
        # Ray's scheme: an indexed request takes the group's wildcard names as well, so
        # that it competes with "any bundle" requests for the same resources
        out[group_name(key, pg)] = amount
    if capture:
        out[group_name(CAPTURE, pg)] = 0.0
    return out


def captured(req: dict, parent: dict) -> dict:
    """req of a task or actor started by one (resources `parent`) that captures its
    children in its placement group: in that group (any bundle) and capturing too."""
    if len(parent) < 2:  # (a capturing request has at least its bundle's name and the mark)
        return req
    for key in parent:
        if key.startswith(CAPTURE + _MARK):
            return in_group(req, key[len(CAPTURE + _MARK):], -1, capture=True)
    return req


def group_of(req: dict):
    """The placement group (hex id) a resource request is in, or None."""
    for key in req:
        if key.startswith(BUNDLE + _MARK):
            return key.rsplit("_", 1)[1]
    return None


def base_name(key: str) -> str:
    """The resource a bundle's name stands for ("CPU_group_0_<pg>", "CPU_group_<pg>":
    "CPU"); a name outside any group is itself."""
    return key.split(_MARK, 1)[0]


def uses(req: dict, pg: str) -> bool:
    suffix = "_" + pg
    return any(k.endswith(suffix) and _MARK in k for k in req)


def cpu_part(req: dict) -> dict:
    """The CPUs in req, the node's and a bundle's: what a task lends back while it waits
    in get() (so that its children can run in the same bundle)."""
    if "CPU" in req and len(req) == 1:  # (the commonest: {"CPU": n})
        return req
    return {k: v for k, v in req.items() if k == "CPU" or k.startswith("CPU" + _MARK)}


def cpus_of(req: dict) -> float:
    """How many CPUs req holds, the node's or a bundle's."""
    cpus = req.get("CPU")
    if cpus is not None or len(req) == 1:  # (the commonest: {"CPU": n})
        return cpus or 0.0
    return max((v for k, v in req.items() if k.startswith("CPU" + _MARK)), default=0.0)


def check_bundles(bundles, strategy):
    """Ray's rules for placement_group()'s arguments, in Ray's words, then which bundle."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies "
                         f"are: {set(STRATEGIES)}.")
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if not bundles:
        raise ValueError("Bundles must be a non-empty list of resource dictionaries. For "
                         "example: `[{'CPU': 1.0}, {'GPU': 1.0}]`. Got empty list instead.")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, dict) or not all(isinstance(k, str) and k for k in bundle) or \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bundle.values()):
            raise ValueError("Bundles must be a non-empty list of resource dictionaries. For "
                             f"example: `[{{'CPU': 1.0}}, {{'GPU': 1.0}}]`. Bundle {i} is {bundle!r}.")
        clean = {}
        for key, amount in bundle.items():
            if key == "bundle":   # (Ray's own name for a group's wildcard resource)
                raise ValueError(f"bundle {i}: 'bundle' is a reserved resource name and cannot "
                                 "be asked for in a placement group")
            if amount < 0:
                raise ValueError(f"bundle {i}: resource {key!r} must be a non-negative number, "
                                 f"got {amount!r}")
            if amount:
                clean[key] = float(amount)
        if not clean:
            raise ValueError("Bundles cannot be an empty dictionary or resources with only 0 "
                             f"values. Bundles: {bundles}")
        if "object_store_memory" in bundle:
            import warnings

            warnings.warn("Setting 'object_store_memory' for bundles is deprecated since it "
                          "doesn't actually reserve the required object store memory. Use "
                          "object spilling that's enabled by default instead.",
                          DeprecationWarning, stacklevel=3)
        out.append(clean)
    return out


def _fits(have: dict, want: dict) -> bool:
    return all(have.get(k, 0.0) + EPS >= v for k, v in want.items())


def _take(have: dict, want: dict):
    for k, v in want.items():
        have[k] = have.get(k, 0.0) - v


def _give(have: dict, want: dict):
    for k, v in want.items():
        have[k] = have.get(k, 0.0) + v


def _drop(have, want: dict):
    """want taken back out of have (None: nothing was put there)."""
    if have is not None:
        _take(have, want)


def _less(have: dict, taken) -> dict:
    """A copy of have less what taken holds (None: nothing)."""
    out = dict(have)
    for k, v in (taken or {}).items():
        out[k] = out.get(k, 0.0) - v
    return out


def _total(bundles) -> dict:
    whole = {}
    for b in bundles:
        for k, v in b.items():
            whole[k] = whole.get(k, 0.0) + v
    return whole


def plan(bundles, strategy, nodes):
    """Which node holds each bundle: nodes is [(index, totals, free)]; a bundle goes
    where it fits now if it can, else where it fits at all (it waits there for room).
    None if the cluster can never hold them this way."""
    free = {n: dict(f) for n, _, f in nodes}
    totals = {n: dict(t) for n, t, _ in nodes}   # less the bundles planned there so far
    order = [n for n, _, _ in nodes]
    if strategy in ("PACK", "STRICT_PACK"):
        whole = _total(bundles)
        for pool in (free, totals):
            for n in order:
                if _fits(pool[n], whole):
                    return [n] * len(bundles)
        if strategy == "STRICT_PACK":
            return None
    if strategy == "STRICT_SPREAD" and len(bundles) > len(order):
        return None
    where, count = [], {n: 0 for n in order}
    for b in bundles:
        if strategy == "PACK":   # next to the bundle before, else the first with room
            prefer = ([where[-1]] if where else []) + order
        elif strategy == "STRICT_SPREAD":
            prefer = [n for n in order if n not in where]
        else:                    # SPREAD: the node holding fewest bundles so far
            prefer = sorted(order, key=lambda n: count[n])
        chosen = next((n for n in prefer if _fits(free[n], b)), None)
        if chosen is None:
            chosen = next((n for n in prefer if _fits(totals[n], b)), None)
        if chosen is None:
            return None
        _take(free[chosen], b)
        _take(totals[chosen], b)
        where.append(chosen)
        count[chosen] += 1
    return where


class Bundles:
    """The bundles reserved on one node (every node has one; part of its scheduler)."""

    def __init__(self, scheduler):
        self.s = scheduler
        self.held = {}       # (pg, index) -> bundle
        self.waiting = []    # (pg, [(index, bundle)]): a group's bundles here, no room yet
        self.removed = set() # placement groups removed: work still asking for them fails
        self.trying = False  # try_waiting is running (a reservation it makes may ask for
        self.again = False   # another, locally: that one is taken by the running pass)

    def reserve(self, pg, items):
        """items: [(index, bundle)] of pg to hold here: all at once, when all fit (a
        group holding part of a node while waiting for the rest could starve another)."""
        if pg not in self.removed:
            self.waiting.append((pg, items))
            self.try_waiting()

    def try_waiting(self):
        """Reserves, oldest first, the waiting groups that fit now (before tasks take
        what is free). Telling node 0 a group is placed may (on node 0) ask this node
        for the next group at once: that request waits for this pass to end, which then
        looks again, so no group is reserved twice."""
        if self.trying:
            self.again = True
            return
        s = self.s
        self.trying = True
        waiting, still, position = [], [], -1
        try:
            self.again = True
            while self.again:
                self.again = False
                waiting, self.waiting, still = self.waiting, [], []
                for position, (pg, items) in enumerate(waiting):
                    if pg in self.removed or not s.res.fits(_total(b for _, b in items)):
                        if pg not in self.removed:
                            still.append((pg, items))
                        continue
                    for index, bundle in items:
                        ids = s.res.acquire(bundle)
                        added = bundle_resources(pg, index, bundle)
                        s.res.add(added, device_keys(ids, pg, index), ids)
                        self.held[(pg, index)] = bundle
                        s.resources_changed(added, +1)
                    s.pg_placed(pg, [index for index, _ in items])
                self.waiting = still + self.waiting   # (asked for during the pass: after)
        except BaseException:
            # (the groups not looked at yet must not be lost: they wait on)
            self.waiting = still + waiting[position + 1:] + self.waiting
            raise
        finally:
            self.trying = False

    def unreserve(self, pg):
        """Gives back every bundle of pg held here (or waiting here); what runs in the
        group here ends first."""
        self.waiting = [w for w in self.waiting if w[0] != pg]
        mine = [(i, b) for (g, i), b in self.held.items() if g == pg]
        if not mine:
            return
        self.s.evict_group(pg)
        for index, bundle in mine:
            del self.held[(pg, index)]
            removed = bundle_resources(pg, index, bundle)
            ids = self.s.res.remove(removed, device_keys(bundle, pg, index))
            self.s.res.release(bundle, ids)
            self.s.resources_changed(removed, -1)


class PlacementGroups:
    """The cluster's placement group table: node 0's scheduler keeps it."""

    def __init__(self, scheduler):
        self.s = scheduler
        self.groups = {}     # pg hex -> record dict
        self.names = {}      # (namespace, name) -> pg hex
        # A group whose bundles span several nodes is placed one at a time with the
        # others of its kind, oldest first: two of them each holding part of what the
        # other waits for would wait for ever. A group on one node is reserved whole
        # there (Bundles.reserve), so it can hold nothing another waits for while it
        # waits itself: it goes to its node at once, past any group still waiting (as
        # Ray goes on to the next group when one cannot be placed yet).
        self.queue = []      # pg hex, waiting for its turn
        self.placing = None  # the multi-node pg whose bundles the nodes are reserving now
        # What the bundles asked of each node hold there: promised (asked, not yet placed:
        # the node's free resources as seen here do not show them yet) and committed
        # (promised or placed, until removed). Plans take both off, so a burst of groups
        # does not ask one node for what an earlier group was just promised.
        self.promised = {}   # node -> {resource: amount}
        self.committed = {}  # node -> {resource: amount}

    def apply(self, op, args):
        return getattr(self, "op_" + op)(*args)

    def op_create(self, pg, bundles, strategy, name, namespace, detached=False):
        if name and (namespace, name) in self.names:
            from mpiray.exceptions import RaySystemError

            return RaySystemError(f"Failed to create placement group {pg}: a placement group "
                                  f"named {name!r} already exists in namespace {namespace!r}")
        where = plan(bundles, strategy, self.s.nodes_for_placement())
        self.groups[pg] = {"bundles": bundles, "strategy": strategy, "name": name,
                           "namespace": namespace, "state": PENDING, "where": where,
                           "placed": [False] * len(bundles), "waiters": [],
                           "asked": time.monotonic(), "created": None, "attempts": 0,
                           "detached": bool(detached)}
        if name:
            self.names[(namespace, name)] = pg
        if where is None:
            self.s.io.warn(f"placement group {name or pg} ({strategy}, bundles {bundles}) "
                           f"cannot be placed on this cluster: it stays pending")
            return None
        self.queue.append(pg)
        self._place_next()
        return None

    def _place_next(self):
        """Asks the nodes to reserve the queued groups' bundles (planned again now: the
        nodes' free resources have moved since they were created): every group on one
        node, and the oldest multi-node group unless one is being placed."""
        nodes = self.s.nodes_for_placement()
        free = {n: _less(f, self.promised.get(n)) for n, _, f in nodes}
        # (where a bundle may wait: a node's totals less the bundles it already has)
        room = {n: _less(t, self.committed.get(n)) for n, t, _ in nodes}
        for pg in list(self.queue):
            rec = self.groups[pg]
            where = plan(rec["bundles"], rec["strategy"],
                         [(n, room[n], free[n]) for n, _, _ in nodes]) or rec["where"]
            if len(set(where)) > 1:
                if self.placing is not None:
                    continue
                self.placing = pg
            rec["where"] = where
            rec["attempts"] += 1
            self.queue.remove(pg)
            per_node = {}
            for index, (node, bundle) in enumerate(zip(where, rec["bundles"])):
                per_node.setdefault(node, []).append((index, bundle))
                _take(free[node], bundle)   # (the next plans see it taken)
                _take(room[node], bundle)
                _give(self.promised.setdefault(node, {}), bundle)
                _give(self.committed.setdefault(node, {}), bundle)
            for node, items in per_node.items():
                self.s.pg_send(node, "reserve", (pg, items))

    def placed(self, pg, indexes):
        rec = self.groups.get(pg)
        if rec is None or rec["state"] == REMOVED:
            return
        for index in indexes:
            if not rec["placed"][index]:   # (the node's view shows it from now on)
                _drop(self.promised.get(rec["where"][index]), rec["bundles"][index])
            rec["placed"][index] = True
        if all(rec["placed"]):
            rec["state"] = CREATED
            rec["created"] = time.monotonic()
            self._answer_waiters(rec, True)
            if self.placing == pg:
                self.placing = None
                self._place_next()

    def op_when_created(self, pg):
        """True once every bundle of pg is placed (answered then), False if it is removed."""
        rec = self.groups.get(pg)
        if rec is None or rec["state"] == REMOVED:
            return False
        if rec["state"] == CREATED:
            return True
        return DEFERRED

    def wait_for(self, pg, reply, requester):
        self.groups[pg]["waiters"].append((reply, requester))

    def _answer_waiters(self, rec, answer):
        waiters, rec["waiters"] = rec["waiters"], []
        for reply, requester in waiters:
            self.s.pg_reply(reply, requester, answer)

    def op_remove(self, pg):
        rec = self.groups.get(pg)
        if rec is None or rec["state"] == REMOVED:
            return None
        if pg not in self.queue:   # (asked of nodes: what it holds there goes)
            for index, node in enumerate(rec["where"] or ()):
                bundle = rec["bundles"][index]
                if not rec["placed"][index]:
                    _drop(self.promised.get(node), bundle)
                _drop(self.committed.get(node), bundle)
        rec["state"] = REMOVED
        self._answer_waiters(rec, False)
        if rec["name"] and self.names.get((rec["namespace"], rec["name"])) == pg:
            del self.names[(rec["namespace"], rec["name"])]
        for node in range(self.s.num_nodes()):
            self.s.pg_send(node, "removed", (pg,))
        if pg in self.queue:
            self.queue.remove(pg)   # (never asked of any node)
        else:
            for node in set(rec["where"] or ()):
                self.s.pg_send(node, "unreserve", (pg,))
        if self.placing == pg:
            self.placing = None
            self._place_next()
        return None

    def op_get(self, name, namespace):
        pg = self.names.get((namespace, name))
        return None if pg is None else self._public(pg)

    def op_info(self, pg):
        return self._public(pg) if pg in self.groups else None

    def op_table(self):
        return {pg: self._public(pg) for pg in self.groups}

    def _public(self, pg):
        rec = self.groups[pg]
        node_ids = self.s.node_ids()
        return {
            "placement_group_id": pg, "name": rec["name"], "namespace": rec["namespace"],
            "bundles": dict(enumerate(rec["bundles"])), "strategy": rec["strategy"],
            "state": rec["state"],
            "bundles_to_node_id": {i: node_ids[n] for i, n in enumerate(rec["where"] or ())
                                   if rec["placed"][i]},
            "stats": _stats(rec), "is_detached": rec["detached"],
        }


def _stats(rec) -> dict:
    """Ray's placement_group_table()["stats"]."""
    if rec["state"] == REMOVED:
        state = "REMOVED"
    elif rec["state"] == CREATED:
        state = "FINISHED"
    elif rec["where"] is None:
        state = "INFEASIBLE"
    else:
        state = "QUEUED" if rec["attempts"] == 0 else "NO_RESOURCES"
    latency = 0.0 if rec["created"] is None else (rec["created"] - rec["asked"]) * 1000
    return {"end_to_end_creation_latency_ms": latency, "scheduling_latency_ms": latency,
            "scheduling_attempt": max(rec["attempts"], 1), "highest_retry_delay_ms": 0.0,
            "scheduling_state": state}

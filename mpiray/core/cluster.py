"""What one node's scheduler knows of the other nodes (MPI mode only; None otherwise).

    SUBMIT with no room here ──pick()──► ("task", spec, functions) ──MPI──► node n
    node n: the task ends ──► ("task_done", task_id, sealed) ──MPI──► back here
    get() of an object made elsewhere ──FETCH──► need() ──► ("fetch", oid, me) ──► its owner
                                                            (or the node a route names)
    first / last ref here to another node's object ──► ("borrow" / "unborrow", oid) ──► owner
    an object owned here, freed, living on node n ──► ("free", oid) ──► n

Ownership: the node that made an id (``_ids.node_of``) counts the refs to what it names;
every other node holding refs to it counts as one holder there (a borrow). A node that
runs a task for another holds the task's returns for it until that owner frees them.

Views: what this node believes each other node has free is that node's totals minus
what this node sent there and has not heard back about. Other senders' load is not
seen, so a node may receive more than it can run at once; it queues the rest (correct,
if not always balanced).
"""

from __future__ import annotations

import os
import time

from mpiray import _ids
from mpiray.core import placement
from mpiray.core.resources import NodeResources


# A node may be sent this many times its CPUs in tasks: it queues the extra ones, so a
# new task is already there when one ends, instead of a round trip later. (Scarce
# resources, GPUs and custom ones, are never promised twice.) Only while its tasks are
# short (they come back within PIPELINE_BELOW_S, on average): for longer ones the round
# trip saved is nothing, and tasks queued behind long ones wait while other nodes idle
# (18 one-second tasks on 3 nodes of 2 CPUs took 4 s, not 3).
CPU_PIPELINE = 2
PIPELINE_BELOW_S = 0.02
TURNAROUND_WEIGHT = 0.3   # of the newest task in a node's running average
# A node that gave a task back is sent no more for this long, unless a task of its ends
# first (it gave one back because its CPUs are taken by long work).
FULL_FOR_S = 1.0
# Ray's hybrid policy (scheduler_spread_threshold): a node runs work it could send
# elsewhere itself until this share of its CPUs is busy, then prefers a node less busy.
SPREAD_THRESHOLD = float(os.environ.get("RAY_scheduler_spread_threshold", "0.5"))


class Cluster:
    def __init__(self, me: int, table: list, send):
        self.me = me
        self.table = table                  # node index -> {"totals", "host", "node_id", ...}
        self.send = send                    # send(node, message), thread-safe, never blocks
        self.views = {i: NodeResources(dict(info["totals"]), [], view=True) for i, info in enumerate(table)
                      if i != me}
        self.pipelined = set()              # nodes whose views take CPU_PIPELINE x their CPUs
        self.turnaround = {}                # node -> running average of its tasks' round trip (s)
        self.routes = {}                    # task id -> (node holding its returns, oids not freed)
        self.sent_to = {}                   # task id -> (node, resources held in its view)
        self.lending = set()                # task ids sent away that lent their CPU there
        self.fetching = set()               # oids asked for and not arrived yet
        self.wanted = set()                 # oids waited for here, to be made here (for now)
        self.after_end = {}                 # task id sent away -> its returns waited for here
        self.calls_away = set()             # actor calls passed to another node, not ended
        self.shipped = set()                # (node, function id) already sent
        self.spread_next = me               # the node whose turn it is (SPREAD)
        self.full = {}                      # node that gave a task back -> until when no
                                            # task is sent there (or one of its tasks ends)

    # ------------------------------------------------------------ placement
    def feasible_elsewhere(self, req: dict) -> bool:
        return any(self.feasible_on(n, req) for n in self.views)

    def seen_available(self, node: int) -> dict:
        """node's real totals less what this node sent there and has not heard back
        about (its view's pipelined CPUs are not real ones)."""
        view = self.views[node]
        return {k: max(0.0, round(total - (view.totals.get(k, 0.0) - view.available.get(k, 0.0)), 6))
                for k, total in self.table[node]["totals"].items()}

    def really_fits(self, node: int, req: dict) -> bool:
        """req fits what node has left of its real totals, as far as this node knows."""
        left = self.seen_available(node)
        return all(left.get(k, 0.0) + 1e-9 >= v for k, v in req.items() if v > 0)

    def feasible_on(self, node: int, req: dict) -> bool:
        """node's real totals can hold req (its view's CPUs are pipelined)."""
        totals = self.table[node]["totals"]
        return all(totals.get(k, 0.0) + 1e-9 >= v for k, v in req.items())

    def pick(self, req: dict, deps, have_locally, strict=False) -> int | None:
        """A node with room for req in its view, preferring one that owns an argument
        this node lacks, then the emptiest; None if none has room. strict (an actor,
        which holds what it takes for its whole life and cannot be given back): room in
        the node's real CPUs, not its pipelined ones."""
        full = self.full
        if full:
            now = time.monotonic()
            for n in [n for n, until in full.items() if until <= now]:
                del full[n]
        fits = [n for n, v in self.views.items()
                if n not in full and v.fits(req) and self.feasible_on(n, req)
                and (not strict or self.really_fits(n, req))]
        if not fits:
            return None
        for dep in deps:
            home = self.home_of(dep)
            if home in fits and not have_locally(dep):
                return home
        # the node with the most free real CPUs, then the most room in its view: a node's
        # pipelined CPUs (CPU_PIPELINE) are for when none has real ones free, or work
        # piles up on nodes that were quick while another idles
        return max(fits, key=lambda n: (self._real_free_cpus(n), self.views[n].available.get("CPU", 0.0)))

    def below_threshold(self, req: dict) -> int | None:
        """Another node with room for req whose CPUs are less than SPREAD_THRESHOLD busy,
        the least busy first; None if none is (Ray's hybrid policy: a node packs its own
        work until it is half busy, then spreads it)."""
        best, best_busy = None, SPREAD_THRESHOLD
        for node, view in self.views.items():
            total = self.table[node]["totals"].get("CPU", 0.0)
            if total <= 0 or node in self.full:
                continue
            busy = 1.0 - self._real_free_cpus(node) / total
            if busy < best_busy and view.fits(req) and self.feasible_on(node, req) and \
                    self.really_fits(node, req):
                best, best_busy = node, busy
        return best

    def data_home(self, req: dict, deps, have_locally) -> int | None:
        """Another node with room for req that holds an argument this node lacks (Ray's
        locality-aware placement: the task goes to its data, not the data to the task);
        None if none does."""
        for dep in deps:
            if have_locally(dep):
                continue
            home = self.home_of(dep)
            view = self.views.get(home)
            if view is not None and home not in self.full and view.fits(req) and \
                    self.feasible_on(home, req):
                return home
        return None

    def balance_target(self, req: dict, load: dict, fits_here) -> int | None:
        """The node with room for req (this one: fits_here(req); the others: room in their
        real CPUs, as pick(strict=True)) with the fewest actors per CPU (load: node ->
        actors), this node first among equals: actors of the default strategy spread
        over the cluster, as Ray's do, instead of piling up where they were made."""
        best, best_key = None, None
        for node, info in enumerate(self.table):
            if node == self.me:
                ok = fits_here(req)
            else:
                ok = node not in self.full and self.views[node].fits(req) and \
                    self.feasible_on(node, req) and self.really_fits(node, req)
            if not ok:
                continue
            key = (load.get(node, 0) / max(info["totals"].get("CPU", 0.0), 1.0), node != self.me, node)
            if best_key is None or key < best_key:
                best, best_key = node, key
        return best

    def _real_free_cpus(self, node: int) -> float:
        view = self.views[node]
        return self.table[node]["totals"].get("CPU", 0.0) - \
            (view.totals.get("CPU", 0.0) - view.available.get("CPU", 0.0))

    def change_totals(self, node: int, delta: dict, sign: int):
        """node's resources grew (sign +1) or shrank (-1) by a placement group bundle."""
        totals = self.table[node]["totals"]
        for k, v in delta.items():
            left = totals.get(k, 0.0) + sign * v
            if left > 1e-9:
                totals[k] = left
            else:
                totals.pop(k, None)
        view = self.views.get(node)
        if view is not None:
            view.add(delta) if sign > 0 else view.remove(delta)
            # the bundle's plain resources (its CPUs, ...) are held there while it lives
            held = placement.reserved_from(delta)
            view.acquire(held) if sign > 0 else view.release(held)

    def spread_target(self, req: dict, fits_here, strict=False) -> int | None:
        """SPREAD: the first node from the one whose turn it is (this one included) with
        room for req, whose turn then passes to the next; None if none has room
        (strict: see pick)."""
        count = len(self.table)
        for step in range(count):
            node = (self.spread_next + step) % count
            if node == self.me:
                ok = fits_here(req)
            else:
                ok = self.views[node].fits(req) and self.feasible_on(node, req) and (
                    not strict or self.really_fits(node, req))
            if ok:
                self.spread_next = node + 1
                return node
        return None

    def home_of(self, oid: bytes) -> int:
        """Where to ask for an object: the node its route names, else its owner."""
        route = self.routes.get(oid[: _ids.TASK_ID_SIZE])
        return route[0] if route is not None else _ids.node_of(oid)

    def sent(self, task_id: bytes, node: int, req: dict, return_ids):
        self.views[node].acquire(req)
        self.sent_to[task_id] = (node, req, time.monotonic())
        self.route(task_id, node, return_ids)

    def route(self, task_id: bytes, node: int, return_ids):
        """The returns of task_id will be on (or reached through) node; a process here
        already waiting for one is served from there."""
        self.routes[task_id] = (node, set(return_ids))
        for oid in return_ids:
            if oid in self.wanted:
                self.wanted.discard(oid)
                self.need(oid)

    def call_routed(self, task_id: bytes, node: int, return_ids):
        """An actor call passed on to node: its returns are fetched (if still waited for)
        only once its end comes back without them (fetch_after_end), as a task's."""
        self.calls_away.add(task_id)
        self.route(task_id, node, return_ids)

    def call_ended(self, task_id: bytes):
        """A call passed on is over here (its end came back, or it failed here: its
        returns are the error here): nothing more is fetched for it."""
        self.calls_away.discard(task_id)
        self.after_end.pop(task_id, None)

    def inlined(self, oid: bytes):
        """oid came here by value: no copy is left to free where its route leads."""
        task_id = oid[: _ids.TASK_ID_SIZE]
        route = self.routes.get(task_id)
        if route is not None:
            route[1].discard(oid)
            if not route[1]:
                del self.routes[task_id]

    def have(self, oid: bytes):
        """oid is sealed here now."""
        self.fetching.discard(oid)
        self.wanted.discard(oid)

    def came_back(self, task_id: bytes, ran=True):
        """task_id, sent to another node, ended there (ran) or was given back."""
        sent = self.sent_to.pop(task_id, None)
        if sent is None:
            return
        node, req, at = sent
        if task_id in self.lending:
            self.lending.discard(task_id)
            self.views[node].acquire(placement.cpu_part(req))   # (given back already)
        self.views[node].release(req)
        self.full.pop(node, None)
        if ran:
            self._note_turnaround(node, time.monotonic() - at)

    def lent(self, task_id: bytes, lent: bool):
        """task_id, sent away, blocked in get() there (lent: its CPU is free there, as a
        blocked task's is on one node: without this, a chain of tasks each waiting on the
        next could wait for ever on a node this one sees full) or goes on."""
        sent = self.sent_to.get(task_id)
        if sent is None or lent == (task_id in self.lending):
            return
        node, req = sent[0], placement.cpu_part(sent[1])
        if lent:
            self.lending.add(task_id)
            self.views[node].release(req)
        else:
            self.lending.discard(task_id)
            self.views[node].acquire(req)

    def _note_turnaround(self, node: int, seconds: float):
        """Pipelines node's CPUs while its tasks are short, and stops when they are not."""
        last = self.turnaround.get(node)
        avg = seconds if last is None else last + TURNAROUND_WEIGHT * (seconds - last)
        self.turnaround[node] = avg
        cpus = self.table[node]["totals"].get("CPU", 0.0)
        extra = {"CPU": cpus * (CPU_PIPELINE - 1)}
        if not cpus:
            return
        if avg < PIPELINE_BELOW_S and node not in self.pipelined:
            self.pipelined.add(node)
            self.views[node].add(extra)
        elif avg >= PIPELINE_BELOW_S and node in self.pipelined:
            self.pipelined.discard(node)
            self.views[node].remove(extra)

    def gave_back(self, task_id: bytes, node: int):
        """node gave task_id back unstarted: its returns will not be made there, and it
        gets no more tasks from here until one of them ends, or FULL_FOR_S has passed
        (none may be left there to end)."""
        self.came_back(task_id, ran=False)
        self.routes.pop(task_id, None)
        self.wanted.update(self.after_end.pop(task_id, ()))   # (waited for: made anew)
        self.full[node] = time.monotonic() + FULL_FOR_S

    def fetch_after_end(self, task_id: bytes, here) -> None:
        """task_id (sent away: a task, or an actor call) has ended; `here`: its returns
        that came with the end. The others that processes here wait for are fetched now."""
        self.calls_away.discard(task_id)
        for oid in self.after_end.pop(task_id, ()):
            if oid not in here:
                self.need(oid)

    # ------------------------------------------------------------ objects
    def is_foreign(self, oid: bytes) -> bool:
        return _ids.node_of(oid) != self.me

    def need(self, oid: bytes) -> None:
        """Asks for a copy of oid, once, from where it lives. A return of a task still
        running on another node is asked for only once that task has ended without
        bringing it along (small returns come with the task's end: a fetch sent now would
        move the object a second time, by the slower raw path)."""
        if oid in self.fetching:
            return
        task_id = oid[: _ids.TASK_ID_SIZE]
        if task_id in self.sent_to or task_id in self.calls_away:
            self.after_end.setdefault(task_id, set()).add(oid)
            return
        home = self.home_of(oid)
        if home == self.me:
            self.wanted.add(oid)  # made here, unless its task is sent away (then: sent())
            return
        self.fetching.add(oid)
        self.send(home, ("fetch", oid, self.me))

    def freed(self, oid: bytes) -> None:
        """oid (owned here) is freed: the node holding it for us may drop it."""
        task_id = oid[: _ids.TASK_ID_SIZE]
        route = self.routes.get(task_id)
        if route is None or oid not in route[1]:
            return
        self.send(route[0], ("free", oid))
        route[1].discard(oid)
        if not route[1]:
            del self.routes[task_id]

    # ------------------------------------------------------------ functions
    def functions_for(self, node: int, fids, read_blob) -> list:
        """(fid, blob) for every function node n has not been sent yet."""
        out = []
        for fid in fids:
            if fid and (node, fid) not in self.shipped:
                self.shipped.add((node, fid))
                out.append((fid, read_blob(fid)))
        return out

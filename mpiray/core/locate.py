"""wait(fetch_local=False) across nodes: which objects are sealed somewhere, learnt without
moving them (MPI mode; on one node a wait only reads the store).

    a process here ──LOCATE(oids, reply)──► Locator.ask ──► any sealed already? ──► reply now
        else each oid waits here; one owned by another node ──("locate", oid, me)──► its owner
    the owner: sealed there, or its task's end heard from the node that ran it ──► sealed()
        ──► ("located", oid) ──► the asker's told() ──► sealed()
    sealed(oid) for an ask that waits ──► put_reply(reply, [its oids sealed now]): the process
        wakes, marks them, and asks again for the rest if it needs more
    the process gives up (timeout) ──LOCATE_DROP(reply)──► the ask, and a reply it missed, go

Owned here means known here: the owner hears when each of its objects is sealed (its own
seals, the task_done / call_done of what it sent away), so one message to it suffices.
Methods run under the scheduler's lock (they are its events), like the rest of it.
"""

from __future__ import annotations

from mpiray import _ids


class Locator:
    def __init__(self, scheduler):
        self.s = scheduler
        self.asks = {}    # reply id -> the oids that ask waits for
        self.waits = {}   # oid -> {reply id (an ask here) or node index (an ask from there)}

    def is_sealed(self, oid) -> bool:
        return oid in self.s.sealed or self.s.io.contains(oid)

    def ask(self, oids, reply):
        """A process here waits until one of oids is sealed on some node."""
        found = [oid for oid in oids if self.is_sealed(oid)]
        if found:
            self.s.io.put_reply(reply, found)
            return
        self.asks[reply] = oids
        cluster = self.s.cluster
        for oid in oids:
            waiting = self.waits.get(oid)
            if waiting is None:
                waiting = self.waits[oid] = set()
                if cluster.is_foreign(oid):
                    cluster.send(_ids.node_of(oid), ("locate", oid, cluster.me))
            waiting.add(reply)

    def asked_by(self, oid, node):
        """Another node waits for oid, owned here: it hears once it is sealed anywhere."""
        if self.is_sealed(oid):
            self.s.cluster.send(node, ("located", oid))
        else:
            self.waits.setdefault(oid, set()).add(node)

    def sealed(self, oid):
        """oid is sealed here, or on the node that ran its task: tell whoever waits."""
        waiting = self.waits.pop(oid, None)
        if not waiting:
            return
        for who in waiting:
            if type(who) is int:
                self.s.cluster.send(who, ("located", oid))
                continue
            oids = self._forget(who)
            if oids is not None:
                self.s.io.put_reply(who, [o for o in oids if o == oid or self.is_sealed(o)])

    def drop(self, reply):
        """The process stopped waiting: its ask goes, and so does a reply it did not read."""
        self._forget(reply)
        self.s.io.delete_object(reply)

    def _forget(self, reply):
        oids = self.asks.pop(reply, None)
        for oid in oids or ():
            waiting = self.waits.get(oid)
            if waiting is not None:
                waiting.discard(reply)
                if not waiting:
                    del self.waits[oid]
        return oids

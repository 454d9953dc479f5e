"""How a process tells its node's scheduler what happened: two implementations.

    driver:  events ──► Scheduler.handle_events (same process, under its lock)
    worker:  events ──► outbox (deque) ──flush──► [(FROM, slot), events...] ──► inbox queue
                                                   ──► scheduler's inbox thread

Both are the refcount sink of their process: ref events join the same ordered stream
as seals and completions, which is what keeps counting correct (a hold on a ref is
always registered before the release of an earlier hold on it). A worker's batches say
which worker sent them, so the scheduler knows the refs each worker holds and can drop
them when it dies.
"""

from __future__ import annotations

import collections
import threading

from mpiray import _ids
from mpiray.core import protocol as P
from mpiray.core import timeline


class DriverChannel:
    def __init__(self, scheduler, pump=None):
        self.scheduler = scheduler
        self.pump = pump  # the node's InboxPump: drained here too (see send)

    def incref(self, oid):
        self.scheduler.driver_ref_events.append((P.INCREF, oid))

    def decref(self, oid):
        self.scheduler.driver_ref_events.append((P.DECREF, oid))

    def pin(self, oid):
        self.scheduler.driver_ref_events.append((P.INCREF, oid))   # (the driver's end is the job's)

    def send(self, events, flush=True):
        # Workers' events first, if any wait: a driver submitting in a loop holds the
        # GIL for the inbox thread's whole switch interval (5 ms), and the ends of the
        # tasks it keeps submitting are what frees their CPUs for the next ones.
        # And the items the inbox thread popped but has not applied yet (drain waits for
        # it): a cancel must not overtake the submit of the task it names.
        pump = self.pump
        if pump is not None and (pump.inbox.size() or pump.owner is not None):
            pump.drain()
        self.scheduler.handle_events(events)

    def flush(self):
        pass

    def apply_refs(self):
        """Frees what the driver dropped before it allocates again."""
        if self.scheduler.driver_ref_events:
            self.scheduler.stimulus_driver(lambda: None)


class WorkerChannel:
    def __init__(self, inbox, store, slot):
        self.inbox = inbox
        self.store = store
        self.sender = (P.FROM, slot)
        self.outbox = collections.deque()
        self.lock = threading.Lock()
        self.timings = timeline.Timings() if timeline.enabled() else None  # (timeline())

    def incref(self, oid):
        self.outbox.append((P.INCREF, oid))  # deque.append is atomic: safe from __del__

    def decref(self, oid):
        self.outbox.append((P.DECREF, oid))

    def pin(self, oid):
        self.outbox.append((P.HOLD, [oid]))

    def send(self, events, flush=True):
        self.outbox.extend(events)
        if flush:
            self.flush()

    def apply_refs(self):
        self.flush()

    def flush(self):
        with self.lock:
            batch = [self.sender]
            try:
                while True:  # popleft is atomic: events appended meanwhile go next time
                    batch.append(self.outbox.popleft())
            except IndexError:
                pass
            if self.timings is not None:
                timed = self.timings.take()
                if timed is not None:
                    batch.append((P.TIMINGS, timed))
            if len(batch) == 1:
                return
            item = P.encode_item(P.dumps(batch), self.inbox.max_payload, self.store, _ids.new_item_id)
            self.inbox.push(item)

"""How a process tells its node's scheduler what happened: two implementations.

    driver:  events ──► Scheduler.handle_events (same process, under its lock)
    worker:  events ──► outbox (deque) ──flush──► [(FROM, slot), events...] ──► inbox queue
                                                   ──► scheduler's inbox thread
             (flushed by the worker as it reports, and by its outbox thread when events
              wait: a ref a long task drops is released within QUIET_FLUSH_S)

Both are the refcount sink of their process: ref events join the same ordered stream
as seals and completions, which is what keeps counting correct (a hold on a ref is
always registered before the release of an earlier hold on it). A worker's batches say
which worker sent them, so the scheduler knows the refs each worker holds and can drop
them when it dies.
"""

from __future__ import annotations

import collections
import threading
import time

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


# A worker's outbox thread sends events that have waited this long (a ref dropped in a
# long-running task: its object, maybe large, goes now rather than when the task ends),
# and looks less often, up to IDLE_LOOK_S, while nothing waits.
QUIET_FLUSH_S = 0.05
IDLE_LOOK_S = 1.0


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

    def start_flusher(self):
        threading.Thread(target=self._flush_waiting, name="mpiray-outbox", daemon=True).start()

    def _flush_waiting(self):
        nap = QUIET_FLUSH_S
        while True:
            time.sleep(nap)
            if not self.outbox:
                nap = min(2 * nap, IDLE_LOOK_S)
                continue
            nap = QUIET_FLUSH_S
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the inbox closed: the node stops, so does this
                return

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

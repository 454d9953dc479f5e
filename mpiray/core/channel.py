"""How a process tells its node's scheduler what happened: two implementations.

    driver:  events ──► Scheduler.handle_events (same process, under its lock)
    worker:  events ──► outbox (deque) ──flush──► inbox queue ──► scheduler's inbox thread
             submits ──► send_soon: a burst goes as one inbox item (flushed within SOON_S)

Both are the refcount sink of their process: ref events join the same ordered stream
as seals and completions, which is what keeps counting correct (a hold on a ref is
always registered before the release of an earlier hold on it).
"""

from __future__ import annotations

import collections
import threading
import time

from mpiray import _ids
from mpiray.core import protocol as P

# A task submitting in a loop sends its submits in items of up to SOON_MAX (one item per
# submit made the scheduler decode, lock and dispatch once per child: a third of a nested
# child's cost). The first submit after a quiet spell goes at once; later ones wait at
# most SOON_S (plus a GIL hand-off) for a flusher thread, and every wait of the task
# (get, wait, the end of the task) flushes first.
SOON_S = 100e-6
SOON_MAX = 16


class DriverChannel:
    def __init__(self, scheduler, pump=None):
        self.scheduler = scheduler
        self.pump = pump  # the node's InboxPump: drained here too (see send)

    def incref(self, oid):
        self.scheduler.driver_ref_events.append((P.INCREF, oid))

    def decref(self, oid):
        self.scheduler.driver_ref_events.append((P.DECREF, oid))

    def send_soon(self, events):
        self.send(events)

    def send(self, events, flush=True):
        # Workers' events first, if any wait: a driver submitting in a loop holds the
        # GIL for the inbox thread's whole switch interval (5 ms), and the ends of the
        # tasks it keeps submitting are what frees their CPUs for the next ones.
        pump = self.pump
        if pump is not None and pump.inbox.size():
            pump.drain()
        self.scheduler.handle_events(events)

    def flush(self):
        pass

    def apply_refs(self):
        """Frees what the driver dropped before it allocates again."""
        if self.scheduler.driver_ref_events:
            self.scheduler.stimulus_driver(lambda: None)


class WorkerChannel:
    def __init__(self, inbox, store):
        self.inbox = inbox
        self.store = store
        self.outbox = collections.deque()
        self.lock = threading.Lock()
        self.flushed_at = 0.0
        self.soon = None       # threading.Event the flusher thread waits on (made lazily)

    def incref(self, oid):
        self.outbox.append((P.INCREF, oid))  # deque.append is atomic: safe from __del__

    def decref(self, oid):
        self.outbox.append((P.DECREF, oid))

    def send(self, events, flush=True):
        self.outbox.extend(events)
        if flush:
            self.flush()

    def send_soon(self, events):
        """send, but the events may wait up to SOON_S to go with the next ones."""
        out = self.outbox
        out.extend(events)
        if len(out) >= SOON_MAX or time.perf_counter() - self.flushed_at > SOON_S:
            self.flush()
        elif self.soon is None:
            self.soon = threading.Event()
            self.soon.set()
            threading.Thread(target=self._flusher, name="mpiray-flush", daemon=True).start()
        elif not self.soon.is_set():
            self.soon.set()

    def _flusher(self):
        soon = self.soon
        while True:
            soon.wait()
            time.sleep(SOON_S)
            soon.clear()       # (a send_soon from now on sets it again)
            self.flush()

    def apply_refs(self):
        self.flush()

    def flush(self):
        with self.lock:
            self.flushed_at = time.perf_counter()
            batch = []
            try:
                while True:  # popleft is atomic: events appended meanwhile go next time
                    batch.append(self.outbox.popleft())
            except IndexError:
                pass
            if not batch:
                return
            item = P.encode_item(P.dumps(batch), self.inbox.max_payload, self.store, _ids.new_put_id)
            self.inbox.push(item)

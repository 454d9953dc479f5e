"""A node's MPI thread: the only code that calls MPI while the cluster runs.

    scheduler ──send(node, msg)──► outbox ──► isend (pickled, TAG_CTRL) ──► that node's agent
    other agents ──► Iprobe / recv ──► handle_<op>() ──► scheduler.handle_events([...])
    ("fetch", oid) ──► serve: store buffer ──Isend raw chunks (TAG_DATA)──► requester
                       └─ a large one to a node of this host: through staging buffers,
                          chunks under a tag of the transfer's own (staged_send.py)
    ("object", oid, n, contained, chunk, tag) ──► store.create_object ──Irecv chunks──►
                       seal ──► ARRIVED event
                       └─ no room (what holds the store is pinned) ──► its spill file
                          ──Irecv chunks──► store.adopt_spilled ──► ARRIVED event

One thread per rank owns MPI (funneled), so user code never meets it. MPICH's blocking
receive burns a core, so between messages the thread waits in ``MpiPoller.wait`` (C, no
GIL): it probes for a message every few tens of microseconds while the node is busy, less
often as it stays quiet, and ``send`` ends the wait at once by poking it. An idle node
costs next to nothing and a message to send goes out at once.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
import traceback

from mpiray._native.mpipoll import MpiPoller, mpi_function_address, set_timer_slack_ns
from mpiray.core import protocol as P
from mpiray.core.spill_target import SpillTarget
from mpiray.exceptions import ObjectStoreFullError
from mpiray.mpi.staged_send import STAGE_CHUNK, STAGE_MIN, OutgoingObject, StagingPool
from mpiray.serialization import serialize_error

TAG_CTRL, TAG_DATA = 11, 12
TAG_STAGED, STAGED_TAGS = 100, 10_000   # a staged transfer's own tag: 100 + its number
CHUNK = 256 << 20           # bytes per raw message (MPI counts are ints)
# How often the MPI thread probes for a message from another rank, by how long the node
# has been quiet. Every message waits for the next probe (half the interval on average),
# and each probe costs a wake-up of ~5 us: probing every 20 us takes ~25% of a core. So
# while busy, the MPI threads of one host together may probe at most PROBE_SHARE of its
# cores, but never more often than every 20 us. Measured on 2 cores: 2 nodes' round trip
# was shortest at 20-50 us (5 us starved the workers: 2.7 ms); 4 nodes ran 5k tasks/s at
# 20 us and 10-16k at 100 us. MPIRAY_MPI_PROBE_US sets the busy interval outright.
PROBE_COST_S, PROBE_SHARE, PROBE_MIN_S = 5e-6, 1 / 8, 20e-6
QUIET_PLAN = ((1.0, 1e-3),           # (quiet for less than this many seconds, probe every)
              (None, 5e-3))
BUSY_S = 0.1                         # "busy": traffic in the last 0.1 s


def probe_plan(threads_on_host: int, cores: int) -> tuple:
    """((quiet for less than s, probe every s), ...) for this host's MPI threads."""
    forced = os.environ.get("MPIRAY_MPI_PROBE_US")
    busy = float(forced) * 1e-6 if forced else max(
        PROBE_MIN_S, PROBE_COST_S * threads_on_host / (PROBE_SHARE * max(cores, 1)))
    return ((BUSY_S, busy),) + QUIET_PLAN


LOCAL_POLL_S = 1e-4         # how often local work without a wake-up of its own (calls on
                            # proxy queues, retries, timers) is looked at while it exists
WAITING_CHECK_S = 1e-3      # how often fetches of not-yet-sealed objects are retried
# Every node leader tells rank 0 it is alive this often; rank 0 ends the job (naming the
# rank and host) when one is silent for MPIRAY_RANK_TIMEOUT_S. mpiexec already ends a job
# whose rank dies; this catches a rank that hangs, or a launcher that lets the job go on.
HEARTBEAT_S = 1.0
RANK_TIMEOUT_S = float(os.environ.get("MPIRAY_RANK_TIMEOUT_S", "15"))
# Messages whose handling is only scheduler events (so a batch of them is applied at once).
EVENT_ONLY = frozenset(("task", "task_done", "task_back", "task_lent", "cancel", "borrow", "unborrow", "free", "actor_create",
                        "actor_call", "call_done", "actor_kill", "actor_dead", "pg", "call_cancel",
                        "item_held", "locate", "located"))
TRACE = os.environ.get("MPIRAY_TRACE_MPI", "") not in ("", "0")   # log every message
DIRECT_SEND = os.environ.get("MPIRAY_MPI_DIRECT_SEND", "1") not in ("", "0")


class Agent:
    def __init__(self, world, node_index, store, on_control, cycle, threads_on_host=1):
        self.world = world
        self.probe_plan = probe_plan(threads_on_host, os.cpu_count() or 1)
        self.cycle = cycle               # the driver's init() count: stale messages are dropped
        self.node_open = True            # False once the node is being stopped
        self.gate = threading.Lock()     # held while a message touches the node
        self.batched = None              # events collected while handling a batch
        self.comm = world.comm
        self.MPI = world.MPI
        self.me = node_index
        self.store = store
        self.scheduler = None            # set once the node's scheduler exists
        self.reported_available = {}     # rank 0: node -> what it said it has free (heartbeat)
        self.on_control = on_control     # lifecycle messages ("start", "stop", ...) -> callable
        self.outbox = collections.deque()
        # With MPI_THREAD_MULTIPLE a scheduler thread sends its message itself when nothing
        # waits in the outbox (the order per destination holds: both paths send under
        # send_lock, oldest first), instead of handing it to this thread: one thread
        # wake-up and GIL hand-off less per message (~100 us on 2 cores).
        self.send_lock = threading.Lock()
        self.direct = DIRECT_SEND and self.MPI.Query_thread() == self.MPI.THREAD_MULTIPLE
        self.last_sent = 0.0             # perf_counter of the last direct send
        self.napping = False             # in a quiet nap: a direct send must wake us
        self.poller = MpiPoller(mpi_function_address("MPI_Iprobe"), self.comm,
                                self.MPI.ANY_SOURCE, TAG_CTRL)
        self.sends = []                  # (request or OutgoingObject, buffer kept alive until sent)
        self.same_host = {i for i, r in enumerate(world.leaders)
                          if world.hosts[r] == world.hostname and i != self.me}
        self.stage_pool = StagingPool()
        self.staged_sent = 0             # staged transfers so far (their tags cycle)
        self.recvs = []                  # IncomingObject
        self.waiting = {}                # oid -> [requester node]: not sealed here yet
        self.pushes = collections.deque()  # (node, oid, buffer, contained) to send unasked
        self.proxies = {}                # actor id -> (local queue, node it runs on)
        self.node_by_rank = {r: i for i, r in enumerate(world.leaders)}
        self.next_waiting_check = 0.0
        self.running = False
        self.thread = None
        self.failure = None

    # ------------------------------------------------------------ sending
    def send(self, node: int, msg) -> None:
        """Thread-safe and non-blocking."""
        self.send_rank(self.world.leader_of(node), msg)

    def send_rank(self, rank: int, msg) -> None:
        if self.direct and threading.current_thread() is not self.thread:
            with self.send_lock:
                if not self.outbox:
                    self._isend(rank, msg)
                    self.last_sent = time.perf_counter()
                    if self.napping:   # it probes rarely now: the answer must not wait
                        self.poller.poke()
                    return
        self.outbox.append((rank, msg))
        self.poller.poke()

    def _isend(self, rank, msg):
        if TRACE:
            print(f"{time.perf_counter():.6f} [mpi node {self.me}] -> rank {rank}: {_brief(msg)}", file=sys.stderr, flush=True)
        self.sends.append((self.comm.isend((self.cycle, msg), dest=rank, tag=TAG_CTRL), None))

    def _drain_outbox(self) -> bool:
        """Everything queued for one rank goes as one message (order kept)."""
        if not self.outbox:
            return False
        with self.send_lock:
            per_rank = {}
            while self.outbox:
                rank, msg = self.outbox.popleft()
                per_rank.setdefault(rank, []).append(msg)
            for rank, msgs in per_rank.items():
                self._isend(rank, msgs[0] if len(msgs) == 1 else ("batch", msgs))
        return True

    def _progress_sends(self):
        if self.sends:
            with self.send_lock:
                self.sends = [(req, buf) for req, buf in self.sends if not req.Test()]

    # ------------------------------------------------------------ loop
    def start(self):
        self.running = True
        self.last_beat = time.monotonic()
        self.heard = {}  # rank 0: leader rank -> when last heard (once watch_peers() runs)
        self.thread = threading.Thread(target=self.run, name="mpiray-mpi", daemon=True)
        self.thread.start()

    def stop(self):
        self.running = False
        self.poller.poke()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)

    def run(self):
        set_timer_slack_ns(1000)   # a 20 us nap must not last 70
        try:
            self.loop()
        except BaseException as exc:  # noqa: BLE001 - a dead MPI thread must stop the job
            self.failure = exc
            traceback.print_exc()
            self.comm.Abort(70)

    def loop(self):
        MPI = self.MPI
        status = MPI.Status()
        last_busy = time.perf_counter()
        while self.running or self.outbox or self.sends or self.recvs or self.pushes:
            busy = self._drain_outbox()
            if self.pushes:
                self._drain_pushes()
                busy = True
            while self.comm.Iprobe(MPI.ANY_SOURCE, TAG_CTRL, status):
                cycle, msg = self.comm.recv(source=status.Get_source(), tag=TAG_CTRL)
                if status.Get_source() in self.heard:
                    self.heard[status.Get_source()] = time.monotonic()
                with self.gate:
                    self._handle(status.Get_source(), msg, cycle in (self.cycle, None) and self.node_open)
                busy = busy or msg[0] != "alive"
            self._heartbeat()   # (after reading what came: a late reader judges no one)
            if self.sends:
                self._progress_sends()
                # MPI moves a large message only while the sender keeps calling into it
                busy = busy or any(buf is not None for _, buf in self.sends)
            if self.recvs:
                with self.gate:
                    self._progress_recvs()
                busy = True
            with self.gate:
                s = self.scheduler
                if s is not None and self.node_open:
                    now_m = time.monotonic()
                    due = s.give_back_due
                    if s.lingering and s.lingering[0][0] <= now_m or due is not None and due <= now_m:
                        self._events([(P.TICK,)])
                if self.waiting and self.node_open:
                    self._retry_waiting()
                if self.proxies and self.node_open and self._drain_proxies():
                    busy = True
            now = time.perf_counter()
            if busy:
                last_busy = now
            else:
                self._wait(now - max(last_busy, self.last_sent))
        # drain what is still in flight so no peer waits on a half-sent object
        deadline = time.monotonic() + 5
        while self.sends and time.monotonic() < deadline:
            self._progress_sends()
            time.sleep(1e-3)

    def _wait(self, quiet_s):
        """Until a message comes, a local send pokes us, local work is due, or the node
        has been quiet long enough to probe less often."""
        for upto, probe in self.probe_plan:
            if upto is None or quiet_s < upto:
                break
        if self.proxies or self.waiting or self.recvs or self.sends or (
                self.scheduler is not None and self.scheduler.lingering):
            timeout = LOCAL_POLL_S
        else:
            timeout = self.last_beat + HEARTBEAT_S - time.monotonic()
            if upto is not None:
                timeout = min(timeout, upto - quiet_s)
        self.napping = upto != self.probe_plan[0][0]
        self.poller.wait(max(timeout, probe), probe)
        self.napping = False

    def _heartbeat(self):
        """Leaders: say "alive" to rank 0 now and then. Rank 0: end the job when a leader
        has been silent too long (a hung or stopped rank would otherwise hang it)."""
        now = time.monotonic()
        if now - self.last_beat < HEARTBEAT_S:
            return
        stalled = now - self.last_beat > 2 * HEARTBEAT_S + 1.0
        self.last_beat = now
        if self.world.rank != 0:   # (not through the outbox: it is not traffic that
            # should make the thread probe often, see _wait)
            with self.send_lock:
                self._isend(0, ("alive", self._available_now()))
            return
        if stalled and self.heard:
            # This thread was held up itself (the driver's code kept the GIL for long: a
            # big pickle.loads, a regex): the others' "alive"s wait unread, so their
            # silence says nothing yet. They get a fresh window, read from now on.
            self.heard = {rank: now for rank in self.heard}
            return
        if self.heard:
            # (the one silent longest is named: others may have gone quiet since, as the
            # job winds down without it)
            rank, seen = min(self.heard.items(), key=lambda item: item[1])
            if now - seen > RANK_TIMEOUT_S:
                node = self.node_by_rank.get(rank)
                print(f"mpiray: node {node} (rank {rank} on host {self.world.hosts[rank]}) has "
                      f"not answered for {now - seen:.0f} s: it died or hangs; ending the job",
                      file=sys.stderr, flush=True)
                self.comm.Abort(1)

    def watch_peers(self):
        """Rank 0, once every node has started (a node's start may take long: a big
        store is faulted in first): from now on, silence means trouble."""
        now = time.monotonic()
        self.heard = {r: now for r in self.world.leaders if r != self.world.rank}

    def handle_alive(self, source, available=None):
        """Hearing from it was the point (see _heartbeat); what it has free comes along,
        for the driver's available_resources() (core/cluster_info.py)."""
        node = self.node_by_rank.get(source)
        if available is not None and node is not None:
            self.reported_available[node] = available

    def _available_now(self):
        """What this node has free (its scheduler's count, read without its lock: this
        thread must not wait on it; a count changing shape meanwhile skips one beat)."""
        s = self.scheduler
        try:
            return s.res.snapshot_available() if s is not None else None
        except RuntimeError:
            return None

    def _handle(self, source, msg, live=True):
        """live=False: a message of an earlier cycle, or for a node being stopped: only
        its bulk data is drained (into scratch memory); lifecycle words still count."""
        op = msg[0]
        if TRACE:
            print(f"{time.perf_counter():.6f} [mpi node {self.me}] <- rank {source}: {_brief(msg)}", file=sys.stderr, flush=True)
        handler = getattr(self, "handle_" + op, None)
        if not live and handler is not None:
            if op == "batch":
                for inner in msg[1]:
                    self._handle(source, inner, live)
            elif op == "object":
                self.recvs.append(IncomingObject(self, source, *msg[1:], discard=True))
            return
        try:
            if handler is None:
                self.on_control(source, msg)
            else:
                handler(source, *msg[1:])
        except Exception:  # noqa: BLE001 - one bad message must not stop the node
            print(f"(mpiray) error handling {op!r} from rank {source}:", flush=True)
            traceback.print_exc()

    def _events(self, events):
        if self.batched is not None:
            self.batched.extend(events)
        elif self.node_open:
            self.scheduler.handle_events(events)

    def handle_batch(self, source, msgs):
        """Several messages from one rank: their scheduler events are applied together
        (one lock, one dispatch), in order."""
        self.batched = []
        try:
            for msg in msgs:
                if msg[0] not in EVENT_ONLY:  # it reads the node's state: bring it up to date
                    self._flush_batched()
                self._handle(source, msg)
        finally:
            self._flush_batched()
            self.batched = None

    def _flush_batched(self):
        events, self.batched = self.batched, []
        if events and self.node_open:
            self.scheduler.handle_events(events)

    def detach(self, timeout=10.0):
        """The node is about to stop: objects arriving into its store finish first, then
        nothing more touches it."""
        deadline = time.monotonic() + timeout
        while self.recvs and time.monotonic() < deadline:
            time.sleep(1e-3)
        with self.gate:
            self.node_open = False

    # ------------------------------------------------------------ tasks and refs
    def handle_task(self, source, spec_bytes, functions, origin):
        from mpiray.core.task_spec import TaskSpec

        self._install_functions(functions)
        self._events([(P.REMOTE_TASK, TaskSpec.from_bytes(spec_bytes), origin)])

    def handle_task_done(self, source, task_id, inline):
        self._events([(P.REMOTE_TASK_DONE, task_id, inline)])

    def handle_task_back(self, source, task_id, node):
        self._events([(P.TASK_BACK, task_id, node)])

    def handle_task_lent(self, source, task_id, lent):
        self._events([(P.TASK_LENT, task_id, lent)])

    def handle_cancel(self, source, task_id, force, recursive=True):
        self._events([(P.CANCEL, task_id, force, recursive)])

    def handle_call_cancel(self, source, task_id, recursive=True):
        self._events([(P.CALL_CANCEL, task_id, recursive)])

    def handle_item_held(self, source, oid):
        self._events([(P.ITEM_HELD, oid)])

    # ------------------------------------------------------------ actors
    def handle_actor_create(self, source, aspec_bytes, functions):
        self._install_functions(functions)
        self._events([(P.REMOTE_ACTOR, P.loads(aspec_bytes), self.node_by_rank[source])])

    def handle_actor_call(self, source, actor_id, payload):
        self._events([(P.ACTOR_CALL_IN, actor_id, payload, self.node_by_rank[source])])

    def handle_call_done(self, source, task_id, inline):
        self._events([(P.CALL_DONE, task_id, inline)])

    def handle_actor_kill(self, source, actor_id, no_restart, why=None):
        self._events([(P.KILL_ACTOR, actor_id, no_restart, None, why)])

    def handle_actor_dead(self, source, actor_id, cause_bytes):
        from mpiray.serialization import deserialize

        self._events([(P.ACTOR_DEAD, actor_id, deserialize(cause_bytes)[0])])

    def handle_name_op(self, source, op, key, value, reply, requester):
        from mpiray.core import actor_names

        result = actor_names.apply(self.store, op, key, value)
        if reply is not None:
            self.send(requester, ("name_reply", reply, P.dumps(result)))

    def handle_pg(self, source, kind, args):
        self._events([(P.PG_MSG, kind, args)])

    def handle_name_reply(self, source, reply, data):
        self.store.put(reply, data)

    def add_proxy(self, actor_id, queue, node):
        self.proxies[actor_id] = (queue, node)

    def remove_proxy(self, actor_id):
        self.proxies.pop(actor_id, None)

    def _drain_proxies(self) -> bool:
        """Calls that local processes pushed on the queue of an actor running elsewhere."""
        from mpiray.core.native import QueueClosed

        moved = False
        for actor_id, (queue, host) in list(self.proxies.items()):
            while True:
                try:
                    item = queue.try_pop()
                except QueueClosed:
                    self.proxies.pop(actor_id, None)
                    break
                if item is None:
                    break
                payload = P.decode_item(item, self.store)
                P.release_item(item, self.store)
                with self.scheduler.lock:
                    self.scheduler.router.forwarded_from_proxy(actor_id, payload, host)
                moved = True
        return moved

    def handle_locate(self, source, oid, requester):
        self._events([(P.REMOTE_LOCATE, oid, requester)])

    def handle_located(self, source, oid):
        self._events([(P.LOCATED, oid)])

    def handle_borrow(self, source, oid):
        self._events([(P.BORROW, oid)])

    def handle_unborrow(self, source, oid):
        self._events([(P.UNBORROW, oid)])

    def handle_free(self, source, oid):
        self._events([(P.FREE, oid)])

    def _install_functions(self, functions):
        for fid, blob in functions:
            if not self.store.contains(fid):
                try:
                    self.store.put(fid, blob)
                except Exception:  # noqa: BLE001 - a racing local export put it first
                    if not self.store.contains(fid):
                        raise

    # ------------------------------------------------------------ objects: the sender
    def handle_fetch(self, source, oid, requester):
        if not self._serve(oid, requester):
            if TRACE:
                print(f"{time.perf_counter():.6f} [mpi node {self.me}] fetch {oid.hex()[-14:]} waits",
                      file=sys.stderr, flush=True)
            self.waiting.setdefault(oid, []).append(requester)

    def _serve(self, oid, requester) -> bool:
        """Sends oid to requester if sealed here, or passes the request on along its
        route; False if it is not here yet, or spilled and the store has no room to
        bring it back now (objects being sent hold theirs until sent: try again soon)."""
        try:
            buf = self.store.get(oid, 0)
        except ObjectStoreFullError:
            return False
        if buf is None:
            home = self._elsewhere(oid)
            if home is None:
                return False
            if home != requester:  # (else the requester has it, or will: it was sent there)
                self.send(home, ("fetch", oid, requester))
            elif TRACE:
                print(f"{time.perf_counter():.6f} [mpi node {self.me}] drops fetch {oid.hex()[-14:]}",
                      file=sys.stderr, flush=True)
            return True
        contained = list(self.scheduler.contains.get(oid, ()))
        if TRACE:
            print(f"{time.perf_counter():.6f} [mpi node {self.me}] sends {oid.hex()[-14:]} to node {requester}",
                  file=sys.stderr, flush=True)
        self.send_object(requester, oid, buf, contained)
        return True

    def _elsewhere(self, oid):
        """The node to pass a fetch of oid on to, or None if it will be made here: a
        task sent on from here has a route; an object of another node that this node
        neither runs nor holds lives with its owner."""
        from mpiray import _ids

        s = self.scheduler
        route = s.cluster.routes.get(oid[: _ids.TASK_ID_SIZE]) if s.cluster else None
        if route is not None:
            return route[0]
        owner = _ids.node_of(oid)
        if owner != self.me and oid not in s.kept and oid not in s.counts \
                and oid[: _ids.TASK_ID_SIZE] not in s.tasks:
            return owner
        return None

    def send_object(self, node, oid, buf, contained):
        rank = self.world.leader_of(node)
        n = buf.nbytes
        self._drain_outbox()  # header after every earlier message to that node
        raw = buf.cast("B") if buf.format != "B" else buf
        staged = n >= STAGE_MIN and node in self.same_host
        if staged:
            tag, chunk = TAG_STAGED + self.staged_sent % STAGED_TAGS, STAGE_CHUNK
            self.staged_sent += 1
        else:
            tag, chunk = TAG_DATA, CHUNK
        header = (self.cycle, ("object", oid, n, contained, chunk, tag))
        with self.send_lock:
            self.sends.append((self.comm.isend(header, dest=rank, tag=TAG_CTRL), None))
            if staged:
                self.sends.append((OutgoingObject(self.comm, self.MPI, rank, tag, raw,
                                                  self.stage_pool), buf))
                return
            for off in range(0, n, CHUNK):
                piece = raw[off: off + CHUNK]
                self.sends.append((self.comm.Isend([piece, self.MPI.BYTE], dest=rank, tag=TAG_DATA), buf))

    def push_object(self, node, oid, contained):
        """Sends a sealed object of this node's store to node without being asked (a
        generator's item, to its caller's node). Any thread; the buffer taken now keeps
        the object alive until it is sent."""
        buf = self.store.get(oid, 0)
        if buf is not None:
            self.pushes.append((node, oid, buf, list(contained)))
            self.poller.poke()

    def _drain_pushes(self):
        while self.pushes:
            node, oid, buf, contained = self.pushes.popleft()
            self.send_object(node, oid, buf, contained)

    def _retry_waiting(self):
        now = time.perf_counter()
        if now < self.next_waiting_check:
            return
        self.next_waiting_check = now + WAITING_CHECK_S
        for oid in list(self.waiting):
            still = [r for r in self.waiting[oid] if not self._serve(oid, r)]
            if still:
                self.waiting[oid] = still
            else:
                del self.waiting[oid]

    # ------------------------------------------------------------ objects: the receiver
    def handle_object(self, source, oid, nbytes, contained, chunk=CHUNK, tag=TAG_DATA):
        self.recvs.append(IncomingObject(self, source, oid, nbytes, contained, chunk, tag))

    def _progress_recvs(self):
        still = []
        for rx in self.recvs:
            if rx.test():
                rx.finish()
            else:
                still.append(rx)
        self.recvs = still


class IncomingObject:
    """One object arriving from another node, straight into this node's store; with no
    room there (what holds it is pinned: a getter keeps every object it read), into its
    spill file instead, as Ray's pull falls back to disk, so the get that wants it still
    gets it (read back from the file) instead of ObjectStoreFullError."""

    def __init__(self, agent, source, oid, nbytes, contained, chunk=CHUNK, tag=TAG_DATA,
                 discard=False):
        self.agent, self.oid, self.contained = agent, oid, contained
        self.error, self.discard, self.on_disk = None, discard, None
        self.source_node = agent.node_by_rank.get(source)
        try:
            if discard:
                raise LookupError("stale")
            try:
                self.buf = agent.store.create_object(oid, nbytes)
            except (ObjectStoreFullError, ValueError):   # (full, or bigger than the store)
                if not nbytes:
                    raise
                self.on_disk = SpillTarget(agent.store.spill_path(oid), nbytes)
                self.buf = self.on_disk.view
        except Exception as exc:  # noqa: BLE001 - already here, or no room: still drain it
            self.buf = memoryview(bytearray(nbytes))
            self.error = exc
        MPI = agent.MPI
        # (chunk and tag as the sender cut and marked them: staged_send.py)
        self.reqs = [agent.comm.Irecv([self.buf[off: off + chunk], MPI.BYTE], source=source, tag=tag)
                     for off in range(0, nbytes, chunk)]

    def test(self) -> bool:
        return all(req.Test() for req in self.reqs)

    def finish(self):
        store, oid = self.agent.store, self.oid
        self.reqs = self.buf = None   # unpins: the object is complete
        if self.discard:
            return
        if self.on_disk is not None and self.error is None:
            self.error = self.on_disk.publish(store, oid)
        elif self.error is None:
            store.seal(oid)
        elif not store.contains(oid):
            # no room for it here: the getter sees why instead of waiting forever
            try:
                store.put(oid, serialize_error(self.error).to_bytes())
            except Exception:  # noqa: BLE001 - nothing more we can do
                return
        self.agent._events([(P.ARRIVED, oid, self.contained if self.error is None else [],
                             self.source_node)])


def _brief(msg):
    return " ".join(x.hex()[:8] + ".." + x.hex()[-8:] if isinstance(x, bytes) and len(x) in (16, 20)
                    else type(x).__name__ if isinstance(x, (bytes, list, dict)) else repr(x)
                    for x in msg)


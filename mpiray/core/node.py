"""A node, seen from its driver: the segments, the zygote, the scheduler and its threads.

    Node.start()
      ├─ store segment, shared task queue, inbox queue     (native, /dev/shm)
      ├─ zygote process ──forks──► num_cpus task workers (more on demand, actors)
      ├─ inbox thread:   inbox ──events──► scheduler.handle_events (core/inbox_pump.py;
      │                  the driver drains it too while it waits for a task's return)
      ├─ monitor thread: zygote reports (started/died) ──► inbox (ordered after the
      │                  dead worker's own last events); the zygote itself dead: a new
      │                  one, and each of its workers reported dead (_restart_zygote)
      └─ log thread:     each worker's stdout/stderr pipes ──► driver's terminal, line by
                         line, prefixed (core/worker_output.py)
    Node.stop(): close queues, zygote kills every child, unlink every segment.
"""

from __future__ import annotations

import gc
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection

from mpiray import _ids
from mpiray.core import actor_spec as A
from mpiray.core import names
from mpiray.core import protocol as P
from mpiray.core.inbox_pump import InboxPump
from mpiray.core.native import Queue, QueueClosed, Store
from mpiray.core.resources import NodeResources
from mpiray.core.scheduler import Scheduler
from mpiray.core.task_spec import TaskSpec
from mpiray.core.unhandled_errors import delete_reporting
from mpiray.core.worker_main import GC_SIGNAL
from mpiray.exceptions import ObjectStoreFullError
from mpiray.serialization import serialize_error

TASK_QUEUE_SLOTS, TASK_SLOT_SIZE = 1024, 4096   # (a few tasks wait there: CPUs + dispatched ahead)
INBOX_SLOTS, INBOX_SLOT_SIZE = 2048, 4096       # both mapped in by every process (Queue.populate)
ACTOR_QUEUE_SLOTS, ACTOR_SLOT_SIZE = 1024, 2048
MAX_TASK_SLOTS = 250        # consumer slots of the shared task queue
PRESTART_WORKERS = 64       # task workers started by init (at most; the rest on demand)
INLINE_RETURNS = 64 << 10   # returns up to this size travel with a task's end (MPI mode)


# A node whose zygote dies gets a new one this many times (a zygote that keeps dying is
# a fault of the host, not of a job: past that, the node says so and runs nothing more).
ZYGOTE_RESTARTS = 5


class Node:
    def __init__(self, config, node_index=0, num_nodes=1):
        self.config = config
        self.node_index, self.num_nodes = node_index, num_nodes
        self.agent = None          # mpi.agent.Agent under MPI with more than one node
        self.cluster_table = None  # every node's {"totals", "host", ...} under MPI
        self.session = secrets.token_hex(4)
        # The index leads the id, so a node id alone says which node it names
        # (NodeAffinitySchedulingStrategy needs no table lookup in a worker).
        self.node_id = _ids.new_node_id(node_index)
        self.threads = []
        self.stopped = False
        self.zygote_restarts = 0
        self.commands_lock = threading.Lock()   # (one for every zygote the node has)

    # ------------------------------------------------------------ start
    def start(self):
        c = self.config
        s = self.session
        spill_dirs = c.spill_dirs or [c.spill_dir]
        for spill_dir in spill_dirs:
            os.makedirs(spill_dir, exist_ok=True)
        self.actor_queues = {}
        self._launch_zygote()  # its interpreter boots while the segments are made
        try:
            self.store = Store.create(names.store_name(s), c.object_store_memory, "\n".join(spill_dirs),
                                      prefault=c.prefault_store)
            self.task_queue = Queue.create(names.task_queue_name(s), TASK_QUEUE_SLOTS, TASK_SLOT_SIZE)
            self.inbox = Queue.create(names.inbox_name(s), INBOX_SLOTS, INBOX_SLOT_SIZE)
            self.task_queue.populate()
            self.inbox.populate()
            if self.reports.recv()[0] != "ready":
                raise RuntimeError("mpiray's worker launcher (zygote) failed to start")
        except BaseException:
            self._abort_start()
            raise
        self.io = NodeIO(self)
        totals = c.totals()
        totals.update(ray_node_resources(self.node_index, c.object_store_memory, c.memory_bytes()))
        resources = NodeResources(totals, c.gpu_ids)
        # (num_cpus may name more CPUs than task workers can be: I/O-bound jobs declare
        # hundreds; beyond PRESTART_WORKERS they start when tasks come, and retire idle)
        self.scheduler = Scheduler(self.io, resources, max_task_workers=MAX_TASK_SLOTS,
                                   min_task_workers=min(c.num_cpus, PRESTART_WORKERS))
        self.scheduler.interactive = self.node_index == 0 and _interactive_driver()
        self.pump = InboxPump(self.inbox, self.store, self.scheduler)
        self._thread(self.pump.serve_forever, "mpiray-inbox")
        self._thread(self._monitor_loop, "mpiray-monitor")
        self._start_log_thread()
        self.memory_monitor = None
        if c.memory_refresh_s > 0:
            from mpiray.core.memory_monitor import MemoryMonitor
            from mpiray.util.network import get_node_ip_address

            self.memory_monitor = MemoryMonitor(self.scheduler, c.memory_threshold, c.memory_refresh_s,
                                                {"ip": get_node_ip_address(), "id": self.node_id})
            self._thread(self.memory_monitor.run, "mpiray-memory")
        with self.scheduler.lock:
            for _ in range(self.scheduler.min_task_workers):
                self.scheduler.spawn_worker("task")

    def _thread(self, target, name):
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def _abort_start(self):
        """start() failed half way: no zygote and no segment may outlive it."""
        self.zygote.kill()
        self.zygote.wait()
        for name in ("store", "task_queue", "inbox"):
            if hasattr(self, name):
                _quietly(getattr(self, name).destroy)
        names.remove_session_segments(self.session)

    def join_cluster(self, table, send):
        """MPI: every node's {"totals", "host", ...}; the scheduler places across them."""
        from mpiray.core.cluster import Cluster

        with self.scheduler.lock:
            self.scheduler.cluster = Cluster(self.node_index, table, send)
        self.cluster_table = table

    def _launch_zygote(self):
        cmd_r, cmd_w = os.pipe()
        rep_r, rep_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.output_socket, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.zygote = subprocess.Popen(
            [sys.executable, "-m", "mpiray.core.zygote", str(cmd_r), str(rep_w),
             str(zygote_end.fileno())],
            pass_fds=(cmd_r, rep_w, zygote_end.fileno()), stdin=subprocess.DEVNULL,
            stdout=out_w, stderr=err_w, env=_without_mpi_launcher(os.environ),
            start_new_session=True,  # Ctrl-C in the terminal reaches the driver only
        )
        zygote_end.close()
        for fd in (cmd_r, rep_w, out_w, err_w):
            os.close(fd)
        self.commands = Connection(cmd_w, readable=False)
        self.reports = Connection(rep_r, writable=False)
        preload = [m for m in ("numpy",) if m in sys.modules]
        self.commands.send({
            "session": self.session, "node_id": self.node_id, "sys_path": list(sys.path),
            "cwd": os.getcwd(), "preload": preload, "cleanup_on_exit": True,
            "spill_dirs": self.config.spill_dirs or [self.config.spill_dir],
            "job_id": self.config.job_id or self.session,
            "namespace": self.config.namespace, "node_index": self.node_index,
            "num_nodes": self.num_nodes, "runtime_env": self.config.runtime_env,
            "task_events": self.config.task_events,
            "default_actor_lifetime": self.config.default_actor_lifetime,
            "actor_graceful_shutdown_s": self.config.graceful_shutdown_s,
        })

    def command(self, *cmd):
        with self.commands_lock:
            try:
                self.commands.send(cmd)
            except (OSError, ValueError):
                pass  # zygote gone: shutting down

    # ------------------------------------------------------------ threads
    def _monitor_loop(self):
        while True:
            try:
                msg = self.reports.recv()
            except (EOFError, OSError):
                if self.stopped or not self._restart_zygote():
                    return
                continue
            if msg[0] == "ready":
                continue   # (a new zygote is up: _restart_zygote)
            if msg[0] == "started":
                event = (P.WORKER_STARTED, msg[1], msg[2], msg[3])
            else:
                event = (P.WORKER_DIED, msg[1], msg[2], msg[3])
            try:
                self.inbox.push(P.dumps([event]))
            except QueueClosed:
                return

    def _restart_zygote(self) -> bool:
        """The zygote died under a running node (killed, or crashed), and its workers with
        it (PR_SET_PDEATHSIG). A new one takes its place, and every worker the node had is
        reported dead: their tasks are retried or fail with WorkerCrashedError, their
        actors restart or die, as after any worker's death, instead of waiting for ever.
        False (nothing done) when the node is stopping, or after ZYGOTE_RESTARTS."""
        rc = self.zygote.wait()
        status = f"killed by signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit code {rc}"
        if self.stopped or self.zygote_restarts >= ZYGOTE_RESTARTS:
            print(f"(mpiray) error: this node's worker factory (zygote) died ({status}); "
                  "no task or actor can start here any more", file=sys.stderr, flush=True)
            return False
        self.zygote_restarts += 1
        print(f"(mpiray) warning: this node's worker factory (zygote, pid {self.zygote.pid}) "
              f"died ({status}) and its workers with it: a new one starts", file=sys.stderr,
              flush=True)
        old = (self.commands, self.reports)
        with self.scheduler.lock:   # (no worker is spawned meanwhile; same lock order as spawns)
            with self.commands_lock:
                self._launch_zygote()
            lost = [(slot, w.pid) for slot, w in self.scheduler.workers.items()]
        for pipe in old:
            _quietly(pipe.close)
        for _, pid in lost:   # (what they started: each worker led a process group)
            _quietly(lambda pid=pid: os.killpg(pid, signal.SIGKILL))
        self._start_log_thread()   # (the new zygote's output pipes)
        why = f"killed: its zygote died ({status})"
        try:
            self.inbox.push(P.dumps([(P.WORKER_DIED, slot, pid, why) for slot, pid in lost]))
        except QueueClosed:
            return False
        return True

    def _start_log_thread(self):
        from mpiray.core.worker_output import OutputRouter, allow_worker_pipes

        allow_worker_pipes()
        router = OutputRouter(self.out_r, self.err_r, self.output_socket, self.config.log_to_driver,
                              self._worker_log_name())
        self._thread(router.run, "mpiray-log")

    def _worker_log_name(self):
        """(slot, pid) -> where that worker's log files go (core/worker_logs.py)."""
        from mpiray.core import worker_logs
        from mpiray.runtime_context import worker_hex

        directory = worker_logs.log_dir(self.config.spill_dir)
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            return None   # (no session directory to write in: no log files)
        job = self.config.job_id or self.session
        return lambda slot, pid: worker_logs.stem(
            directory, worker_hex(self.session, f"{self.session}-{slot}", pid), job, pid)

    # ------------------------------------------------------------ stop
    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        if self.memory_monitor is not None:
            self.memory_monitor.stop()   # (no kill of a worker the stop ends anyway)
        for q in [self.task_queue] + list(self.actor_queues.values()):
            q.close()
        self.command("exit")
        try:
            self.zygote.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.zygote.kill()
            self.zygote.wait()
        self.inbox.close()
        for t in self.threads:
            t.join(timeout=5)
        self.commands.close()
        self.reports.close()
        for q in [self.task_queue, self.inbox] + list(self.actor_queues.values()):
            _quietly(q.destroy)
        self.store.close()
        _quietly(self.store.destroy)
        names.remove_session_segments(self.session)


def node_resource(index: int) -> str:
    return f"node:{index}"


# What Ray puts on the driver's node but not on others (some programs pin work there).
HEAD_NODE_RESOURCE = "node:__internal_head__"


def ray_node_resources(index: int, store_bytes: int, memory_bytes: int) -> dict:
    """The resources every node has beside its CPUs, GPUs and custom ones, with Ray's
    names: node:<index> (only this node), node:<ip> (this host's nodes), the head's
    mark, `memory` and `object_store_memory` (bytes; _config.Config.memory_bytes)."""
    from mpiray.util.network import get_node_ip_address

    out = {node_resource(index): 1.0, f"node:{get_node_ip_address()}": 1.0,
           "object_store_memory": float(store_bytes)}
    if memory_bytes:
        out["memory"] = float(memory_bytes)
    if index == 0:
        out[HEAD_NODE_RESOURCE] = 1.0
    return out


def _without_mpi_launcher(environ):
    """Workers are not MPI processes: the launcher's variables would make a task that
    imports mpi4py try to join the job."""
    prefixes = ("PMI_", "PMIX_", "OMPI_", "HYDRA_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "PRTE_")
    return {k: v for k, v in environ.items() if not k.startswith(prefixes)}


def _interactive_driver() -> bool:
    """Ray's interactive mode: a driver whose __main__ is no file (a console, a notebook,
    python -c), or one with a prompt (sys.ps1: what a console or Jupyter sets, and what
    Ray's core worker looks at)."""
    import __main__

    return hasattr(sys, "ps1") or not hasattr(__main__, "__file__")


def _quietly(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - best effort at teardown
        pass


class NodeIO:
    """Everything the scheduler does to the outside world, in one place."""

    def __init__(self, node):
        self.node = node
        self.store = node.store
        self.free_task_slots = list(range(MAX_TASK_SLOTS - 1, -1, -1))
        self.next_actor_slot = 100000

    # tasks
    def forward_task(self, node, spec):
        cluster = self.node.scheduler.cluster
        functions = cluster.functions_for(node, [spec.function_id], self.read_blob)
        self.node.agent.send(node, ("task", spec.to_bytes(), functions, cluster.me))

    def push_object(self, node, oid, contained):
        self.node.agent.push_object(node, oid, contained)

    def forward_cancel(self, node, task_id, force, recursive):
        self.node.agent.send(node, ("cancel", task_id, force, recursive))

    def small_returns(self, oids, contains, limit=INLINE_RETURNS):
        """[(oid, bytes, contained)] of the sealed oids, while they total under limit.
        Returns holding refs stay (and are fetched): dropping our copy would drop our
        hold on those refs before the receiver's borrow of them is counted."""
        out, total = [], 0
        for oid in oids:
            if contains.get(oid):
                continue
            try:
                # (the size first: a spilled big return is not read back just to be
                # left out, and one that cannot be read back now is fetched later)
                if total + self.store.size_of(oid) > limit:
                    continue
                buf = self.store.get(oid, 0)
            except (KeyError, ObjectStoreFullError):
                continue
            if buf is None:
                continue
            if total + buf.nbytes <= limit:
                total += buf.nbytes
                out.append((oid, bytes(buf), list(contains.get(oid, ()))))
            del buf
        return out

    def put_bytes(self, oid, data):
        from mpiray._native.store import ObjectExistsError

        try:
            self.store.put(oid, data)
        except ObjectExistsError:
            pass  # already here, or arriving now by a fetch that raced it

    def read_blob(self, oid):
        buf = self.store.get(oid, 0)
        if buf is None:
            raise KeyError(f"object {oid.hex()} is not on this node")
        data = bytes(buf)
        del buf
        return data

    def push_task(self, spec):
        q = self.node.task_queue
        try:
            q.push(P.encode_item(spec.to_bytes(), q.max_payload, self.store, _ids.new_item_id))
        except QueueClosed:
            if not self.node.stopped:
                raise  # (stopping: the inbox still applies the last workers' events)

    def take_queued_tasks(self):
        """Pops every item now on the task queue: [(item, its task id or None)]
        (Scheduler._reclaim_ahead; push_item puts one back, drop_item frees one)."""
        return [(item, None if item == P.TERMINATE else
                 TaskSpec.from_bytes(P.decode_item(item, self.store)).task_id)
                for item in _pop_all(self.node.task_queue)]

    def drop_item(self, item):
        P.release_item(item, self.store)

    def push_item(self, item):
        try:
            self.node.task_queue.push(item)
        except QueueClosed:
            pass  # stopping anyway

    def retire_task_worker(self):
        try:
            self.node.task_queue.push(P.TERMINATE)
        except QueueClosed:
            pass  # stopping anyway

    def recover_task_queue(self, slot):
        return self._decode_all(self.node.task_queue.recover(slot)) if slot < MAX_TASK_SLOTS else []

    def _decode_all(self, items):
        specs = []
        for item in items:
            if item == P.TERMINATE:
                continue
            specs.append(TaskSpec.from_bytes(P.decode_item(item, self.store)))
            P.release_item(item, self.store)
        return specs

    # workers
    def spawn_worker(self, kind, actor_id, devices, options):
        if kind == "task":
            slot = self.free_task_slots.pop()
            options = dict(options, label="worker")
        else:
            slot = self.next_actor_slot
            self.next_actor_slot += 1
        self.node.command("fork", slot, kind, actor_id, devices, options)
        return slot

    def release_slot(self, slot):
        if slot < MAX_TASK_SLOTS and slot not in self.free_task_slots:
            self.free_task_slots.append(slot)

    def kill_worker(self, slot, pid, wait_s=0.0):
        """SIGKILL (by the zygote); wait_s: up to this long until the process is gone
        (a kill that lets the actor restart: its next calls must find the new one)."""
        self.node.command("kill", slot)
        deadline = time.monotonic() + wait_s
        while pid and time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                        return
            except OSError:
                return
            time.sleep(0.001)

    # objects
    def put_error(self, oid, exc):
        try:
            self.store.put(oid, serialize_error(exc).to_bytes())
        except Exception:  # noqa: BLE001 - already sealed
            pass

    def global_gc(self):
        """Every worker and actor of the node runs gc.collect() (GC_SIGNAL's handler,
        core/worker_main.py), and so does this process, in a thread of its own."""
        for kind in ("task", "actor"):
            self.node.command("signal", GC_SIGNAL, kind)
        threading.Thread(target=gc.collect, name="mpiray-gc", daemon=True).start()

    def inbox_backlog(self):
        """(core/inbox_pump.py) The count of applied inbox items at which everything
        pushed so far is applied; None if nothing waits."""
        return self.node.pump.backlog_mark()

    def inbox_applied(self):
        return self.node.pump.applied

    def delete_object(self, oid):
        try:
            delete_reporting(self.store, oid)   # (a task error nobody read is reported)
        except KeyError:
            pass

    def drop_copy(self, oid):
        """Deletes a copy that came from another node, unreported (errors are reported
        where the object was made, or by the node that read it)."""
        try:
            self.store.delete(oid)
        except KeyError:
            pass

    def put_reply(self, reply, result):
        try:
            self.store.put(reply, P.dumps(result))
        except Exception:  # noqa: BLE001 - (store full: the asker times out and says so)
            pass

    def answer_query(self, what, reply):
        """A worker's nodes() / cluster_resources() / available_resources()."""
        from mpiray.core import cluster_info

        try:
            result = cluster_info.answer(self.node, what, from_worker=True)
        except Exception as exc:  # noqa: BLE001 - the asker raises it
            result = exc
        try:
            self.store.put(reply, P.dumps(result))
        except Exception:  # noqa: BLE001 - (store full: the asker times out and says so)
            pass

    def stopping(self) -> bool:
        return self.node.stopped

    def reap_dead_clients(self):
        """Pins and half-made objects of store clients whose process is gone."""
        self.store.reap_dead_clients()

    def ids_made_by(self, nonce):
        """The sealed objects here whose ids start with nonce (one process's)."""
        return self.store.ids_with_prefix(nonce)

    def contains(self, oid):
        return self.store.contains(oid)

    # cancel
    def mark_cancelled(self, task_id, force, recursive):
        """Marks the task cancelled (force: to be killed) and signals the task workers; a
        task marked before (it caught that cancel's interrupt) keeps its first mark, which
        says whether its worker cancels the tasks it submitted too."""
        self._mark(_ids.object_id(task_id, _ids.CANCEL_INDEX),
                   _ids.CANCEL_RECURSIVE if recursive else b"1")
        if force:
            self._mark(_ids.object_id(task_id, _ids.FORCE_CANCEL_INDEX), b"1")
        self.node.command("signal", signal.SIGUSR2 if force else signal.SIGUSR1, "task")

    def _mark(self, oid, value):
        if not self.store.contains(oid):
            try:
                self.store.put(oid, value)
            except Exception:  # noqa: BLE001 - put meanwhile
                pass

    def mark_call_cancelled(self, task_id, recursive=True):
        """An actor call's cancel mark (its actor's process looks for it; no signal); its
        value says whether what the call submitted is cancelled too."""
        try:
            self.store.put(_ids.object_id(task_id, _ids.CANCEL_INDEX),
                           _ids.CANCEL_RECURSIVE if recursive else b"1")
        except Exception:  # noqa: BLE001 - marked already
            pass

    def clear_cancel_marks(self, task_id):
        for index in (_ids.CANCEL_INDEX, _ids.FORCE_CANCEL_INDEX):
            self.delete_object(_ids.object_id(task_id, index))

    # actors
    def actor_queue(self, actor_id):
        q = self.node.actor_queues.get(actor_id)
        if q is None:
            try:
                q = Queue.attach(names.actor_queue_name(self.node.session, actor_id))
            except (FileNotFoundError, OSError):
                return None
            self.node.actor_queues[actor_id] = q
        return q

    def recover_actor_calls(self, actor_id, slots):
        """The calls a dead actor process held, from its `slots` recorded queue slots
        (actor_worker.recorded_slots)."""
        q = self.actor_queue(actor_id)
        if q is None:
            return []
        items = []
        for consumer in range(slots):
            items += q.recover(consumer)
        return self._decode_all(items)

    def take_queued_calls(self, actor_id):
        """The calls waiting in a dead actor process's queue, taken out in order:
        (specs, whether the actor's TERMINATE was among them)."""
        q = self.actor_queue(actor_id)
        if q is None:
            return [], False
        items = _pop_all(q)
        return self._decode_all(items), P.TERMINATE in items

    def mark_restarting(self, actor_id, on: bool):
        """While an actor restarts, the calls made to it that are not retried fail at
        once (runtime.call_actor looks for this mark)."""
        if on:
            try:
                self.store.put(A.restarting_key(actor_id), b"")
            except Exception:  # noqa: BLE001 - marked already
                pass
        else:
            self.delete_object(A.restarting_key(actor_id))

    def push_actor_call_or_false(self, actor_id, spec, *, wait) -> bool:
        """False if the actor's queue is gone (or, not `wait`ing, full). Only a thread
        holding no lock waits (core/call_backlog.py): never the scheduler."""
        q = self.actor_queue(actor_id)
        if q is None:
            return False
        try:
            item = P.encode_item(spec.to_bytes(), q.max_payload, self.store, _ids.new_item_id)
            if q.push(item, None if wait else 0):
                return True
            P.release_item(item, self.store)
            return False
        except QueueClosed:
            return False

    def forward_actor_queue(self, actor_id, node):
        """This node's queue of an actor placed on another node becomes a proxy."""
        q = self.actor_queue(actor_id)
        if q is not None:
            self.node.agent.add_proxy(actor_id, q, node)

    def stop_forwarding(self, actor_id):
        self.node.agent.remove_proxy(actor_id)

    def adopt_actor(self, aspec):
        """Queue and spec of an actor that another node placed here."""
        aid = aspec.actor_id
        q = Queue.create(names.actor_queue_name(self.node.session, aid), ACTOR_QUEUE_SLOTS,
                         ACTOR_SLOT_SIZE, A.queue_consumers(aspec))
        self.node.actor_queues[aid] = q
        self.store.put(A.spec_key(aid), P.dumps(aspec))

    def calls_queued(self, actor_id) -> bool:
        q = self.actor_queue(actor_id)
        return q is not None and q.size() > 0

    def terminate_actor(self, actor_id):
        q = self.actor_queue(actor_id)
        try:
            if q is not None and not q.push(P.TERMINATE, 5.0):
                self.node.scheduler.actors.kill(actor_id, True)
        except QueueClosed:
            pass  # killed already (kill closes its queue; its death is on the way)

    def close_actor_queue(self, actor_id, drain=True):
        q = self.actor_queue(actor_id)
        if q is None:
            return []
        q.close()
        if not drain:
            return []
        items = _pop_all(q)
        self.node.actor_queues.pop(actor_id, None)
        _quietly(q.destroy)
        self.delete_object(A.spec_key(actor_id))
        return self._decode_all(items)

    def publish_actor_death(self, actor_id, cause):
        self.put_error(A.death_key(actor_id), cause)

    def unregister_actor_name(self, aspec):
        if not aspec.name:
            return
        from mpiray.core import actor_names

        key = A.name_key(aspec.name, aspec.namespace)
        cluster = self.node.scheduler.cluster
        if cluster is None or cluster.me == 0:
            actor_names.apply(self.store, "delete", key, aspec.actor_id)
        else:
            cluster.send(0, ("name_op", "delete", key, aspec.actor_id, None, cluster.me))

    def warn(self, message):
        print(f"(mpiray) warning: {message}", file=sys.stderr, flush=True)


def _pop_all(q) -> list:
    """Every item a queue holds now (closed and drained: what was left)."""
    items = []
    while True:
        try:
            item = q.try_pop()
        except QueueClosed:
            return items
        if item is None:
            return items
        items.append(item)


def default_spill_dir(session, temp_dir=None):
    """The session's directory (spill files): under init(_temp_dir=), else $RAY_TMPDIR, as
    Ray's session directories, else the system's temporary directory."""
    base = temp_dir or os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    return os.path.join(base, f"mpiray-spill-{os.getuid()}-{session}")

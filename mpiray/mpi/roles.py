"""The rank split, in one place: rank 0 drives, every other rank serves and never returns.

    rank 0 (driver)                         leader of node k              other ranks
    init() ─► World ─────────────── collective ────────────────────────────────┐
      │ start own node (0)                    serve():                    wait for "exit"
      │ ("start", cfg) ─────────────────────► start node k                  (sleeping)
      │ ◄──────────────────── ("started", k, info)                           │
      │ ("cluster", table) ─────────────────► install the cluster view       │
      ▼ user script runs; agents carry tasks, objects, refs                  │
    shutdown() ("stop") ────────────────────► stop node k, ("stopped") ──►   │
    process exit ("exit") ──────────────────► exit ─────────────────────────►exit

Code before init() runs on every rank; code after it runs on rank 0 only. A rank that
dies takes the job down (mpiexec's own rule); an exception in the driver reaches every
rank as "exit" from rank 0's exit handler.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from mpiray.core import state_report
from mpiray.core.timeline import local_log
from mpiray.mpi.agent import TAG_CTRL, Agent
from mpiray.mpi.world import World

START_TIMEOUT_S = 120
TAG_BYE = 13   # a serving rank's answer to "exit", as it leaves
# How long the driver's exit waits for every rank's answer: one that is hung (stopped, or
# stuck where it cannot read) would otherwise keep MPI_Finalize, and the job, for ever.
EXIT_TIMEOUT_S = float(os.environ.get("MPIRAY_EXIT_TIMEOUT_S", "30"))
_world = None
_cycle = 0          # rank 0: how many clusters this process has formed


def existing_world():
    """This rank's World if built already (init() once ran under the launcher), else None."""
    return _world


def world() -> World:
    """This rank's World (built collectively the first time, by every rank)."""
    global _world
    if _world is None:
        import mpi4py

        mpi4py.rc.thread_level = "multiple"
        _world = World()
        _warn_if_alone(_world)
    return _world


def _warn_if_alone(w: World, environ=os.environ) -> bool:
    """Slurm started several tasks, but MPI sees this one alone (srun gave MPI no process
    management interface): each task runs the script as a job of its own, which may be
    meant (independent jobs) or not; either way the user is told, once."""
    tasks = environ.get("SLURM_NTASKS") or environ.get("SLURM_NPROCS") or "1"
    if w.size != 1 or "SLURM_PROCID" not in environ or not tasks.isdigit() or int(tasks) <= 1:
        return False
    print(f"(mpiray) warning: Slurm started this as task {environ['SLURM_PROCID']} of {tasks}, "
          f"but MPI sees 1 rank (srun gave it no PMI): this task runs as a job of its own. "
          f"For one job across the tasks, launch with srun --mpi=pmi2 (or pmix), or mpiexec.",
          file=sys.stderr, flush=True)
    return True


def node_config(w: World, cfg: dict):
    """The config of a node that is not the driver's: its own cores and GPUs, a share of
    the host's shared memory (its nodes split it), the driver's namespace."""
    from mpiray import _config

    cpus = _env_int("MPIRAY_NUM_CPUS") or len(os.sched_getaffinity(0))
    store = _env_int("MPIRAY_OBJECT_STORE_MEMORY") or \
        _config.default_store_capacity() // len(nodes_on_my_host(w))
    config = _config.make_config(
        num_cpus=cpus, object_store_memory=store, _visible_gpus=gpu_share(w),
        resources=env_resources(), labels=env_json("MPIRAY_LABELS", "label values"),
        namespace=cfg.get("namespace"), _prefault_store=cfg.get("prefault", False))
    config.runtime_env = cfg.get("runtime_env")  # the driver's, checked there already
    config.task_events = bool(cfg.get("task_events"))
    config.log_to_driver = cfg.get("log_to_driver", True)
    config.default_actor_lifetime = cfg.get("default_actor_lifetime", "non_detached")
    config.graceful_shutdown_s = cfg.get("graceful_shutdown_s", config.graceful_shutdown_s)
    config.memory_threshold, config.memory_refresh_s = cfg.get(
        "memory_monitor", (config.memory_threshold, config.memory_refresh_s))
    config.job_id = cfg.get("job_id", "")
    config.host_nodes = len(nodes_on_my_host(w))
    return config


def nodes_on_my_host(w: World) -> list:
    return [i for i, r in enumerate(w.leaders) if w.hosts[r] == w.hostname]


def gpu_share(w: World) -> list:
    """The GPUs this node may hand out: what CUDA_VISIBLE_DEVICES (which Slurm's
    --gpus-per-task narrows) or the driver lists, split evenly among the nodes of this
    host when there are several (MPIRAY_NODE_PER_RANK=1), so no GPU is handed out twice."""
    from mpiray import _config

    visible = _config.detect_gpu_ids()
    here = nodes_on_my_host(w)
    if len(here) <= 1 or "CUDA_VISIBLE_DEVICES" in os.environ and _narrowed_by_slurm():
        return visible
    return visible[here.index(w.node_index)::len(here)]


def _narrowed_by_slurm() -> bool:
    return "SLURM_STEP_GPUS" in os.environ or "SLURM_JOB_GPUS" in os.environ and \
        "SLURM_GPUS_PER_TASK" in os.environ


def env_resources() -> dict:
    """MPIRAY_RESOURCES='{"name": amount, ...}': custom resources of this rank's node
    (as `ray start --resources` gives a Ray node its own; set per rank by the launcher,
    e.g. an MPMD `mpiexec ... : -n 1 -env MPIRAY_RESOURCES '{"bigmem": 1}' ...`).
    MPIRAY_LABELS='{"key": "value"}' gives it labels the same way (`ray start --labels`)."""
    return env_json("MPIRAY_RESOURCES", "resource amounts")


def env_json(name: str, of: str) -> dict:
    import json

    text = os.environ.get(name, "").strip()
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{name} must be a JSON object of {of}, got {text!r}: {exc}") from None
    if not isinstance(found, dict) or not all(isinstance(k, str) for k in found):
        raise ValueError(f"{name} must be a JSON object of {of}, got {text!r}")
    return found


def _env_int(name: str) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number, got {text!r}")
    return int(text)


def node_info(w: World, node) -> dict:
    from mpiray.util.network import get_node_ip_address

    return {"totals": dict(node.scheduler.res.totals), "host": w.hostname, "rank": w.rank,
            "ip": get_node_ip_address(), "pid": os.getpid(),
            "node_id": node.node_id, "index": w.node_index, "labels": dict(node.config.labels)}


# What the driver may ask every node (DriverLink.ask), answered from its scheduler.
ASKABLE = {"task_log": local_log, "named_actors": state_report.named_actors,
           "actors": state_report.actors, "tasks": state_report.tasks,
           "objects": state_report.objects, "workers": state_report.workers,
           "store_stats": lambda scheduler: scheduler.io.store.stats()}


# ---------------------------------------------------------------- driver side
class DriverLink:
    """Rank 0's end of the lifecycle conversation; lives from init() to shutdown()."""

    def __init__(self, w: World, node):
        self.w, self.node = w, node
        self.started = {}
        self.stopped = set()
        self.answers = {}  # node -> its answer to the last ask()
        self.asking = threading.Lock()   # (one ask at a time: answers go into one dict)
        self.event = threading.Event()
        global _cycle
        _cycle += 1
        self.cycle = _cycle
        self.agent = Agent(w, 0, node.store, self.on_control, _cycle, len(nodes_on_my_host(w)))
        self.agent.scheduler = node.scheduler

    def on_control(self, source, msg):
        if msg[0] == "started":
            self.started[msg[1]] = msg[2]
        elif msg[0] == "stopped":
            self.stopped.add(msg[1])
        elif msg[0] == "failed":
            self.started[msg[1]] = RuntimeError(msg[2])
        elif msg[0] == "answer":
            self.answers[msg[1]] = msg[2]
        self.event.set()

    def ask(self, question: str) -> list:
        """[(node, its answer)] of every other node to a question of ASKABLE (one at a
        time, from the driver's threads; never from a scheduler handler)."""
        with self.asking:
            others = range(1, self.w.num_nodes)
            self.answers = {}
            for k in others:
                self.agent.send(k, ("ask", question))
            self._wait(lambda: len(self.answers) == len(others), f"every node's {question}", 60)
            return sorted(self.answers.items())

    def start(self, cfg: dict):
        self.agent.start()
        cfg = dict(cfg, cycle=self.cycle)
        others = range(1, self.w.num_nodes)
        for k in others:
            self.agent.send(k, ("start", cfg))
        self._wait(lambda: len(self.started) == len(others), "every node to start")
        for k in others:
            if isinstance(self.started[k], Exception):
                raise RuntimeError(f"node {k} ({self.w.describe_rank(self.w.leader_of(k))}) "
                                   f"failed to start: {self.started[k]}")
        table = [node_info(self.w, self.node)] + [self.started[k] for k in others]
        for k in others:
            self.agent.send(k, ("cluster", table))
        self.node.join_cluster(table, self.agent.send)
        self.agent.watch_peers()

    def stop(self):
        others = range(1, self.w.num_nodes)
        for k in others:
            self.agent.send(k, ("stop",))
        try:
            self._wait(lambda: len(self.stopped) == len(others), "every node to stop", 30)
        finally:
            self.agent.stop()

    def _wait(self, done, what, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while not done():
            if self.agent.failure is not None:
                raise RuntimeError(f"mpiray's MPI thread failed: {self.agent.failure}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
            self.event.wait(0.05)
            self.event.clear()


def say_exit(w: World):
    """Rank 0's last word: every other rank leaves its serving loop and exits."""
    reqs = [w.comm.isend((None, ("exit",)), dest=r, tag=TAG_CTRL) for r in range(1, w.size)]
    w.MPI.Request.Waitall(reqs)
    _await_answers(w)


def _await_answers(w: World, timeout: float = EXIT_TIMEOUT_S):
    """Every other rank answers "exit" as it leaves; if one has not within timeout, the
    job is ended (naming it) instead of hanging in MPI_Finalize. Polled every 2 ms, so an
    exit costs no busy core."""
    waiting, status = set(range(1, w.size)), w.MPI.Status()
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        if w.comm.Iprobe(w.MPI.ANY_SOURCE, TAG_BYE, status):
            source = status.Get_source()
            w.comm.recv(source=source, tag=TAG_BYE)
            waiting.discard(source)
        else:
            time.sleep(0.002)
    if waiting:
        silent = ", ".join(w.describe_rank(r) for r in sorted(waiting))
        print(f"mpiray: {silent} did not answer the driver's exit within {timeout:g} s "
              "(hung, or stopped?): ending the job (MPIRAY_EXIT_TIMEOUT_S sets the wait)",
              file=sys.stderr, flush=True)
        w.comm.Abort(1)


# ---------------------------------------------------------------- serving ranks
def serve(w: World):
    """Every rank but 0: serve the driver's init()/shutdown() cycles, then exit."""
    _ignore_script_timers()
    _leave_ctrl_c_to_the_driver()
    code = 0
    try:
        if w.is_leader:
            NodeServer(w).run()
        else:
            _wait_for_exit(w)
    except KeyboardInterrupt:  # a second Ctrl-C: the driver did not end after the first
        sys.stderr.flush()
        w.comm.Abort(130)
    except BaseException:  # noqa: BLE001 - say why, then take the job down
        import traceback

        traceback.print_exc()
        code = 1
        w.comm.Abort(1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    w.comm.send(None, dest=0, tag=TAG_BYE)   # (the driver waits for every rank's)
    _exit_process(w, code)


def _leave_ctrl_c_to_the_driver():
    """mpiexec passes Ctrl-C (SIGINT) to every rank. The driver's KeyboardInterrupt runs
    its except/finally blocks (a checkpoint, say) and its exit then says "exit" to every
    rank, so a serving rank lets the first one pass; a second one (a driver that did not
    end) takes the job down."""
    import signal

    seen = []

    def on_sigint(signum, frame):
        if seen:
            raise KeyboardInterrupt
        seen.append(signum)

    signal.signal(signal.SIGINT, on_sigint)


def _ignore_script_timers():
    """A serving rank outlives whatever its script was doing when it called init(): a
    timer the script armed (SIGALRM, faulthandler's watchdog; pytest timeouts use
    both) must not interrupt it."""
    import faulthandler
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    faulthandler.cancel_dump_traceback_later()


def _exit_process(w: World, code: int):
    """Leaves the process from here, whatever the script around init() would do next
    (under pytest, say). MPI is finalized first (else MPICH leaves /dev/shm segments),
    then libc's exit(): unlike os._exit it runs the MPI library's own exit handlers,
    without which hydra reports the rank as killed by signal 9."""
    import ctypes
    import signal

    # leaving already: a Ctrl-C now (mpiexec's clean-up after the driver ended on one)
    # must not break into MPI_Finalize or the C library's exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not w.MPI.Is_finalized():   # (the driver's Ctrl-C exit ran mpi4py's finalize)
        w.comm.Free()
        w.MPI.Finalize()
    ctypes.CDLL(None).exit(code)


def _wait_for_exit(w: World):
    """A rank that lends its core to its node's workers: sleep until rank 0 says exit."""
    status = w.MPI.Status()
    while True:
        if w.comm.Iprobe(0, TAG_CTRL, status):
            if w.comm.recv(source=0, tag=TAG_CTRL)[1][0] == "exit":
                return
        time.sleep(0.05)


class NodeServer:
    """The leader of a node other than the driver's: one node per driver cycle."""

    def __init__(self, w: World):
        self.w = w
        self.node = None
        self.agent = None
        self.exit = False
        self.commands = []

    def on_control(self, source, msg):
        if msg[0] == "cluster":  # at once, in the MPI thread: tasks may follow right behind
            self.node.join_cluster(msg[1], self.node.agent.send)
        elif msg[0] == "ask":
            question = msg[1]
            if isinstance(question, tuple):   # (the log API's: core/worker_logs.py)
                from mpiray.util.state.logs import local_answer

                answer = local_answer(self.node.config.spill_dir, *question)
            else:
                answer = ASKABLE[question](self.node.scheduler)
            self.node.agent.send_rank(0, ("answer", self.w.node_index, answer))
        else:
            self.commands.append(msg)

    def run(self):
        from mpiray import _ids

        _ids.set_node(self.w.node_index)
        status = self.w.MPI.Status()
        while True:
            # between cycles: sleep-poll for the driver's next word
            while not self.w.comm.Iprobe(0, TAG_CTRL, status):
                time.sleep(0.01)
            msg = self.w.comm.recv(source=0, tag=TAG_CTRL)[1]
            if msg[0] == "exit":
                return
            if msg[0] == "start":
                self._cycle(msg[1])
                if self.exit:
                    return

    def _cycle(self, cfg):
        from mpiray.core.node import Node, default_spill_dir

        w = self.w
        config = node_config(w, cfg)
        node = Node(config, node_index=w.node_index, num_nodes=w.num_nodes)
        config.spill_dirs = [default_spill_dir(node.session, base)
                             for base in cfg.get("spill_bases") or [None]]
        config.spill_dir = config.spill_dirs[0]
        self.commands = []
        try:
            node.start()
        except Exception as exc:  # noqa: BLE001 - the driver reports it
            w.comm.send((cfg["cycle"], ("failed", w.node_index, f"{type(exc).__name__}: {exc}")), dest=0, tag=TAG_CTRL)
            return
        agent = Agent(w, w.node_index, node.store, self.on_control, cfg["cycle"], len(nodes_on_my_host(w)))
        agent.scheduler = node.scheduler
        node.agent = agent
        self.node = node
        agent.start()
        agent.send_rank(0, ("started", w.node_index, node_info(w, node)))
        try:
            while True:
                while not self.commands:
                    if agent.failure is not None:
                        raise agent.failure
                    time.sleep(0.01)
                msg = self.commands.pop(0)
                if msg[0] in ("stop", "exit"):
                    self.exit = msg[0] == "exit"
                    break
        finally:
            agent.detach()
            node.stop()
            import shutil

            for spill_dir in config.spill_dirs:
                shutil.rmtree(spill_dir, ignore_errors=True)
            agent.send_rank(0, ("stopped", w.node_index))
            agent.stop()

"""The public verbs: init, shutdown, get, put, wait, cancel, kill, get_actor, ...

Each verb checks its arguments (clear errors for bad input), then hands the work to
the process's Runtime (``mpiray.core.runtime``), which is the same in the driver and
in workers, so nested tasks and actors use exactly these functions.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import threading
import time

from mpiray import _config, _ids
from mpiray._options import validate_namespace
from mpiray._native.reflist import RefLists
from mpiray.core import cluster_info, current, driver_log, futures, refcount
from mpiray.exceptions import RaySystemError
from mpiray.generators import ObjectRefGenerator
from mpiray.object_ref import ObjectRef

_REF_LISTS = RefLists(ObjectRef)   # where an ObjectRef keeps its id, looked up once

_init_lock = threading.RLock()


def is_initialized() -> bool:
    return current.runtime() is not None


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None, object_store_memory=None,
         ignore_reinit_error=False, namespace=None, **kwargs):
    """Starts a one-node cluster on this host (or joins the MPI job, under mpiexec).
    address, Ray's first argument ("auto", "local", a head's address), has nothing to
    name here: the cluster is this host, or the MPI job the process runs in."""
    if address is not None and not isinstance(address, str):
        raise TypeError(f"init()'s address must be a string or None, got {type(address).__name__}")
    with _init_lock:
        if is_initialized():
            if ignore_reinit_error:
                return _context_info()
            raise RuntimeError("Maybe you called ray.init twice by accident? This error can be "
                               "suppressed by passing in 'ignore_reinit_error=True' or by calling "
                               "'ray.shutdown()' prior to 'ray.init()'.")
        if not current.info() is None and current.node() is None:
            raise RuntimeError("init() cannot be called inside a task or actor")
        if namespace is not None:
            validate_namespace(namespace)
        config = _config.make_config(num_cpus, num_gpus, resources, object_store_memory,
                                     namespace=namespace, **kwargs)
        from mpiray.core.channel import DriverChannel
        from mpiray.core.node import Node, default_spill_dir
        from mpiray.core.runtime import Runtime

        world = _mpi_world()
        if world is not None and world.num_nodes > 1:
            _driver_node_share(world, config, num_gpus, object_store_memory)
        node = Node(config, num_nodes=world.num_nodes if world else 1)
        config.spill_dirs = [default_spill_dir(node.session, base)
                             for base in _config.spill_bases(config.extra)]
        config.spill_dir = config.spill_dirs[0]
        config.job_id = node.session
        try:
            node.start()
            if node.num_nodes > 1:
                _join_nodes(world, node, config)
        except BaseException:
            if hasattr(node, "scheduler"):
                _stop_node(node)
            raise
        channel = DriverChannel(node.scheduler, node.pump)
        refcount.set_sink(channel)
        rt = Runtime(node.session, node.store, channel, _driver_actor_queue(node), is_driver=True)
        rt.fetch_remote = node.num_nodes > 1
        rt.pump = node.pump
        current.set_runtime(rt, {"session": node.session, "node_id": node.node_id,
                                 "namespace": config.namespace,
                                 "runtime_env": config.runtime_env,
                                 "default_actor_lifetime": config.default_actor_lifetime}, node)
        _install_exit_handlers()
        _enable_faulthandler()
        driver_log.configure(config.extra)
        driver_log.started(node.num_nodes)
        return _context_info()


def _enable_faulthandler():
    """As Ray's connect(): a crash of the driver prints its Python stack (workers do too)."""
    import faulthandler

    if not faulthandler.is_enabled():
        try:
            faulthandler.enable(all_threads=False)
        except (AttributeError, ValueError, OSError):   # (a sys.stderr with no file behind it)
            pass


def _mpi_world():
    """Under an MPI launcher: this job's World; ranks other than 0 serve inside this
    call and never return. None on a plain single-host run (MPI never imported)."""
    from mpiray.mpi.world import launched_by_mpi

    from mpiray.mpi import roles

    if roles.existing_world() is None and not launched_by_mpi():
        return None
    from mpiray import _ids

    world = roles.world()
    # A program this process starts inherits the launcher's variables; its own init()
    # must not take it for a rank of this job (MPI_Init would fail): it runs on its own.
    os.environ["MPIRAY_MPI"] = "0"
    if not world.is_driver:
        roles.serve(world)  # never returns
    _ids.set_node(0)
    _install_mpi_exit(world)
    return world


def _driver_node_share(world, config, num_gpus, object_store_memory):
    """Other nodes on this host (MPIRAY_NODE_PER_RANK=1) share its GPUs and memory."""
    from mpiray.mpi import roles

    share = roles.gpu_share(world)
    if num_gpus is None:
        config.num_gpus, config.gpu_ids = len(share), list(share)
    config.host_nodes = len(roles.nodes_on_my_host(world))
    if object_store_memory is None:
        config.object_store_memory //= config.host_nodes


def _join_nodes(world, node, config):
    from mpiray.mpi import roles

    node.link = roles.DriverLink(world, node)
    node.agent = node.link.agent
    node.link.start({"namespace": config.namespace, "prefault": config.prefault_store,
                     "job_id": config.job_id,
                     "runtime_env": config.runtime_env, "task_events": config.task_events,
                     "log_to_driver": config.log_to_driver,
                     "spill_bases": _config.spill_bases(config.extra),
                     "graceful_shutdown_s": config.graceful_shutdown_s,
                     "memory_monitor": (config.memory_threshold, config.memory_refresh_s),
                     "default_actor_lifetime": config.default_actor_lifetime})


def _stop_node(node):
    link = getattr(node, "link", None)
    try:
        if link is not None:
            link.stop()
    finally:
        node.stop()


_mpi_exit_installed = False


def _install_mpi_exit(world):
    """At the driver's exit (normal or by exception): shut down, then tell every rank to
    exit. Registered after mpi4py's own handler, so it runs before MPI_Finalize."""
    global _mpi_exit_installed
    if _mpi_exit_installed:
        return
    _mpi_exit_installed = True

    def bye():
        from mpiray.mpi import roles

        if current.in_fork_child():
            # A fork of the driver (os.fork) ending: it must not finalize the driver's
            # copy of MPI (MPI_Finalize there blocks on the launcher's socket, and keeps
            # the job alive) nor shut the runtime down; it leaves at once.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1 if getattr(sys, "last_value", None) is not None else 0)
        shutdown(True)
        roles.say_exit(world)
        if isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
            # Ctrl-C ended the script (its except/finally blocks have run): leave as the
            # other ranks do, with 130, instead of Python's death by SIGINT, which
            # mpiexec takes for a crash and answers by killing ranks mid-exit
            atexit.unregister(bye)
            atexit._run_exitfuncs()   # (the ones registered before this, mpi4py's too)
            sys.stdout.flush()
            sys.stderr.flush()
            roles._exit_process(world, 130)

    atexit.register(bye)


def _driver_actor_queue(node):
    from mpiray.core import names
    from mpiray.core.native import Queue

    def attach(actor_id):
        try:
            return Queue.attach(names.actor_queue_name(node.session, actor_id))
        except (FileNotFoundError, OSError):
            return None

    return attach


def shutdown(_exiting_interpreter=False):
    """Ends every worker and removes every segment of this runtime."""
    if current.in_fork_child():   # (a user's os.fork of the driver: its exit is its own)
        current.set_runtime(None)
        return
    with _init_lock:
        node = current.node()
        if node is None:
            return
        futures.stop(current.runtime())   # (pending awaits fail; its thread ends first)
        current.set_runtime(None)
        refcount.set_sink(None)
        _stop_node(node)
        for spill_dir in node.config.spill_dirs or [node.config.spill_dir]:
            shutil.rmtree(spill_dir, ignore_errors=True)
        if not _exiting_interpreter:
            # The node's parts refer to each other (threads, its scheduler, its I/O): a
            # collection now unmaps its queue segments (tens of MB of /dev/shm) at once,
            # not at some later collection.
            del node
            import gc

            gc.collect()


_handlers_installed = False


def _install_exit_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(shutdown, True)
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum, frame):
    # (Ray's handler, and its exit status: sys.exit(signum), 15; the driver unwinds, so
    # finally blocks and atexit's shutdown run)
    raise SystemExit(signum)


class RayContext(dict):
    """What init() returns: a dict of the session (Ray's address_info keys too), and a
    context manager that shuts the runtime down (`with ray.init(): ...`)."""

    @property
    def address_info(self):
        return dict(self)

    @property
    def dashboard_url(self):
        return None   # (no dashboard here)

    @property
    def python_version(self):
        import platform

        return platform.python_version()

    @property
    def ray_version(self):
        from mpiray import __version__

        return __version__   # (mpiray's: there is no Ray underneath)

    @property
    def ray_commit(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()
        return False

    def __repr__(self):   # (as Ray's prints)
        return (f"RayContext(dashboard_url={self.dashboard_url!r}, python_version="
                f"{self.python_version!r}, ray_version={self.ray_version!r}, "
                f"ray_commit={self.ray_commit!r})")

    def disconnect(self):
        shutdown()


def _context_info():
    info = current.info() or {}
    node = current.node()
    return RayContext(session=info.get("session"), node_id=info.get("node_id"),
                      address=None, node_ip_address=_node_ip(), webui_url=None,
                      gcs_address=None, metrics_export_port=None,
                      session_dir=node.config.spill_dir if node is not None else None)


def _node_ip():
    from mpiray.util.network import get_node_ip_address

    return get_node_ip_address()


def _runtime():
    rt = current.runtime()
    if rt is None:
        # (Ray's auto-connect: the first call that needs a runtime starts one, unless
        # RAY_ENABLE_AUTO_CONNECT=0 asks for an explicit init())
        if not auto_connect():
            raise RaySystemError("Ray has not been started yet. You can start Ray with 'ray.init()'.")
        init()
        rt = current.runtime()
    return rt


def auto_connect() -> bool:
    return os.environ.get("RAY_ENABLE_AUTO_CONNECT", "") != "0"


def auto_init():
    """Ray's AUTO_INIT_APIS that may also answer without a runtime (get_gpu_ids,
    get_runtime_context) start one first, unless auto-connect is off."""
    if current.runtime() is None and auto_connect():
        init()


# ---------------------------------------------------------------- objects
def put(value, *, _owner=None) -> ObjectRef:
    """_owner: an actor to own the object, as Ray's (here the node's store owns every
    object, which outlives its creator anyway: only its type is checked)."""
    if _owner is not None:
        from mpiray.actor import ActorHandle

        if not isinstance(_owner, ActorHandle):
            raise TypeError(f"Expect an `ray.actor.ActorHandle`, but got: {type(_owner)}")
    return _runtime().put(value)


def get(object_refs, *, timeout=None):
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"timeout must be a non-negative number or None, got {timeout!r}")
    if isinstance(object_refs, ObjectRef):
        return _runtime().get_one(object_refs._id, timeout)
    if not isinstance(object_refs, list):   # (Ray takes no tuple either)
        if isinstance(object_refs, ObjectRefGenerator):
            return object_refs   # (as Ray's get: its items are got by iterating it)
        raise ValueError(f"get() expects an ObjectRef or a list of ObjectRefs, got {type(object_refs).__name__}")
    ids = _ids_of(object_refs, "get")
    if not ids:
        return []
    return _runtime().get(ids, timeout)


def _ids_of(refs, verb):
    """The ids of a list of ObjectRefs, in one pass (lists of thousands are common);
    fewer ids than refs means something else is in the list."""
    ids = [r._id for r in refs if type(r) is ObjectRef]
    if len(ids) != len(refs):
        for r in refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"{verb}() expects a list of ObjectRefs; it holds a {type(r).__name__}")
        ids = [r._id for r in refs]  # subclasses of ObjectRef
    return ids


def wait(object_refs, *, num_returns=1, timeout=None, fetch_local=True):
    if isinstance(object_refs, ObjectRef) or not isinstance(object_refs, list):
        raise TypeError(f"wait() expects a list of ObjectRefs, got {type(object_refs).__name__}")
    # Type check, ids and the duplicate check in one C pass: per-ref Python work would
    # be most of the call for a list of thousands of finished refs.
    try:
        ids = _REF_LISTS.pack(object_refs, "wait", True)
    except TypeError:
        if not any(isinstance(r, ObjectRefGenerator) for r in object_refs):
            raise
        return _wait_with_generators(list(object_refs), num_returns, timeout)
    if not object_refs:   # (Ray: "it is possible to call wait with an empty list")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be non-negative, got {timeout}")
        return [], []
    if not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"num_returns must be a positive integer, got {num_returns!r}")
    if num_returns > len(object_refs):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number "
                         f"of ObjectRefs given ({len(object_refs)})")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be non-negative, got {timeout}")
    ready = _runtime().wait(ids, num_returns, timeout, users=True, fetch_local=fetch_local)
    # The first num_returns ready refs are done; the others pend, in their order.
    return _REF_LISTS.split(object_refs, ready, num_returns)


def _wait_with_generators(items, num_returns, timeout):
    """wait() over refs and ObjectRefGenerators (ready: next() would not block)."""
    for x in items:
        if not isinstance(x, (ObjectRef, ObjectRefGenerator)):
            raise TypeError(f"wait() expects a list of ObjectRefs or ObjectRefGenerators; it "
                            f"holds a {type(x).__name__}")
    if len(set(map(id, items))) != len(items):
        raise ValueError("wait() got the same ObjectRefGenerator twice")
    if not isinstance(num_returns, int) or not 0 < num_returns <= len(items):
        raise ValueError(f"num_returns must be an integer from 1 to {len(items)}, got {num_returns!r}")
    rt = _runtime()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready = [x._would_not_block() if isinstance(x, ObjectRefGenerator)
                 else rt.store.contains(x._id) for x in items]
        left = None if deadline is None else deadline - time.monotonic()
        if sum(ready) >= num_returns or (left is not None and left <= 0):
            break
        pending = b"".join(b"".join(x._wait_ids()) if isinstance(x, ObjectRefGenerator) else x._id
                           for x, r in zip(items, ready) if not r)
        rt.wait(pending, 1, left)   # until one more is ready (or the time is up)
    done = [x for x, r in zip(items, ready) if r][:num_returns]
    taken = set(map(id, done))
    return done, [x for x in items if id(x) not in taken]


def cancel(object_ref, *, force=False, recursive=True):
    if isinstance(object_ref, ObjectRefGenerator):
        object_ref = object_ref.completed()
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef, got {type(object_ref).__name__}")
    if force and _ids.is_actor_call(object_ref._id):
        raise ValueError("force=True is not supported for actor tasks.")
    _runtime().cancel(object_ref._id, force, recursive)


def free(object_refs, local_only=False):
    """Ray's internal free: the objects' memory goes now, whatever refs remain (a get of
    one raises ObjectFreedError). Objects are otherwise freed when no ref remains."""
    refs = [object_refs] if isinstance(object_refs, ObjectRef) else object_refs
    if not isinstance(refs, (list, tuple)) or not all(isinstance(r, ObjectRef) for r in refs):
        raise TypeError("free() expects an ObjectRef or a list of ObjectRefs")
    from mpiray.core import protocol as P

    rt = _runtime()
    oids = [r._id for r in refs]
    if rt.fetch_remote:   # (copies on other nodes: the node's scheduler tells theirs)
        rt.channel.send([(P.FREE_NOW, oids)])
        return
    from mpiray.exceptions import ObjectFreedError

    for oid in oids:   # (here and now, as Ray's: a get right after raises)
        if rt.store.contains(oid):   # (one still being made is left alone)
            try:
                rt.store.delete(oid)
            except KeyError:
                continue
            rt.write_error(oid, ObjectFreedError(oid.hex()))


# ---------------------------------------------------------------- actors
def get_actor(name: str, namespace: str | None = None):
    from mpiray.actor import lookup_named_actor

    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty name, got {name!r}")
    if namespace is not None:
        validate_namespace(namespace)
    return lookup_named_actor(_runtime(), name, _namespace(namespace))


def kill(actor, *, no_restart=True):
    from mpiray.actor import ActorHandle
    from mpiray.core import protocol as P

    if not isinstance(actor, ActorHandle):
        raise ValueError(f"kill() expects an actor handle, got {type(actor).__name__}")
    rt = _runtime()
    event = (P.KILL_ACTOR, actor._aid, bool(no_restart))
    if rt.is_driver:
        rt.channel.send([event])   # (applied before send returns)
    else:   # as Ray's: done (the name free) when kill returns, from a task or actor too
        rt.request(event, 60.0, "this node's scheduler")


def _namespace(namespace):
    if namespace is not None:
        return namespace
    info = current.info() or {}
    return info.get("namespace", "") or ""


# ---------------------------------------------------------------- cluster
def _started(what):
    """As Ray's: these describe a running cluster, and do not start one."""
    if current.runtime() is None:
        raise RaySystemError(f"Ray has not been started yet. You can start Ray with "
                             f"'ray.init()' (called: {what}()).")


def cluster_resources() -> dict:
    _started("cluster_resources")
    return cluster_info.ask("cluster_resources")


def available_resources() -> dict:
    """This node as it is now; other nodes as it sees them (their totals less what it
    has sent them and not heard back about)."""
    _started("available_resources")
    return cluster_info.ask("available_resources")


def nodes() -> list:
    _started("nodes")
    return cluster_info.ask("nodes")


def _driver_node(what):
    _started(what)
    node = current.node()
    if node is None:
        raise RuntimeError(f"{what}() is answered by the driver; call it there")
    return node


def _gathered(what, question):
    """Every node's answer to a state_report question, [(node index, answer)]: the
    driver asks its node and (MPI) the others; a task or actor asks its node, which
    answers for a one-node cluster."""
    from mpiray.core import state_report

    _started(what)
    node = current.node()
    if node is None:
        return cluster_info.ask(question)
    pump = getattr(node, "pump", None)
    if pump is not None:
        pump.drain()   # what workers have already reported
    return _every_node(node, question, getattr(state_report, question))


def _every_node(node, question, here):
    """[(node index, answer)]: the driver's node answers with here(scheduler), the others
    (under MPI) are asked over it (mpi/roles.py, ASKABLE)."""
    answers = [(0, here(node.scheduler))]
    link = getattr(node, "link", None)
    if link is not None:
        answers += link.ask(question)
    return answers


def timeline(filename=None):
    """The tasks and actor calls run so far (the last 100,000 per node) as Chrome trace
    events: returned as a list, or written as JSON to filename (then None)."""
    from mpiray.core import timeline as tl

    node = _driver_node("timeline")
    if not node.config.task_events:
        import warnings

        warnings.warn("timeline(): workers are not timing their tasks; set MPIRAY_TASK_EVENTS=1 "
                      "in the environment before init() to record them", stacklevel=2)
    pump = getattr(node, "pump", None)
    if pump is not None:
        pump.drain()   # ends the workers have already reported
    events = tl.chrome_events(_every_node(node, "task_log", tl.local_log))
    if filename is None:
        return events
    tl.write(events, filename)
    return None


def list_named_actors(all_namespaces=False) -> list:
    """Names of the live named actors of this job's namespace, or with all_namespaces
    [{"name": ..., "namespace": ...}] of every namespace (ray.util.list_named_actors)."""
    answers = _gathered("list_named_actors", "named_actors")
    pairs = sorted({pair for _, named in answers for pair in named})
    if all_namespaces:
        return [{"name": name, "namespace": ns} for name, ns in pairs]
    here = _namespace(None)
    return [name for name, ns in pairs if ns == here]


def get_gpu_ids() -> list:
    from mpiray.core import context

    _runtime()   # (as Ray's: starts one, or says none is running when auto-connect is off)
    return list(context.gpu_ids())

"""init()'s keywords: what they mean here, and the defaults taken from the machine."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field

from mpiray.core.labels import check_node_labels

# Ray keywords accepted for compatibility that have no meaning on mpiray (see docs/api.md).
IGNORED_KEYWORDS = {
    "address", "include_dashboard", "dashboard_host", "dashboard_port", "log_to_driver",
    "configure_logging", "logging_level", "logging_format", "logging_config",
    "local_mode", "_temp_dir", "_system_config",
    "_enable_object_reconstruction", "_metrics_export_port", "_node_ip_address",
    "_redis_password", "storage", "_plasma_directory", "_node_name",
    "enable_resource_isolation", "system_reserved_cpu", "system_reserved_memory",
    "_cgroup_path", "_skip_env_hook", "_driver_object_store_memory",
    "_tracing_startup_hook", "_include_dashboard", "num_worker_processes",
}


MEMORY_SHARE = 0.7   # Ray's default share of RAM for the `memory` resource
MIN_STORE_BYTES = 75 << 20   # Ray's OBJECT_STORE_MINIMUM_MEMORY_BYTES

# init()'s own keyword for each resource every node has (not a custom resource).
DEFAULT_RESOURCES = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "_memory",
                     "object_store_memory": "object_store_memory"}


class DefaultResourceError(AssertionError, ValueError):
    """init(resources={"CPU": ...}): Ray asserts; a ValueError too, as a bad argument."""


def overridden_resources() -> dict:
    """RAY_OVERRIDE_RESOURCES='{"CPU": 4, "custom": 2}': what this node has, whatever
    init() (or, under MPI, the rank's defaults) said, as Ray's."""
    import json

    text = os.environ.get("RAY_OVERRIDE_RESOURCES", "").strip()
    if not text:
        return {}
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"RAY_OVERRIDE_RESOURCES must be a JSON object of resource amounts, "
                         f"got {text!r}: {exc}") from None
    if not isinstance(found, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and v >= 0 for k, v in found.items()):
        raise ValueError(f"RAY_OVERRIDE_RESOURCES must be a JSON object of non-negative "
                         f"resource amounts, got {text!r}")
    return found


@dataclass
class Config:
    num_cpus: int
    num_gpus: int
    gpu_ids: list
    resources: dict
    object_store_memory: int
    spill_dir: str = ""      # the session's directory (spill files; the first of spill_dirs)
    spill_dirs: list = field(default_factory=list)   # every spill directory (objects spread)
    namespace: str = ""
    log_to_driver: bool = True
    # Fault the whole store in at init (~0.7 s per GiB here) so that every put runs at
    # memory bandwidth; off by default so a default 30%-of-RAM store starts instantly.
    prefault_store: bool = False
    extra: dict = field(default_factory=dict)
    runtime_env: dict = None   # the job's, canonical (core/runtime_env.py): every worker's
    # workers time their tasks for timeline() (MPIRAY_TASK_EVENTS=1 in the driver's env)
    task_events: bool = False
    memory: int = None       # the `memory` resource in bytes (init's _memory), else Ray's
    host_nodes: int = 1      # default share of this host's RAM, split among its nodes
    default_actor_lifetime: str = "non_detached"   # (JobConfig's)
    job_id: str = ""         # the driver node's session, on every node (get_job_id())
    graceful_shutdown_s: float = 30.0   # _system_config's actor_graceful_shutdown_timeout_ms
    # the memory monitor's (core/memory_monitor.py): kill a worker past this share of the
    # node's memory, looking every memory_refresh_s (0: never)
    memory_threshold: float = 0.95
    memory_refresh_s: float = 0.25
    labels: dict = field(default_factory=dict)   # the node's own (core/labels.py)

    def memory_bytes(self) -> int:
        """Ray's default: tasks' `memory` may take 70% of RAM, less the object store."""
        if self.memory is not None:
            return self.memory
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return max(0, int(ram * MEMORY_SHARE) // max(1, self.host_nodes) - self.object_store_memory)

    def totals(self) -> dict:
        totals = {"CPU": float(self.num_cpus), **{k: float(v) for k, v in self.resources.items()}}
        if self.num_gpus:
            totals["GPU"] = float(self.num_gpus)
            kind = detect_accelerator_type()
            if kind and not any(k.startswith("accelerator_type:") for k in totals):
                totals[f"accelerator_type:{kind}"] = 1.0   # (as Ray's node has)
        if totals.get("neuron_cores", 0) > 0 and not any(k.startswith("accelerator_type:")
                                                         for k in totals):
            totals["accelerator_type:aws-neuron-core"] = 1.0   # (Neuron's one type, in Ray)
        return totals


def make_config(num_cpus=None, num_gpus=None, resources=None, object_store_memory=None,
                namespace=None, log_to_driver=True, runtime_env=None, labels=None,
                **kwargs) -> Config:
    job = kwargs.pop("job_config", None)
    if job is not None:
        from mpiray.job_config import JobConfig

        if not isinstance(job, JobConfig):
            raise TypeError(f"job_config must be a JobConfig, got {type(job).__name__}")
        namespace = namespace if namespace is not None else job.ray_namespace
        runtime_env = runtime_env if runtime_env is not None else job.runtime_env
    prefault = kwargs.pop("_prefault_store", None)
    memory = kwargs.pop("_memory", None)
    if isinstance(memory, float) and memory >= 0:
        memory = int(memory)   # (whole bytes, as Ray rounds memory amounts down)
    if memory is not None and (not isinstance(memory, int) or isinstance(memory, bool) or memory < 0):
        raise ValueError(f"_memory must be a non-negative number of bytes, got {memory!r}")
    visible = kwargs.pop("_visible_gpus", None)   # MPI: this node's share of the host's GPUs
    unknown = set(kwargs) - IGNORED_KEYWORDS - SPILL_KEYWORDS
    if unknown:   # (Ray's error and words)
        raise RuntimeError(f"Unknown keyword argument(s): {', '.join(sorted(unknown))}")
    if num_cpus is None:
        num_cpus = len(os.sched_getaffinity(0))
    if not isinstance(num_cpus, int) or isinstance(num_cpus, bool) or num_cpus < 0:
        raise ValueError(f"num_cpus must be a non-negative integer, got {num_cpus!r}")
    narrowed = visible is None and os.environ.get("CUDA_VISIBLE_DEVICES") is not None
    if visible is None:
        visible = detect_gpu_ids()
    if num_gpus is None:
        num_gpus = len(visible)
    if not isinstance(num_gpus, int) or num_gpus < 0:
        raise ValueError(f"num_gpus must be a non-negative integer, got {num_gpus!r}")
    if narrowed and num_gpus > len(visible):   # (as Ray: more than this process was given)
        raise ValueError(f"Attempting to start raylet with {num_gpus} GPU, but "
                         f"CUDA_VISIBLE_DEVICES contains {[str(g) for g in visible]}.")
    gpu_ids = visible[:num_gpus] if len(visible) >= num_gpus else list(range(num_gpus))
    resources = dict(resources or {})
    for key, amount in resources.items():
        if key in DEFAULT_RESOURCES:   # (Ray's assertion and words, then ours)
            raise DefaultResourceError(
                f"`{key}` cannot be a custom resource because it is one of the default "
                f"resources ({', '.join(DEFAULT_RESOURCES)}): use "
                f"{DEFAULT_RESOURCES[key]}= instead of resources=")
        if not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"resource {key!r} must be a non-negative number, got {amount!r}")
        _check_visible(key, amount)
    override = overridden_resources()
    if override:   # (Ray's RAY_OVERRIDE_RESOURCES: it wins over init()'s arguments)
        resources.update({k: v for k, v in override.items() if k not in DEFAULT_RESOURCES})
        num_cpus = int(override.get("CPU", num_cpus))
        num_gpus = int(override.get("GPU", num_gpus))
        gpu_ids = visible[:num_gpus] if len(visible) >= num_gpus else list(range(num_gpus))
        memory = int(override["memory"]) if "memory" in override else memory
        object_store_memory = override.get("object_store_memory", object_store_memory)
    if object_store_memory is None:
        object_store_memory = default_store_capacity()
    elif isinstance(object_store_memory, float) and object_store_memory >= 1:
        object_store_memory = int(object_store_memory)   # (as Ray: 200e6 is bytes too)
    if not isinstance(object_store_memory, int) or isinstance(object_store_memory, bool) \
            or object_store_memory <= 0:
        raise ValueError(f"object_store_memory must be a positive number of bytes, got {object_store_memory!r}")
    if object_store_memory < MIN_STORE_BYTES:   # (Ray's minimum and words)
        raise ValueError(f"Attempting to cap object store memory usage at {object_store_memory} "
                         f"bytes, but the minimum allowed is {MIN_STORE_BYTES} bytes.")
    temp_dir = kwargs.get("_temp_dir")
    if temp_dir is not None and not os.path.isabs(str(temp_dir)):
        raise ValueError(f"_temp_dir must be an absolute path, got {temp_dir!r}")
    if prefault is None:
        prefault = os.environ.get("MPIRAY_PREFAULT_STORE", "0") not in ("", "0")
    from mpiray.core import runtime_env as renv

    graceful_ms = (kwargs.get("_system_config") or {}).get("actor_graceful_shutdown_timeout_ms", 30_000)
    from mpiray.core import memory_monitor

    threshold, refresh_s = memory_monitor.settings(kwargs.get("_system_config"))
    return Config(num_cpus, num_gpus, gpu_ids, resources, object_store_memory,
                  # (as Ray: a job given no namespace gets an anonymous one of its own)
                  namespace=namespace or str(uuid.uuid4()), log_to_driver=log_to_driver,
                  prefault_store=bool(prefault), extra=kwargs,
                  runtime_env=renv.validate(runtime_env, "init(runtime_env=...)"),
                  task_events=os.environ.get("MPIRAY_TASK_EVENTS", "0") not in ("", "0"),
                  memory=memory,
                  default_actor_lifetime=job.default_actor_lifetime if job else "non_detached",
                  graceful_shutdown_s=float(graceful_ms) / 1000.0,
                  memory_threshold=threshold, memory_refresh_s=refresh_s,
                  labels=check_node_labels(labels))


SPILL_KEYWORDS = {"object_spilling_directory"}


def spill_bases(extra: dict) -> list:
    """Where init() was told to spill (a session's spill directory goes inside each):
    object_spilling_directory=, else Ray's older _system_config={"object_spilling_config":
    '{"type": "filesystem", "params": {"directory_path": ...}}'} (a list of them spreads
    the objects over several disks, as Ray's), else _temp_dir=; [None]: the default
    (core/node.py default_spill_dir)."""
    import json

    if extra.get("object_spilling_directory"):
        return [str(extra["object_spilling_directory"])]
    spec = (extra.get("_system_config") or {}).get("object_spilling_config")
    if spec:
        try:
            spec = json.loads(spec) if isinstance(spec, str) else spec
        except ValueError:
            raise ValueError(f"_system_config object_spilling_config is not JSON: {spec!r}") from None
        _check_spilling_config(spec)
        path = spec.get("params", {}).get("directory_path")
        paths = [str(p) for p in path if p] if isinstance(path, (list, tuple)) else [path] if path else []
        if paths:
            return paths
    return [extra.get("_temp_dir")]


def spill_base(extra: dict):
    """The first of spill_bases()."""
    return spill_bases(extra)[0]


# Ray's filesystem spilling parameters (FileSystemStorage's), with their types.
SPILL_PARAMS = {"directory_path": (str, list, tuple), "buffer_size": (int,)}


def _check_spilling_config(spec):
    """As Ray's init: a bad object_spilling_config is refused before anything starts.
    Only Ray's "filesystem" type can mean something here (a local directory)."""
    if not isinstance(spec, dict):
        raise ValueError(f"object_spilling_config must be a JSON object, got {spec!r}")
    kind = spec.get("type")
    if kind != "filesystem":
        raise ValueError(f"object_spilling_config type {kind!r} is not supported: mpiray spills "
                         f"to a local directory (type 'filesystem')")
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"object_spilling_config params must be an object, got {params!r}")
    unknown = set(params) - set(SPILL_PARAMS)
    if unknown:
        raise ValueError(f"object_spilling_config has unknown params {sorted(unknown)}; "
                         f"the filesystem type takes {sorted(SPILL_PARAMS)}")
    for name, value in params.items():
        if not isinstance(value, SPILL_PARAMS[name]) or isinstance(value, bool):
            raise ValueError(f"object_spilling_config param {name} has a bad value {value!r}")


def _check_visible(kind, amount):
    """As Ray's: a node may not declare more devices of an accelerator than the process's
    visible-devices variable lists (when it is set)."""
    from mpiray.core import accelerators

    if kind == "GPU" or not accelerators.is_accelerator(kind):
        return
    listed = accelerators.visible(kind)
    if listed is not None and amount > len(listed):
        raise ValueError(f"Attempting to start raylet with {amount} {kind}, but "
                         f"{accelerators.KINDS[kind][0]} contains {listed}.")


def detect_gpu_ids() -> list:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES when set (Slurm narrows it with
    --gpus-per-task), else the devices the NVIDIA driver lists. Ids taken from the
    variable stay strings, as Ray's get_gpu_ids() gives them then (ints otherwise)."""
    from mpiray.core import accelerators

    listed = accelerators.visible("GPU")
    if listed is not None:
        return listed
    try:
        return list(range(len(os.listdir("/proc/driver/nvidia/gpus"))))
    except OSError:
        return []


def detect_accelerator_type():
    """The type of this host's NVIDIA GPUs as Ray names it (its accelerator_type:<type>
    resource, which the accelerator_type= option asks for): the word after the vendor in
    the driver's model name, "NVIDIA H100 80GB HBM3" -> "H100"; None without a GPU."""
    import glob
    import re

    for path in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(path) as f:
                model = next((line.split(":", 1)[1].strip() for line in f
                              if line.startswith("Model:")), "")
        except OSError:
            continue
        found = re.match(r"\w+\s+([A-Z0-9]+)", model)
        if found:
            return found.group(1)
    return None


def hide_gpus_without_request() -> bool:
    """Ray's RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1: a task or actor that asked for no GPU
    (or none of another accelerator) gets CUDA_VISIBLE_DEVICES="" (NEURON_RT_VISIBLE_CORES,
    ...: sees none) instead of the environment it inherits (inheriting is Ray's default
    since it flipped this flag, and mpiray's)."""
    return os.environ.get("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0").lower() in ("1", "true")


def worker_oom_score_adj() -> int:
    """Workers' /proc/self/oom_score_adj, as Ray's worker_oom_score_adjustment (1000):
    when memory runs out the kernel kills a worker (its task is retried, or fails with
    WorkerCrashedError), not the driver. MPIRAY_WORKER_OOM_SCORE_ADJ changes it."""
    return int(os.environ.get("MPIRAY_WORKER_OOM_SCORE_ADJ", "1000"))


def worker_niceness() -> int:
    """Added to workers' niceness, as Ray's worker_niceness (15): where cores are short,
    the driver and the nodes' schedulers run before tasks do, so submitting and
    dispatching never wait behind the work. MPIRAY_WORKER_NICENESS changes it."""
    return int(os.environ.get("MPIRAY_WORKER_NICENESS", "15"))


def task_retry_delay_s() -> float:
    """The pause before a task's next attempt after an exception retry_exceptions allows:
    Ray's (1 s, as Ray 2.60 was measured to wait); MPIRAY_TASK_RETRY_DELAY_MS changes it."""
    return float(os.environ.get("MPIRAY_TASK_RETRY_DELAY_MS", "1000")) / 1000.0


def default_store_capacity() -> int:
    """Ray's default: 30% of RAM (RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION), at most
    200 GB (RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES), bounded by what /dev/shm has free
    (leaving 10% of it)."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    share = float(os.environ.get("RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION", "0.3"))
    most = int(os.environ.get("RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES", 200 * 10**9))
    free_shm = shutil.disk_usage("/dev/shm").free
    return max(64 << 20, min(int(ram * share), most, int(free_shm * 0.9)))

"""The options of @remote and .options(): checked once, with Ray's names and defaults."""

from __future__ import annotations

import os

from mpiray.core import affinity, placement, runtime_env
from mpiray.core.resources import RefusedAtSubmit, normalize
from mpiray.core.task_spec import DYNAMIC, STREAMING

TASK_OPTIONS = {
    "num_returns", "num_cpus", "num_gpus", "resources", "max_retries", "retry_exceptions",
    "name", "memory", "accelerator_type", "scheduling_strategy", "runtime_env",
    "placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks",
    "_metadata", "enable_task_events", "label_selector", "object_store_memory", "max_calls",
    "_generator_backpressure_num_objects", "_labels",
}
ACTOR_OPTIONS = {
    "num_cpus", "num_gpus", "resources", "max_restarts", "max_task_retries", "max_concurrency",
    "name", "namespace", "lifetime", "get_if_exists", "memory", "accelerator_type",
    "scheduling_strategy", "runtime_env", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "concurrency_groups", "max_pending_calls",
    "_metadata", "enable_task_events", "label_selector", "object_store_memory",
    "allow_out_of_order_execution", "_labels",
}
DEFAULT_TASK_RETRIES = 3

_NUMBER = (int, float, type(None))
_COUNT = (int, type(None))   # (None: the default)
# The types Ray accepts for each option (ray_option_utils): a wrong one is a TypeError
# in Ray's words; values are checked where each option is read.
OPTION_TYPES = {
    "num_cpus": _NUMBER, "num_gpus": _NUMBER, "memory": _NUMBER,
    "resources": (dict, type(None)), "accelerator_type": (str, type(None)),
    "name": (str, type(None)), "namespace": (str, type(None)), "lifetime": (str, type(None)),
    "max_retries": _COUNT, "max_calls": _COUNT, "num_returns": (int, str, type(None)),
    "retry_exceptions": (bool, list, tuple), "max_restarts": _COUNT, "max_task_retries": _COUNT,
    "max_concurrency": _COUNT, "max_pending_calls": _COUNT, "get_if_exists": (bool,),
    "concurrency_groups": (dict, list, type(None)), "enable_task_events": (bool,),
    "_metadata": (dict, type(None)), "label_selector": (dict, type(None)),
    "object_store_memory": (int, type(None)), "_generator_backpressure_num_objects": (int, type(None)),
    "allow_out_of_order_execution": (bool,),
    "placement_group_capture_child_tasks": (bool, type(None)),
    "_labels": (dict, type(None)),
}


def check_keys(given: dict, allowed: set, what: str):
    for key, value in given.items():
        if key not in allowed:
            raise ValueError(f"Invalid option keyword {key} for {what}. "
                             f"Valid ones are {sorted(allowed)}.")
        types = OPTION_TYPES.get(key)
        if types is not None and (not isinstance(value, types) or (
                isinstance(value, bool) and bool not in types and value is not None)):
            raise TypeError(f"The type of keyword '{key}' must be {types}, but received "
                            f"type {type(value)}")
    backpressure = given.get("_generator_backpressure_num_objects")
    if backpressure is not None and backpressure != -1 and backpressure <= 0:
        raise ValueError(f"_generator_backpressure_num_objects={backpressure} is not allowed: "
                         "give a value > 0, or -1 for no backpressure (as Ray)")


def validate_namespace(namespace):
    """As Ray's: a namespace is None or a non-empty string."""
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be None or a string, got {type(namespace).__name__}")
    if namespace == "":
        raise ValueError('"" is not a valid namespace. Pass None to not specify a namespace.')


def _or_default(opts, key, default):
    value = opts.get(key)
    return default if value is None else value


def check_in_options(opts: dict, what: str):
    """What Ray refuses in .options() (it may only be given to @remote)."""
    key = "max_calls" if what == "remote functions" else "concurrency_groups"
    if key in opts:
        raise ValueError(f"Setting '{key}' is not supported in '.options()'.")


def _capturable(opts: dict) -> bool:
    """No strategy given: a parent capturing its children places this in its group. As
    Ray, only the default ("default") is captured: placement_group=None is a choice to
    run outside any group."""
    return opts.get("scheduling_strategy") is None and \
        opts.get("placement_group", "default") == "default"


def _strategy_of(opts: dict):
    """scheduling_strategy=, or Ray's older placement_group= / _bundle_index= options."""
    pg = opts.get("placement_group")
    if pg is None or pg == "default":
        if opts.get("placement_group_bundle_index", -1) != -1:
            raise ValueError("If placement group is not set, the value of bundle index must "
                             "be -1.")
        return opts.get("scheduling_strategy")
    if opts.get("scheduling_strategy") not in (None, "DEFAULT"):
        raise ValueError("give either placement_group= or scheduling_strategy=, not both")
    import warnings

    warnings.warn("placement_group parameter is deprecated. Use scheduling_strategy="
                  "PlacementGroupSchedulingStrategy(...) instead, see the usage at "
                  "https://docs.ray.io/en/master/ray-core/package-ref.html#ray-remote.",
                  DeprecationWarning, stacklevel=5)
    from mpiray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(pg, opts.get("placement_group_bundle_index", -1),
                                            opts.get("placement_group_capture_child_tasks"))


def _in_group(req: dict, strategy, fit: dict, what=None) -> dict:
    """req asked of the strategy's bundle; fit (what placing it takes) must fit that
    bundle (or one of them, for index -1), else no node could ever run it (Ray's words)."""
    pg, index = strategy.placement_group, strategy.placement_group_bundle_index
    check_fits(fit, pg.bundle_specs, index, what)
    return placement.in_group(req, pg.id.hex(), index,
                              capture=bool(strategy.placement_group_capture_child_tasks))


def check_fits(fit: dict, bundle_specs: list, index: int = -1, what=None) -> None:
    """fit must fit the group's bundle `index` (one of them, for -1), else no node could
    ever run it: Ray's ValueError."""
    bundles = bundle_specs if index < 0 else [bundle_specs[index]]
    if not any(all(b.get(k, 0.0) + 1e-9 >= v for k, v in fit.items()) for b in bundles):
        asked = {k: int(v) if float(v).is_integer() else v for k, v in fit.items()}
        which = "any bundles" if index < 0 else f"the bundle {index}"
        raise ValueError(f"Cannot schedule {what or 'this task'} with the placement group "
                         f"because the resource request {asked} cannot fit into {which} for "
                         f"the placement group, {bundles}.")


_bundle_specs = {}   # placement group (hex) -> its bundles (they never change), per process


def captured(req: dict, fit: dict, parent: dict, what=None) -> dict:
    """placement.captured(req, parent), after checking that fit fits one of the group's
    bundles (as Ray checks a captured child: else it would wait for ever)."""
    inside = placement.captured(req, parent)
    if inside is req:
        return req
    pg = placement.group_of(inside)
    bundles = _bundle_specs.get(pg)
    if bundles is None:
        from mpiray.util.placement_group import get_current_placement_group

        current = get_current_placement_group()
        if current is None:   # (removed meanwhile: the scheduler fails the work)
            return inside
        bundles = _bundle_specs[pg] = current.bundle_specs
    check_fits(fit, bundles, -1, what)
    return inside


def _with_strategy(req: dict, strategy, fit=None, what=None) -> dict:
    """NodeAffinitySchedulingStrategy(node_id, soft=False) becomes a request for a sliver
    of the node:<index> resource that only that node has; "SPREAD" adds the marker that
    has the scheduler place the work on the nodes in turn (a no-op on one node);
    PlacementGroupSchedulingStrategy renames the request into its bundle's resources."""
    from mpiray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                                   NodeLabelSchedulingStrategy,
                                                   PlacementGroupSchedulingStrategy)

    if isinstance(strategy, NodeLabelSchedulingStrategy):
        return req   # (placed at submission: label_selection)
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        if strategy.placement_group is None or strategy.placement_group.is_empty:
            return req   # (Ray's empty group: outside any)
        return _in_group(req, strategy, req if fit is None else fit, what)
    if strategy is None or isinstance(strategy, str):
        if strategy not in (None, "DEFAULT", "SPREAD"):
            raise ValueError(f"unknown scheduling_strategy {strategy!r}; use 'DEFAULT', 'SPREAD', "
                             "a NodeAffinitySchedulingStrategy or a PlacementGroupSchedulingStrategy")
        return dict(req, **{affinity.SPREAD: 0.0}) if strategy == "SPREAD" else req
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        # soft: a mark the node's scheduler resolves (affinity.resolve_soft)
        mark = {strategy.resource(): 0.0 if strategy.soft else affinity.AFFINITY_SLIVER}
        if strategy.soft and strategy._spill_on_unavailable:
            mark[affinity.SPILL] = 0.0   # (room now, not only totals: affinity.resolve)
        return dict(req, **mark)
    raise ValueError(f"unsupported scheduling_strategy {strategy!r}; use 'DEFAULT', 'SPREAD', "
                     "a NodeAffinitySchedulingStrategy, a NodeLabelSchedulingStrategy or a "
                     "PlacementGroupSchedulingStrategy")


def label_selection(opts: dict, strategy):
    """label_selector= and a NodeLabelSchedulingStrategy, as one Selector (core/labels.py),
    or None: the nodes are known, and the mark made, when the work is submitted."""
    from mpiray.core.labels import Selector, parse_label_selector
    from mpiray.util.scheduling_strategies import NodeLabelSchedulingStrategy

    selector = parse_label_selector(opts.get("label_selector") or {})
    if isinstance(strategy, NodeLabelSchedulingStrategy):
        selector = Selector(selector.hard + strategy.selector.hard, strategy.selector.soft)
    return selector or None


def num_returns_option(value, default=1, is_generator=None) -> int:
    """Ray's num_returns: a count, or "streaming" / "dynamic" for a generator (is_generator
    False: the function is not one, which Ray refuses at once)."""
    if value is None:
        value = default
    if value == "dynamic":
        import warnings

        from mpiray.util.annotations import RayDeprecationWarning

        warnings.warn('num_returns="dynamic" is deprecated: use num_returns="streaming", whose '
                      "ObjectRefGenerator yields each item as soon as it is made.",
                      RayDeprecationWarning, stacklevel=3)
    if value in ("streaming", "dynamic"):
        if is_generator is False:   # (Ray's words)
            raise ValueError(f"num_returns='{value}' can only be used with generator functions "
                             "(ones that yield); this one returns: give a count instead")
        return STREAMING if value == "streaming" else DYNAMIC
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("The keyword 'num_returns' only accepts None, a non-negative integer, "
                         "or \"dynamic\" (for generators), or \"streaming\" (for generators); "
                         f"got {value!r}")
    return value


def check_out_of_order(out_of_order, is_async: bool, concurrency: int):
    """allow_out_of_order_execution=False asks for what async and threaded actors never
    give (Ray refuses it too)."""
    if out_of_order is False and (is_async or concurrency > 1):
        raise ValueError("allow_out_of_order_execution=False is not supported for "
                         f"{'async' if is_async else 'threaded (max_concurrency > 1)'} actors: "
                         "they run each call when its arguments are ready")


def retry_exceptions_option(retry):
    """retry_exceptions=: True, False, or a list of exception classes (a tuple here)."""
    if isinstance(retry, list):
        retry = tuple(retry)
    if not (isinstance(retry, bool) or (isinstance(retry, tuple) and all(
            isinstance(c, type) and issubclass(c, BaseException) for c in retry))):
        raise ValueError("retry_exceptions must be either a boolean or a list of exceptions")
    return retry


def counting_option(name, value, infinite=True):
    """A count option (retries, restarts, calls) checked as Ray's, in Ray's words."""
    if not isinstance(value, int) or isinstance(value, bool) or value < (-1 if infinite else 0):
        raise ValueError(f"The keyword '{name}' only accepts None, 0, -1 or a positive integer, "
                         "where -1 represents infinity." if infinite else
                         f"The keyword '{name}' only accepts None, 0 or a positive integer.")
    return value


def max_task_retries_option(value):
    counting_option("max_task_retries", value)
    return 10**9 if value == -1 else value


def deferred(check, *args):
    """check(*args), or the RefusedAtSubmit error it raised, for .remote() to raise (a task
    or actor's _submit / _create raise options that are not a dict)."""
    try:
        return check(*args)
    except RefusedAtSubmit as exc:
        return exc


def task_options(opts: dict, is_generator: bool = False, what=None) -> dict:
    """is_generator: the function yields; unless num_returns says otherwise its calls
    stream their items (Ray's default for generator functions). what: the function's
    qualified name, for errors."""
    check_keys(opts, TASK_OPTIONS, "remote functions")
    num_returns = num_returns_option(opts.get("num_returns"), "streaming" if is_generator else 1,
                                     is_generator)
    # (RAY_TASK_MAX_RETRIES overrides the default for every task, as Ray's)
    max_retries = _or_default(opts, "max_retries",
                              int(os.environ.get("RAY_TASK_MAX_RETRIES", DEFAULT_TASK_RETRIES)))
    counting_option("max_retries", max_retries)
    retry = retry_exceptions_option(opts.get("retry_exceptions", False))
    max_calls = opts.get("max_calls")
    if max_calls is None:   # Ray's default: a GPU task's worker ends after it (frees the GPU)
        max_calls = 1 if (opts.get("num_gpus") or 0) > 0 else 0
    counting_option("max_calls", max_calls, infinite=False)
    strategy = _strategy_of(opts)
    return {
        "num_returns": num_returns,
        "resources": _with_strategy(
            normalize(opts.get("num_cpus"), opts.get("num_gpus"), opts.get("resources"),
                      memory=opts.get("memory"), accelerator_type=opts.get("accelerator_type")),
            strategy, what=what),
        "labels": label_selection(opts, strategy),
        "max_retries": 10**9 if max_retries == -1 else max_retries,
        "retry_exceptions": retry,
        "name": opts.get("name"),
        "runtime_env": runtime_env.validate(opts.get("runtime_env")),
        "max_calls": max_calls,
        # no strategy given: a parent capturing its children places this in its group
        "capturable": _capturable(opts),
    }


def actor_options(opts: dict, what=None) -> dict:
    """what: the class's qualified name, for errors."""
    check_keys(opts, ACTOR_OPTIONS, "actors")
    if opts.get("get_if_exists") and not opts.get("name"):
        raise ValueError("The actor name must be specified to use `get_if_exists`.")
    explicit_cpus = opts.get("num_cpus")
    simple = explicit_cpus is None and opts.get("num_gpus") is None and \
        opts.get("resources") is None and opts.get("accelerator_type") is None
    # Ray (ray_constants DEFAULT_ACTOR_CREATION_CPU_*): an actor given no resources needs a
    # CPU to be placed but holds none; one given some (GPUs, custom) holds them and, unless
    # num_cpus says otherwise, one CPU, for its lifetime
    held = normalize(explicit_cpus, opts.get("num_gpus"), opts.get("resources"),
                     default_cpus=0 if simple else 1, memory=opts.get("memory"),
                     accelerator_type=opts.get("accelerator_type"))
    to_place = dict(held)
    if simple:
        to_place["CPU"] = 1.0
    strategy = _strategy_of(opts)
    held = _with_strategy(held, strategy, to_place, what)
    placement_req = _with_strategy(to_place, strategy, what=what)
    max_restarts = _or_default(opts, "max_restarts", 0)
    counting_option("max_restarts", max_restarts)
    max_task_retries = _or_default(opts, "max_task_retries", 0)
    counting_option("max_task_retries", max_task_retries)
    max_concurrency = opts.get("max_concurrency")
    if max_concurrency is not None and (not isinstance(max_concurrency, int) or max_concurrency < 1):
        raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    groups = opts.get("concurrency_groups") or {}
    if not isinstance(groups, dict) or not all(
            isinstance(g, str) and g and isinstance(n, int) and not isinstance(n, bool) and n > 0
            for g, n in groups.items()):
        raise ValueError(f"concurrency_groups must map group names to positive integers "
                         f"(each group's max_concurrency must be greater than 0), got {groups!r}")
    max_pending = _or_default(opts, "max_pending_calls", -1)
    if max_pending == 0 or max_pending < -1:
        raise ValueError(f"max_pending_calls must be -1 (no limit) or a positive integer, "
                         f"got {max_pending!r}")
    lifetime = opts.get("lifetime")
    if lifetime not in (None, "detached", "non_detached"):
        raise ValueError(f"lifetime must be 'detached' or 'non_detached', got {lifetime!r}")
    name = opts.get("name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be None or a string, got {type(name).__name__}")
    if name is not None and not name:
        raise ValueError("Actor name cannot be an empty string")
    namespace = opts.get("namespace")
    if namespace is not None:
        validate_namespace(namespace)
    return {
        "resources": held, "placement": placement_req,
        "labels": label_selection(opts, strategy),
        "max_restarts": -1 if max_restarts == -1 else max_restarts,
        "max_task_retries": 10**9 if max_task_retries == -1 else max_task_retries,
        "max_concurrency": max_concurrency, "name": name or "",
        "namespace": opts.get("namespace"), "lifetime": lifetime,
        "get_if_exists": bool(opts.get("get_if_exists", False)),
        "max_pending_calls": max_pending,
        "concurrency_groups": dict(groups),
        "capturable": _capturable(opts),
        "runtime_env": runtime_env.validate(opts.get("runtime_env")),
        "out_of_order": opts.get("allow_out_of_order_execution"),   # (None: not given)
        "object_store_memory": opts.get("object_store_memory"),   # (warned of at creation)
    }

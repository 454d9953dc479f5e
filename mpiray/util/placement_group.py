"""Ray's placement group API: reserve bundles of resources, then run tasks and actors in
them (``PlacementGroupSchedulingStrategy``). The table and the reservations: core/placement.py.

    placement_group(bundles) ──(its id made here)──► PG_OP "create" ──► node 0's table
    pg.ready() ──► a task that needs bundle 0: it runs (and returns pg) once bundle 0 exists
    placement_group_table / get_placement_group ──► PG_OP with a reply object
"""

from __future__ import annotations


from mpiray import _ids
from mpiray.ids import PlacementGroupID
from mpiray.core import context, current, placement
from mpiray.core import protocol as P

REPLY_TIMEOUT_S = 60.0
VALID_PLACEMENT_GROUP_STRATEGIES = set(placement.STRATEGIES)


class PlacementGroup:
    """A handle on a placement group; it may be passed to tasks and actors."""

    @staticmethod
    def empty() -> "PlacementGroup":
        """Ray's empty group (the nil id): work given it is placed outside any group."""
        return PlacementGroup(PlacementGroupID.nil(), [])

    def __init__(self, id, bundle_cache=None, strategy="PACK", name=""):
        """id: a PlacementGroupID (or its hex); bundle_cache: the bundles, when known
        (else they are looked up once asked for, as Ray's handle does)."""
        self.id = id if isinstance(id, PlacementGroupID) else PlacementGroupID.from_hex(id)
        self.bundle_cache = None if bundle_cache is None else [dict(b) for b in bundle_cache]
        self.strategy = strategy
        self.name = name
        self._ready = None

    @property
    def _bundles(self) -> list:
        if self.bundle_cache is None:
            info = _ask("info", (self.id.hex(),)) or {}
            bundles = info.get("bundles", {})
            # (a group this cluster does not know has none)
            self.bundle_cache = [dict(bundles[i]) for i in sorted(bundles)] if bundles else []
            self.strategy = info.get("strategy", self.strategy)
            self.name = info.get("name", self.name)
        return self.bundle_cache

    @property
    def bundle_specs(self) -> list:
        return [dict(b) for b in self._bundles]

    @property
    def bundle_count(self) -> int:
        return len(self._bundles)

    @property
    def is_empty(self) -> bool:
        """Ray's empty group (PlacementGroup.empty(): the nil id)."""
        return self.id.is_nil()

    def ready(self):
        """An ObjectRef that is ready (its value: this group) once the group is placed.
        One per handle: wait() in a loop does not start a task each time."""
        from mpiray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        import mpiray

        if self._ready is None and self.is_empty:
            self._ready = mpiray.put(self)   # (as Ray's: nothing to place)
        if self._ready is None:
            self._ready = _ready_task().options(
                num_cpus=0, max_retries=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self, 0)).remote(self)
        return self._ready

    def wait(self, timeout_seconds=30) -> bool:
        """True once the group is placed, False if timeout_seconds pass first; as Ray's,
        a ValueError if the group was removed."""
        import mpiray

        if self.is_empty:
            return True
        info = _ask("info", (self.id.hex(),))
        if info is None or info["state"] == "REMOVED":
            raise ValueError(f"Placement group {self.id.hex()} is removed.")
        ready, _ = mpiray.wait([self.ready()], timeout=timeout_seconds)
        return bool(ready)

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __reduce__(self):
        return (PlacementGroup, (self.id.hex(), self.bundle_cache, self.strategy, self.name))

    def __repr__(self):
        return f"PlacementGroup({self.id.hex()}, {self.strategy}, {self._bundles})"


def _bundle_reservation_check(pg):
    """Runs in bundle 0 (so once that is placed); returns once every bundle is."""
    if not _ask("when_created", (pg.id.hex(),), timeout=None):
        from mpiray.exceptions import RaySystemError

        raise RaySystemError(f"placement group {pg.id.hex()} was removed before it was placed")
    return pg


_READY = None


def _ready_task():
    global _READY
    if _READY is None:
        import mpiray

        _READY = mpiray.remote(_bundle_reservation_check)
    return _READY


def placement_group(bundles, strategy="PACK", name="", lifetime=None,
                    _max_cpu_fraction_per_node=None, _soft_target_node_id=None,
                    bundle_label_selector=None) -> PlacementGroup:
    """Reserves `bundles` (a list of resource dicts) on the cluster's nodes, as
    `strategy` (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD) says. Returns at once; the
    group is placed as soon as nodes have room (pg.ready(), pg.wait())."""
    _check_options(strategy, lifetime, _soft_target_node_id)
    clean = placement.check_bundles(bundles, strategy)
    if not isinstance(name, str):
        raise ValueError(f"a placement group name must be a string, got {name!r}")
    pg = _ids.new_id().hex()
    # (named: the answer says whether the name is free)
    _ask("create", (pg, clean, strategy, name, _namespace(), lifetime == "detached"), wait=bool(name))
    return PlacementGroup(pg, clean, strategy, name)


def validate_placement_group(bundles, strategy="PACK", lifetime=None,
                             _soft_target_node_id=None, bundle_label_selector=None) -> bool:
    """Ray's checks of placement_group()'s arguments (ValueError naming what is wrong);
    True when they pass."""
    _check_options(strategy, lifetime, _soft_target_node_id)
    placement.check_bundles(bundles, strategy)
    return True


def _check_options(strategy, lifetime, _soft_target_node_id):
    if _soft_target_node_id is not None:
        if strategy != "STRICT_PACK":
            raise ValueError("_soft_target_node_id currently only works with STRICT_PACK but "
                             f"got {strategy}")
        try:
            from mpiray.ids import NodeID

            valid = not NodeID.from_hex(_soft_target_node_id).is_nil()
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise ValueError(f"Invalid hex ID of _soft_target_node_id, got {_soft_target_node_id}")
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or "
                         f"'detached'. Got {lifetime}.")


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Gives the group's resources back; the tasks and actors running in it end (their
    callers get TaskPlacementGroupRemoved / ActorPlacementGroupRemoved)."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() expects a PlacementGroup, got "
                        f"{type(placement_group).__name__}")
    _ask("remove", (placement_group.id.hex(),))


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group of that name (in this job's namespace); ValueError if none."""
    info = _ask("get", (placement_group_name, _namespace()))
    if info is None:
        raise ValueError(f"Failed to look up placement group with name {placement_group_name!r}")
    return _from_info(info)


def placement_group_table(placement_group: PlacementGroup = None) -> dict:
    """One group's state ({"placement_group_id", "name", "bundles", "strategy", "state",
    "bundles_to_node_id"}), or every group's by id."""
    if placement_group is None:
        return _ask("table", ())
    return _ask("info", (placement_group.id.hex(),)) or {}


def get_current_placement_group():
    """The group the running task or actor is in, or None (and None in the driver)."""
    pg = placement.group_of(context.resources())
    if pg is None:
        return None
    info = _ask("info", (pg,))
    return None if info is None else _from_info(info)


def check_placement_group_index(placement_group: PlacementGroup, bundle_index: int) -> None:
    if not isinstance(bundle_index, int) or isinstance(bundle_index, bool) or \
            not -1 <= bundle_index < placement_group.bundle_count:
        raise ValueError(f"placement group bundle index {bundle_index!r} is invalid. Valid "
                         f"placement group indexes: -1 (any bundle) and 0-"
                         f"{placement_group.bundle_count - 1}")


def _from_info(info) -> PlacementGroup:
    bundles = [info["bundles"][i] for i in sorted(info["bundles"])]
    return PlacementGroup(info["placement_group_id"], bundles, info["strategy"], info["name"])


def _namespace():
    from mpiray.api import _namespace as namespace_of

    return namespace_of(None)


def _ask(op, args, wait=True, timeout=REPLY_TIMEOUT_S):
    """op on the table (node 0's scheduler): directly in the driver, else by a message
    and a reply object (timeout None: as long as it takes)."""
    from mpiray.api import _runtime

    rt = _runtime()
    node = current.node()
    if node is not None and (node.scheduler.cluster is None or node.scheduler.cluster.me == 0):
        result = node.scheduler.stimulus_driver(node.scheduler.pgs.apply, op, args)
    elif not wait:
        rt.channel.send([(P.PG_OP, op, args, None)])
        return None
    else:
        result = rt.request((P.PG_OP, op, args), timeout, "the placement group table")
    if isinstance(result, Exception):
        raise result
    return result


__all__ = ["PlacementGroup", "check_placement_group_index", "get_current_placement_group",
           "get_placement_group", "placement_group", "placement_group_table",
           "remove_placement_group", "validate_placement_group", "VALID_PLACEMENT_GROUP_STRATEGIES"]
